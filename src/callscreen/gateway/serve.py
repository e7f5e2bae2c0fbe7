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
import errno
import gc
import inspect
import ipaddress
import logging
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from callscreen.asterisk.cascade import spool_problem
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.replica import ReadRouter
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import HARD_LIMIT_FACTOR, AgiServer
from callscreen.core.config import LIVE_SETTINGS, Settings
from callscreen.core.errors import CallscreenError, InvalidInput, StoreAuthError, StoreError
from callscreen.gateway.attemptlog import CallLog, LoggedScreener
from callscreen.gateway.localredis import LocalRedis
from callscreen.gateway.metrics import MAX_METRICS_CONNECTIONS, Metrics, MetricsEndpoint
from callscreen.gateway.optout import OptoutRoute
from callscreen.gateway.outcomes import OutcomeWatcher
from callscreen.gateway.reachability import RedisReachability
from callscreen.schema.attempts import LogSettings
from callscreen.services.cascading import RunnerTask
from callscreen.services.context import Actor, Context
from callscreen.services.migrations import SchemaService
from callscreen.services.table import Table

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
        self.cascades = RunnerTask(settings)  # runs the cascade queue of this host
        # Started in this order, closed in the reverse one: one line per component.
        # The FastAGI server stays last (first to close: calls drain while the rest
        # still works, and the attempt log then writes what they left queued).
        self.reachability = RedisReachability(settings, self.screener.client)
        self.parts: list[Part] = [
            Part("schema check", start=self._check_schema),
            Part("screener", close=self.screener.close, reconfigure=self.screener.reconfigure),
            Part("redis check", start=self.reachability.start, close=self.reachability.close),
            Part("metrics", start=self.endpoint.start, close=self.endpoint.close),
            Part(
                "outcome watcher",
                start=self.watcher.start if watch else None,
                close=self.watcher.close if watch else None,
            ),
            Part(
                "cascade runner",
                start=self.cascades.start if watch else None,
                close=self.cascades.close if watch else None,
            ),
            # opt-outs cancel queued calls in the background: let those finish
            Part("optout cascades", close=self._close_cascades),
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

    async def _close_cascades(self) -> None:
        await self.optout.drain(OPTOUT_DRAIN_S)
        self.optout.close()

    def _baseline(self) -> Settings:
        """What the environment and ``.env`` say now (reloads apply what changes)."""
        try:
            return self.load_settings()
        except pydantic.ValidationError:
            return self.settings

    # -- lifecycle

    async def _check_schema(self) -> None:
        """Refuse to serve data of another schema version; Redis down is no reason not
        to start (calls get the fail policy's answer until it is back)."""
        table = Table(self.settings)
        try:
            ctx = Context(self.settings, table, Actor("gateway", "serve"))
            await SchemaService(ctx).check("serve")
        except StoreError as exc:
            log.warning("schema version not checked: %s", exc)
        finally:
            await table.close()

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


def exposure_warnings(settings: Settings) -> list[str]:
    """What is open to more than the Asterisk hosts: the FastAGI port listening on a
    non-loopback address with ``allowed_clients`` empty (anyone who reaches the port
    can screen numbers, and fill the connection slots)."""
    warnings = []
    try:
        loopback = ipaddress.ip_address(settings.listen_host).is_loopback
    except ValueError:
        loopback = settings.listen_host == "localhost"
    if not loopback and not settings.allowed_clients:
        warnings.append(
            f"the FastAGI port listens on {settings.listen_host} and CALLSCREEN_ALLOWED_CLIENTS "
            "is empty: anyone who reaches the port may use it; set it to the Asterisk hosts"
        )
    return warnings


def credentials_problem(settings: Settings, timeout: float = 2.0) -> str:
    """At start-up: ``""``, or why Redis refuses the gateway's credentials (a wrong
    password must stop the start, not turn every call into a fail-policy answer).
    Redis down or slow is not a problem here: calls get the fail policy until it is
    back."""

    async def check() -> str:
        try:
            client = LeanRedis.from_settings(settings, command_timeout=timeout)
        except CallscreenError as exc:
            return f"cannot use the Redis settings: {exc}"
        try:
            await client.call("PING", timeout=timeout)
        except StoreAuthError as exc:
            return f"{exc}; check CALLSCREEN_REDIS_PASSWORD (or the URL's user and password)"
        except CallscreenError:
            return ""
        finally:
            await client.close()
        return ""

    return asyncio.run(check())


def descriptors_needed(settings: Settings) -> int:
    """Open files the gateway may need at once: every FastAGI connection up to twice
    ``max_connections``, the metrics endpoint's cap, and a margin for Redis, logs and
    the rest."""
    return settings.max_connections * HARD_LIMIT_FACTOR + MAX_METRICS_CONNECTIONS + SPARE_FDS


def raise_fd_limit(settings: Settings) -> str:
    """Raise the soft limit of open files to the hard limit. Returns ``""``, or — when
    even that cannot hold :func:`descriptors_needed` — the one line saying so (the
    gateway then refuses to start: past the limit, accept() fails, and calls would be
    dropped with no answer)."""
    needed = descriptors_needed(settings)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # e.g. a hard limit above the kernel's nr_open: keep what we have
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return ""
    return (
        f"open files limited to {soft}, but max_connections={settings.max_connections} needs "
        f"{needed} (2 x connections + {MAX_METRICS_CONNECTIONS} metrics + {SPARE_FDS} for "
        "Redis and the rest): raise LimitNOFILE / ulimit -n, or lower "
        "CALLSCREEN_MAX_CONNECTIONS"
    )


#: errno values of an accept() that failed for lack of resources (descriptors, memory)
_NO_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def watch_accept_failures(loop: asyncio.AbstractEventLoop, server: AgiServer) -> None:
    """Log (rate-limited) and count the connections the event loop could not accept
    for lack of descriptors: asyncio and uvloop report them to the loop's exception
    handler, once per failed accept; everything else goes to the default handler."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _NO_RESOURCES:
            server.stats.refuse("no_descriptors")
            server.notice(
                "no_descriptors",
                "a connection could not be accepted: %s (open files limit reached?)",
                exc.strerror or exc,
                level=logging.ERROR,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


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

    watch_accept_failures(loop, gateway.server)
    handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: gateway.reload}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    problem = spool_problem(settings)
    if problem is not None:
        log.info("%s", problem)
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
            for warning in exposure_warnings(settings):
                log.warning("%s", warning)
            settle_heap()
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


#: The cyclic collector's first threshold once serving (CPython's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once serving: move everything start-up made (modules, settings, clients) out of
    the cyclic collector's sight (``gc.freeze``), and let the young generation grow
    larger before a collection. A call allocates a few hundred short-lived objects,
    nearly all freed by reference counting; without this, every full collection
    walks the whole start-up heap again, several times a minute under load."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


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
    problem = raise_fd_limit(settings)
    if problem:
        log.error("%s", problem)
        return 1
    local = LocalRedis(settings) if local_redis else None
    try:
        if local is not None:
            settings = local.ensure()
            if settings.redis_url == local.url:
                log.info(
                    "using the local Redis; for the CLI: export CALLSCREEN_REDIS_URL=%s",
                    local.url,
                )
        problem = credentials_problem(settings)
        if problem:
            log.error("%s", problem)
            return 1
        try:
            import uvloop

            uvloop.run(serve(settings, load_settings=load_settings, worker=worker))
        except ImportError:
            asyncio.run(serve(settings, load_settings=load_settings, worker=worker))
    except asyncio.CancelledError:
        return 1
    except InvalidInput as exc:  # settings the running servers refuse (an old replica)
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:  # the FastAGI address is taken or not ours
        log.error("cannot serve on %s:%d: %s", settings.listen_host, settings.listen_port, exc)
        return 1
    finally:
        if local is not None:
            local.stop()
    return 0
