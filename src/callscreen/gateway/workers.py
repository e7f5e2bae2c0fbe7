"""``callscreen serve --workers N``: N gateway processes on one port, supervised.

The parent process serves no call. It starts N workers (fresh interpreters, each the
whole gateway of :mod:`callscreen.gateway.serve`: its own event loop, Redis connections
and attempt-log writer) that all listen on the FastAGI address with ``SO_REUSEPORT``:
the kernel spreads new connections over them. Then the parent:

- **restarts a worker that dies** (a crash, a kill): at once, or one second later when it
  died within a second of its start (so a worker that cannot start does not spin);
- on **SIGTERM / SIGINT**, passes it to every worker, which drains as a single gateway
  does (stops accepting, finishes calls in flight for up to ``shutdown_grace_s``), waits
  for them all and exits 0; a second signal is passed on too (forced exit); a worker
  still running :data:`STOP_SLACK_S` past the grace is killed (exit code 1);
- on **SIGHUP**, passes it to every worker: each reloads its live settings;
- serves **one** ``/metrics`` on ``metrics_host:metrics_port``: at each scrape it reads
  every worker's own endpoint (each worker listens on a loopback port of its own, picked
  by the parent) and returns their series together, each with a ``worker`` label
  (``worker="0"`` ...), plus ``callscreen_workers`` and ``callscreen_worker_restarts_total``.
  Sum over ``worker`` in Prometheus for gateway-wide figures (``sum without (worker)``).
  A worker that does not answer within a second is left out of that scrape.

Limits are **per worker**: ``max_connections`` (and the overload bound, twice it) hold
for each worker's connections, so the gateway as a whole takes up to N times as many.
The **outcome watcher** (AMI) runs in worker 0 only (its replacement too, when it is
restarted): one process counts each failed call. Opt-out cascades run in the worker that
took the opt-out call, as in a single gateway.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from callscreen.core.config import Settings

log = logging.getLogger("callscreen.workers")

RESTART_QUICK_S = 1.0  # a worker that dies sooner than this after its start waits this long
POLL_S = 0.1  # how often the supervisor looks at its workers and signals
SCRAPE_TIMEOUT_S = 1.0
STOP_SLACK_S = 15.0  # after SIGTERM, past the drain's grace, workers still up are killed
WORKER_CODE = "from callscreen.gateway.workers import worker_main; worker_main()"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    """One worker process and what the supervisor knows of it."""

    index: int
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0


def worker_settings(settings: Settings, index: int, metrics_port: int) -> Settings:
    """A worker's settings: the gateway's, with its metrics on a loopback port of its own
    (the parent serves the one public endpoint)."""
    del index  # the same settings for every worker; the index travels beside them
    return settings.model_copy(update={"metrics_host": "127.0.0.1", "metrics_port": metrics_port})


def worker_main() -> None:
    """The entry point of a worker process: its settings come pickled on stdin."""
    from callscreen.gateway.serve import run

    settings, index = pickle.load(sys.stdin.buffer)  # from our own parent, on a pipe
    sys.stdin.close()
    raise SystemExit(run(settings, worker=index))


@dataclass
class Supervisor:
    """Starts, watches and stops the workers (see the module's docstring)."""

    settings: Settings
    workers: int
    restarts: int = 0
    _pool: list[Worker] = field(default_factory=list)
    _signals: list[int] = field(default_factory=list)
    _stopping: bool = False
    _kill_at: float = 0.0

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT and every worker is gone; the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._pool = [Worker(i, free_loopback_port()) for i in range(self.workers)]
        endpoint = self._serve_metrics()
        try:
            for worker in self._pool:
                self._start(worker)
            log.info(
                "callscreen: %d workers on %s:%d (SO_REUSEPORT)",
                self.workers,
                self.settings.listen_host,
                self.settings.listen_port,
            )
            while True:
                self._handle_signals()
                alive = self._watch()
                if self._stopping and not alive:
                    return 0
                if self._stopping and time.monotonic() > self._kill_at:
                    log.error("workers still running %.0f s after SIGTERM: killed", STOP_SLACK_S)
                    return 1  # the finally below kills them
                time.sleep(POLL_S)
        finally:
            if endpoint is not None:
                endpoint.shutdown()
                endpoint.server_close()
            for worker in self._pool:
                if worker.proc is not None and worker.proc.poll() is None:
                    worker.proc.kill()
                    worker.proc.wait()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)  # handled in the loop: no work in a signal handler

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                log.info("reload: passing SIGHUP to the workers")
                self._send(signal.SIGHUP)
                continue
            if not self._stopping:
                log.info("shutting down: the workers drain their calls")
                self._kill_at = time.monotonic() + self.settings.shutdown_grace_s + STOP_SLACK_S
            self._stopping = True
            self._send(signal.SIGTERM)

    def _send(self, signum: int) -> None:
        for worker in self._pool:
            if worker.proc is not None and worker.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signum)

    def _start(self, worker: Worker) -> None:
        settings = worker_settings(self.settings, worker.index, worker.metrics_port)
        proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((settings, worker.index)))
        proc.stdin.close()
        worker.proc = proc
        worker.started = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, proc.pid)

    def _watch(self) -> int:
        """Restart dead workers (unless stopping); the number still alive."""
        alive = 0
        now = time.monotonic()
        for worker in self._pool:
            proc = worker.proc
            if proc is not None and proc.poll() is None:
                alive += 1
                continue
            if self._stopping:
                continue
            if proc is not None:
                log.error(
                    "worker %d (pid %d) exited with %s: restarting it",
                    worker.index,
                    proc.pid,
                    proc.returncode,
                )
                worker.proc = None
                quick = now - worker.started < RESTART_QUICK_S
                worker.restart_at = now + (RESTART_QUICK_S if quick else 0.0)
                self.restarts += 1
            if now >= worker.restart_at:
                self._start(worker)
                alive += 1
        return alive

    # -- one /metrics for all

    def _serve_metrics(self) -> http.server.ThreadingHTTPServer | None:
        host, port = self.settings.metrics_host, self.settings.metrics_port
        if port == 0:
            return None
        supervisor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = supervisor.render()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        try:
            server = http.server.ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            log.error("metrics endpoint not started on %s:%d: %s", host, port, exc)
            return None
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        log.info("metrics of all workers on http://%s:%d/metrics", host, port)
        return server

    def render(self) -> bytes:
        """Every worker's exposition, merged, each series labelled with its worker."""
        texts: list[tuple[int, str]] = []
        for worker in list(self._pool):
            url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as reply:
                    texts.append((worker.index, reply.read().decode()))
            except OSError:
                continue  # starting, restarting or stuck: left out of this scrape
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(texts, self))
        return generate_latest(registry)


class _Merged:
    """A collector of the workers' parsed families with a ``worker`` label added."""

    def __init__(self, texts: list[tuple[int, str]], supervisor: Supervisor) -> None:
        self.texts = texts
        self.supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for index, text in self.texts:
            for family in text_string_to_metric_families(text):
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(index)}
                    target.samples.append(
                        Sample(sample.name, labels, sample.value, sample.timestamp)
                    )
        yield from merged.values()
        alive = sum(1 for w in self.supervisor._pool if w.proc and w.proc.poll() is None)
        yield GaugeMetricFamily("callscreen_workers", "Worker processes running", value=alive)
        yield CounterMetricFamily(
            "callscreen_worker_restarts",
            "Workers restarted after they died",
            value=self.supervisor.restarts,
        )


def run_workers(settings: Settings, workers: int, *, local_redis: bool = False) -> int:
    """``callscreen serve --workers N`` (N > 1): supervise N workers; the exit code."""
    from callscreen.gateway.localredis import LocalRedis
    from callscreen.gateway.serve import configure_logging

    configure_logging(settings.log_level)
    if not hasattr(socket, "SO_REUSEPORT"):
        log.error("--workers needs SO_REUSEPORT, which this system lacks")
        return 1
    local = LocalRedis(settings) if local_redis else None  # one for all the workers
    try:
        if local is not None and local.ensure():
            log.info("using a local Redis at %s", settings.redis_url)
        return Supervisor(settings, workers).run()
    finally:
        if local is not None:
            local.stop()
