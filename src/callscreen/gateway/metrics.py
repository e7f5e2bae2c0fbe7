"""Prometheus metrics: what the gateway counts, and the endpoint that serves it.

Counting costs the call path a dict increment, no lock and no label lookup: the
FastAGI server keeps plain counters in a :class:`CallStats`, each
:class:`~callscreen.callpath.leanredis.LeanRedis` keeps its own, and the attempt log has
its ``stats()``. A :class:`Metrics` collector reads them all when Prometheus scrapes,
into a registry of its own (never prometheus-client's global one), and
:class:`MetricsEndpoint` serves it over HTTP from the gateway's event loop:
``GET http://METRICS_HOST:METRICS_PORT/metrics`` (``127.0.0.1:9573`` by default,
``metrics_port=0`` turns it off). Only counts and settings that are not secret are
exported: no number, no password, no Redis URL.

The metrics (all prefixed ``callscreen_``; see ``docs/operations.md``):

- ``calls_total{script,outcome}`` — calls that got an answer or hung up trying, as
  logged (one per log line; ``outcome`` as in the log line, ``_`` for spaces);
- ``decisions_total{script,result,direction}`` — answers decided by the table or a
  policy (anonymous, emergency numbers);
- ``fail_answers_total{script,result,direction,cause}`` — fail-policy answers, apart:
  ``cause`` is ``unavailable`` (Redis down, slow or erring), ``deadline``,
  ``overloaded``, ``internal`` or ``bad_request`` (a dialplan mistake);
- ``decision_seconds`` — histogram, from the connection's accept to the answer's
  write (the log line's ``elapsed_ms``);
- ``connections_open``, ``max_connections``, ``draining``;
- ``refused_total{reason}`` — connections closed unread: ``draining``, ``overload``
  (past twice ``max_connections``), ``not_allowed`` (``allowed_clients``);
- ``unanswered_total{reason}`` — connections closed without an answer:
  ``env_timeout``, ``protocol_error`` (garbage, oversized lines), ``hangup``,
  ``unknown_script``, ``error``, ``evicted`` (no environment yet; its slot went to a
  newcomer at ``max_connections``), ``idle`` (no environment ``idle_close_ms`` after
  its accept while above 80 % of ``max_connections``);
- ``redis_requests_total{client}``, ``redis_errors_total{client,kind}`` (``kind``:
  ``timeout``, ``error_reply``, ``unavailable``), ``redis_noscript_total{client}``,
  ``redis_connects_total{client}``, ``redis_connected{client}``;
- ``log_backlog``, ``log_written_total``, ``log_dropped_total`` — the attempt log,
  when one is watched (:meth:`Metrics.watch_call_log`);
- ``deadline_seconds``, ``reloads_total``, ``info{version,fail_policy,anonymous_policy}``;
- and prometheus-client's ``process_*`` (resident memory, CPU, open files).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from callscreen import __version__
from callscreen.callpath.stats import CallStats
from callscreen.core.config import Settings
from callscreen.core.ratelog import LogLimiter

if TYPE_CHECKING:
    from callscreen.callpath.leanredis import LeanRedis

__all__ = ["Metrics", "MetricsEndpoint"]

log = logging.getLogger("callscreen.metrics")

#: An HTTP request to the endpoint: this many header lines at most, this long to send them.
_MAX_HEADER_LINES = 100
_REQUEST_TIMEOUT_S = 5.0
#: Connections to the endpoint open at once; past it, newcomers are closed unread. A
#: scraper needs one: the cap keeps idle connections from taking the descriptors
#: that calls need.
MAX_METRICS_CONNECTIONS = 64


class ServerLike(Protocol):
    """What :class:`Metrics` reads of :class:`~callscreen.callpath.server.AgiServer`."""

    @property
    def settings(self) -> Settings: ...

    @property
    def stats(self) -> CallStats: ...

    @property
    def active_connections(self) -> int: ...

    @property
    def draining(self) -> bool: ...

    @property
    def notices(self) -> LogLimiter: ...

    def notice(self, cause: str, msg: str, *args: object, level: int = ...) -> None: ...


class LogStatsLike(Protocol):
    """What :class:`Metrics` reads of the attempt log's ``stats()``."""

    @property
    def queued(self) -> int: ...

    @property
    def written(self) -> int: ...

    @property
    def dropped(self) -> int: ...


class Metrics(Collector):
    """The gateway's metrics, collected from their sources at each scrape.

    ``Metrics(server)``; :meth:`watch_redis` for each Redis client worth watching,
    :meth:`watch_call_log` for the attempt log;
    :meth:`render` gives the exposition text; :attr:`registry` holds this collector
    and the process metrics, for :class:`MetricsEndpoint`.
    """

    def __init__(self, server: ServerLike, *, process: bool = True) -> None:
        self.server = server
        self.redis: dict[str, LeanRedis] = {}
        self.reloads = 0
        self._log: Callable[[], LogStatsLike] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        if process:
            ProcessCollector(registry=self.registry)

    def watch_redis(self, name: str, client: LeanRedis) -> None:
        """Export ``client``'s counters with ``client=name``."""
        self.redis[name] = client

    def watch_call_log(self, stats: Callable[[], LogStatsLike]) -> None:
        """Export the attempt log's backlog, written and dropped counts, read from
        ``stats()`` (e.g. ``CallLog.stats``) at each scrape."""
        self._log = stats

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics if ``accept`` asks) and its
        content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # -- Collector

    def describe(self) -> Iterable[Metric]:
        return ()  # collected fresh each time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        server = self.server
        settings = server.settings
        stats = server.stats

        calls = CounterMetricFamily(
            "callscreen_calls",
            "Calls answered (or hung up), as logged",
            labels=["script", "outcome"],
        )
        for (script, outcome), n in list(stats.calls.items()):
            calls.add_metric([script, outcome.replace(" ", "_")], n)
        yield calls

        decisions = CounterMetricFamily(
            "callscreen_decisions",
            "Answers decided by the lists or a policy",
            labels=["script", "result", "direction"],
        )
        for key, n in list(stats.decisions.items()):
            decisions.add_metric(list(key), n)
        yield decisions

        fails = CounterMetricFamily(
            "callscreen_fail_answers",
            "Fail-policy answers: screening unavailable, deadline, overload, bad request",
            labels=["script", "result", "direction", "cause"],
        )
        for fkey, n in list(stats.fails.items()):
            fails.add_metric(list(fkey), n)
        yield fails

        latency = stats.latency
        histogram = HistogramMetricFamily(
            "callscreen_decision_seconds",
            "Time from a connection's accept to its answer's write",
        )
        histogram.add_metric([], latency.cumulative(), sum_value=latency.sum)
        yield histogram

        yield GaugeMetricFamily(
            "callscreen_connections_open", "FastAGI connections open", server.active_connections
        )
        yield GaugeMetricFamily(
            "callscreen_max_connections",
            "Connections screened at once; past it, fail-policy answers",
            settings.max_connections,
        )
        yield GaugeMetricFamily(
            "callscreen_draining", "1 while shutting down (new connections refused)",
            1 if server.draining else 0,
        )  # fmt: skip
        refused = CounterMetricFamily(
            "callscreen_refused", "Connections closed unread", labels=["reason"]
        )
        for reason, n in list(stats.refused.items()):
            refused.add_metric([reason], n)
        yield refused
        unanswered = CounterMetricFamily(
            "callscreen_unanswered", "Connections closed without an answer", labels=["reason"]
        )
        for reason, n in list(stats.unanswered.items()):
            unanswered.add_metric([reason], n)
        yield unanswered
        events = CounterMetricFamily(
            "callscreen_peer_events",
            "Events a peer caused whose log lines are rate-limited, by cause",
            labels=["cause"],
        )
        for cause, n in list(server.notices.counts.items()):
            events.add_metric([cause], n)
        yield events

        yield from self._collect_redis()
        yield from self._collect_log()

        yield GaugeMetricFamily(
            "callscreen_deadline_seconds", "Screening deadline", settings.deadline_ms / 1000
        )
        yield CounterMetricFamily(
            "callscreen_reloads", "Settings reloaded (SIGHUP)", value=self.reloads
        )
        info = InfoMetricFamily("callscreen", "Version and policies in effect")
        info.add_metric(
            [],
            {
                "version": __version__,
                "fail_policy": settings.fail_policy.value,
                "anonymous_policy": settings.anonymous_policy.value,
            },
        )
        yield info

    def _collect_redis(self) -> Iterator[Metric]:
        labels = ["client"]
        requests = CounterMetricFamily(
            "callscreen_redis_requests", "Redis round trips (commands sent)", labels=labels
        )
        errors = CounterMetricFamily(
            "callscreen_redis_errors",
            "Redis calls that failed: timeout, error_reply, unavailable (connection)",
            labels=["client", "kind"],
        )
        noscript = CounterMetricFamily(
            "callscreen_redis_noscript",
            "Scripts sent again after NOSCRIPT (Redis restarted or failed over)",
            labels=labels,
        )
        connects = CounterMetricFamily(
            "callscreen_redis_connects", "Connections opened to Redis", labels=labels
        )
        connected = GaugeMetricFamily(
            "callscreen_redis_connected", "1 when connected to Redis", labels=labels
        )
        for name, client in list(self.redis.items()):
            requests.add_metric([name], client.requests)
            timeouts, replies = client.timeouts, client.error_replies
            errors.add_metric([name, "timeout"], timeouts)
            errors.add_metric([name, "error_reply"], replies)
            errors.add_metric([name, "unavailable"], max(0, client.failures - timeouts - replies))
            noscript.add_metric([name], client.noscript)
            connects.add_metric([name], client.connects)
            connected.add_metric([name], 1 if client.connected else 0)
        yield from (requests, errors, noscript, connects, connected)

    def _collect_log(self) -> Iterator[Metric]:
        if self._log is None:
            return  # no attempt log in this process: no log metrics at all
        try:
            stats = self._log()
        except Exception:
            log.exception("reading the attempt log's figures failed")
            return
        yield GaugeMetricFamily(
            "callscreen_log_backlog", "Attempt-log records waiting to be written", stats.queued
        )
        yield CounterMetricFamily(
            "callscreen_log_written", "Attempt-log records written", value=stats.written
        )
        yield CounterMetricFamily(
            "callscreen_log_dropped", "Attempt-log records dropped", value=stats.dropped
        )


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class MetricsEndpoint:
    """Serves :class:`Metrics` over HTTP on ``metrics_host:metrics_port``, from the
    running event loop (no thread). ``GET /metrics`` (or ``/``) answers the
    exposition; anything else 404 or 405. One request per connection, headers
    bounded in size, count and time (5 s); at most :data:`MAX_METRICS_CONNECTIONS`
    connections at once (the others are closed unread, counted in ``refused``).

    A port that cannot be bound is logged at ERROR and the gateway runs on without
    metrics: calls matter more than their counts.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self.open = 0
        self.refused = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int | None:
        """The port listened on (``None`` when off)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, port = self.settings.metrics_host, self.settings.metrics_port
        if port == 0:
            log.info("metrics endpoint off (metrics_port=0)")
            return
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._protocol, host, port, reuse_address=True)
        except OSError as exc:
            log.error("metrics endpoint not started on %s:%d: %s", host, port, exc)
            return
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def close(self) -> None:
        """Stop listening and end the requests still open (a slow or idle client)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        handlers = set(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        if server is not None:
            await server.wait_closed()

    def _protocol(self) -> asyncio.BaseProtocol:
        """A connection's protocol; past the cap, one that closes it at once (no reader,
        no task: a flood of them costs an accept and a close each)."""
        if self.open >= MAX_METRICS_CONNECTIONS:
            self.refused += 1
            self.metrics.server.notice(
                "metrics_refused",
                "metrics endpoint: %d connections open, closing a new one",
                self.open,
            )
            return _Refused()
        self.open += 1  # given back when its request ends (_handle)
        reader = asyncio.StreamReader(limit=8192)
        return asyncio.StreamReaderProtocol(reader, self._handle)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self.open -= 1
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                status, body, content_type, head = await self._respond(reader)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if not head:
                writer.write(body)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that did not finish its request, or went away: just close
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str, bool]:
        request = (await reader.readline()).decode("latin-1").split()
        accept = ""
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if not line.strip():
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        else:
            return "431 Request Header Fields Too Large", b"", "text/plain", False
        if len(request) < 2:
            return "400 Bad Request", b"", "text/plain", False
        method, target = request[0], request[1].partition("?")[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"", "text/plain", False
        if target not in ("/metrics", "/"):
            return "404 Not Found", b"not found: try /metrics\n", "text/plain", False
        body, content_type = self.metrics.render(accept)
        return "200 OK", body, content_type, method == "HEAD"
