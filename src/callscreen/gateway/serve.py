"""Running the gateway: ``callscreen serve``.

A running gateway is a short list of :class:`Part` s — the screener and its Redis
connection, the attempt log writer, the metrics endpoint, the AMI outcome watcher,
the FastAGI server — built in
:meth:`Gateway.__init__`, started in that order and closed in the reverse order. The
FastAGI server comes last: it takes calls only once everything else is up, and is
the first to stop at shutdown, so calls drain while the rest still works. Adding a
component is one line in that list (``Part("name", start=..., close=...)``, with
sync or async callables); ``reconfigure`` is called with the new settings on SIGHUP.

Signals:

- **SIGTERM / SIGINT**: drain. The listening socket closes at once (new connections
  are refused: Asterisk takes the ``AGISTATUS=FAILURE`` path of the shipped
  dialplan, or its next ``hagi://`` target), calls in flight finish for up to
  ``shutdown_grace_s``, then every part is closed and the process exits 0. A second
  signal forces the exit (what is still running is cancelled; exit code 1).
- **SIGHUP**: reload. The settings are read again from the environment and ``.env``
  (the working directory's); what changed there since the last (re)load is applied
  to the running gateway if it is one of :data:`~callscreen.core.config.LIVE_SETTINGS`
  (policies, deadline, allowed clients, limits, log level, ...), from the next call
  on. Other changes (Redis, addresses, ...) are logged as waiting for a restart.
  Invalid settings are logged and nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from callscreen.callpath.replica import ReadRouter
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import HARD_LIMIT_FACTOR, AgiServer
from callscreen.core.config import LIVE_SETTINGS, Settings
from callscreen.core.errors import CallscreenError
from callscreen.gateway.attemptlog import CallLog, LoggedScreener
from callscreen.gateway.localredis import LocalRedis
from callscreen.gateway.metrics import Metrics, MetricsEndpoint
from callscreen.gateway.optout import OptoutRoute
from callscreen.gateway.outcomes import OutcomeWatcher
from callscreen.schema.attempts import LogSettings

log = logging.getLogger("callscreen.serve")

#: File descriptors kept beyond the connections: Redis, the metrics endpoint, logs, ...
SPARE_FDS = 256
#: At shutdown, how long the opt-outs' background cancellations of queued calls may take.
OPTOUT_DRAIN_S = 5.0


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def from_environment() -> Settings:
    """Settings from the ``CALLSCREEN_*`` environment and ``.env`` (what a reload reads)."""
    return Settings()  # type: ignore[call-arg]  # every field has a default


@dataclass(frozen=True)
class Part:
    """One component of the running gateway. Each callable may be sync or async;
    ``None`` where there is nothing to do."""

    name: str
    start: Callable[[], Any] | None = None
    close: Callable[[], Any] | None = None
    reconfigure: Callable[[Settings], Any] | None = None


async def _run(fn: Callable[..., Any], *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


def _errors(exc: pydantic.ValidationError) -> str:
    # location and message only: pydantic's own text repeats the input, secrets included
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors()
    )


class Gateway:
    """The running gateway: ``async with Gateway(settings) as gateway: ...`` starts its
    parts, leaving closes them (the FastAGI server first, draining its calls).

    ``load_settings`` builds fresh settings for :meth:`reload` (default: from the
    environment and ``.env``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        load_settings: Callable[[], Settings] | None = None,
        worker: int | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.load_settings = load_settings or from_environment
        self._loaded = self._baseline()
        self.screener = Screener.from_settings(settings)
        self.reads = (
            ReadRouter(settings, self.screener.client) if ReadRouter.wanted(settings) else None
        )
        self.screener.reads = self.reads
        log_settings = LogSettings.from_settings(settings)
        self.calllog = (
            CallLog.from_settings(settings, log_settings) if log_settings.enabled else None
        )
        self.server = AgiServer(
            settings,
            LoggedScreener(self.screener, self.calllog) if self.calllog else self.screener,
        )
        self.optout = OptoutRoute(self.server, self.screener.client)
        self.server.routes["optout"] = self.optout
        # one of several workers on one port (callscreen.gateway.workers)
        self.server.reuse_port = worker is not None
        self.metrics = Metrics(self.server)
        self.metrics.watch_redis("screening", self.screener.client)
        self.endpoint = MetricsEndpoint(settings, self.metrics)
        self.watcher = OutcomeWatcher(settings)  # idle unless AMI is configured
        watch = worker in (None, 0)  # with workers, worker 0 alone watches outcomes
        # Started in this order, closed in the reverse one: one line per component.
        # The FastAGI server stays last (first to close: calls drain while the rest
        # still works, and the attempt log then writes what they left queued).
        self.parts: list[Part] = [
            Part("screener", close=self.screener.close, reconfigure=self.screener.reconfigure),
            Part("metrics", start=self.endpoint.start, close=self.endpoint.close),
            Part(
                "outcome watcher",
                start=self.watcher.start if watch else None,
                close=self.watcher.close if watch else None,
            ),
            # opt-outs cancel queued calls in the background: let those finish
            Part("optout cascades", close=lambda: self.optout.drain(OPTOUT_DRAIN_S)),
            Part(
                "agi",
                start=self.server.start,
                close=self.server.close,
                reconfigure=self.server.reconfigure,
            ),
        ]
        if self.reads is not None:
            self.parts.insert(
                1, Part("replica reads", start=self.reads.start, close=self.reads.close)
            )
            if self.reads.replica is not None:
                self.metrics.watch_redis("replica", self.reads.replica)
        if self.calllog is not None:
            self.metrics.watch_call_log(self.calllog.stats)
            self.parts.insert(
                1, Part("attempt log", start=self.calllog.start, close=self.calllog.stop)
            )
        self._stack = contextlib.AsyncExitStack()
        self._stopping = asyncio.Event()

    def _baseline(self) -> Settings:
        """What the environment and ``.env`` say now (reloads apply what changes)."""
        try:
            return self.load_settings()
        except pydantic.ValidationError:
            return self.settings

    # -- lifecycle

    async def __aenter__(self) -> Gateway:
        async with contextlib.AsyncExitStack() as stack:
            for part in self.parts:
                if part.start is not None:
                    await _run(part.start)
                if part.close is not None:
                    stack.push_async_callback(self._close, part)
            self._stack = stack.pop_all()  # all started: keep them until __aexit__
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    @staticmethod
    async def _close(part: Part) -> None:
        assert part.close is not None
        try:
            await _run(part.close)
        except Exception:
            log.exception("closing %s failed", part.name)

    def stop(self) -> None:
        """Ask :meth:`wait` to return (the caller then leaves the ``async with``)."""
        self._stopping.set()

    async def wait(self) -> None:
        """Until :meth:`stop`."""
        await self._stopping.wait()

    # -- reload

    def reload(self) -> list[str]:
        """Read the settings again and apply the live ones that changed since the last
        load; returns their names (empty: nothing applied)."""
        try:
            fresh = self.load_settings()
        except pydantic.ValidationError as exc:
            log.error("reload: invalid settings, nothing changed: %s", _errors(exc))
            return []
        changed = [
            name
            for name in type(fresh).model_fields
            if getattr(fresh, name) != getattr(self._loaded, name)
        ]
        live = [name for name in changed if name in LIVE_SETTINGS]
        later = [name for name in changed if name not in LIVE_SETTINGS]
        if "log_level" in live and not isinstance(
            logging.getLevelNamesMapping().get(fresh.log_level.upper()), int
        ):
            log.error("reload: unknown log_level %r, nothing changed", fresh.log_level)
            return []
        self._loaded = fresh
        if later:
            log.warning("reload: %s changed; that takes a restart", ", ".join(later))
        if not live:
            log.info("reload: no live setting changed")
            return []
        settings = self.settings.model_copy(update={name: getattr(fresh, name) for name in live})
        self.settings = settings
        if "log_level" in live:
            logging.getLogger().setLevel(settings.log_level.upper())
        for part in self.parts:
            if part.reconfigure is not None:
                try:
                    part.reconfigure(settings)
                except Exception:
                    log.exception("reload: %s could not take the new settings", part.name)
        self.metrics.reloads += 1
        shown = settings.safe_dump()
        log.info("reload: %s", ", ".join(f"{name}={shown[name]}" for name in live))
        return live


def raise_fd_limit(settings: Settings) -> None:
    """Raise the soft limit of open files to what ``max_connections`` needs (up to the
    hard limit): past it, accept() fails and asyncio stops accepting for a second."""
    needed = settings.max_connections * HARD_LIMIT_FACTOR + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning(
            "open files limited to %d; max_connections=%d wants %d (raise LimitNOFILE)",
            target,
            settings.max_connections,
            needed,
        )


async def serve(
    settings: Settings,
    *,
    load_settings: Callable[[], Settings] | None = None,
    worker: int | None = None,
) -> None:
    """Serve FastAGI until SIGTERM or SIGINT; SIGHUP reloads (see the module doc)."""
    loop = asyncio.get_running_loop()
    gateway = Gateway(settings, load_settings=load_settings, worker=worker)
    signals = 0

    def on_stop() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info(
                "shutting down: refusing new calls, finishing those in flight for up to "
                "%.1f s (signal again to force)",
                gateway.settings.shutdown_grace_s,
            )
            gateway.stop()
        else:
            log.warning("forced shutdown")
            for task in asyncio.all_tasks(loop):
                task.cancel()

    handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: gateway.reload}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        async with gateway:
            log.info(
                "callscreen listening on %s:%s (region %s, deadline %d ms, fail-%s)",
                settings.listen_host,
                gateway.server.port,
                settings.default_region,
                settings.deadline_ms,
                settings.fail_policy.value,
            )
            await gateway.wait()
        log.info(
            "stopped%s: %d calls answered, %d Redis round trips",
            "" if worker is None else f" (worker {worker})",
            gateway.server.calls,
            gateway.screener.client.requests,
        )
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)


def run(
    settings: Settings,
    *,
    local_redis: bool = False,
    load_settings: Callable[[], Settings] | None = None,
    worker: int | None = None,
) -> int:
    """Run the gateway in this process (as worker ``worker`` of
    :mod:`callscreen.gateway.workers` when given); returns the exit code."""
    configure_logging(settings.log_level)
    raise_fd_limit(settings)
    local = LocalRedis(settings) if local_redis else None
    try:
        if local is not None and local.ensure():
            log.info("using a local Redis at %s", settings.redis_url)
        try:
            import uvloop

            uvloop.run(serve(settings, load_settings=load_settings, worker=worker))
        except ImportError:
            asyncio.run(serve(settings, load_settings=load_settings, worker=worker))
    except asyncio.CancelledError:
        return 1
    except CallscreenError as exc:  # settings the running servers refuse (an old replica)
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # the FastAGI address is taken or not ours
        log.error("cannot serve on %s:%d: %s", settings.listen_host, settings.listen_port, exc)
        return 1
    finally:
        if local is not None:
            local.stop()
    return 0
