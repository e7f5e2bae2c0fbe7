"""``callscreen serve --workers N``: several gateway processes on one port, supervised
by the parent (real processes, real Redis, FastAGI over real TCP)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from callscreen.gateway.serve import Gateway
from tests.support.agiclient import FakeAsterisk
from tests.support.redisproc import free_port
from tests.test_operations import HOST, load_lists, ops_settings, until


class Workers:
    """``callscreen serve --workers N`` in a process of its own."""

    def __init__(self, tmp_path: Path, redis_url: str, workers: int) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = tmp_path / "serve.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        self.env = {
            **clean,
            "CALLSCREEN_REDIS_URL": redis_url,
            "CALLSCREEN_LISTEN_HOST": HOST,
            "CALLSCREEN_LISTEN_PORT": str(self.port),
            "CALLSCREEN_METRICS_PORT": str(self.metrics_port),
            "CALLSCREEN_DEFAULT_REGION": "FR",
            "CALLSCREEN_SHUTDOWN_GRACE_S": "2",
            # the workers share two cores with the test: the deadline is not under test
            "CALLSCREEN_DEADLINE_MS": "2000",
        }
        self.cwd = tmp_path
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Workers:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callscreen", "serve", "--workers", str(self.workers)],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        await until(
            lambda: self.output().count("callscreen listening") >= self.workers,
            "every worker to listen",
            timeout=30,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:  # a failed test
            self.proc.kill()
            self.proc.wait()
            for pid in self.pids().values():  # its workers, orphaned
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[int, int]:
        """The latest pid of each worker, from the supervisor's log."""
        found: dict[int, int] = {}
        for index, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", self.output()):
            found[int(index)] = int(pid)
        return found

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = f"http://{HOST}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def calls_by_worker(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for (name, labels), value in metrics.items():
        if name == "callscreen_calls_total":
            counts[dict(labels)["worker"]] += int(value)
    return counts


async def screen(port: int, number: str) -> str:
    result = await FakeAsterisk(HOST, port).call(args=("inbound", number))
    return result.variables["CALLSCREEN_RESULT"]


@pytest.mark.slow
async def test_workers_share_the_port_restart_reload_and_drain(
    tmp_path: Path, redis_url: str
) -> None:
    load_lists(ops_settings(redis_url))
    async with Workers(tmp_path, redis_url, 2) as gw:
        results = await asyncio.gather(
            *(screen(gw.port, "+33123456789" if i % 2 else "+33612345678") for i in range(60))
        )
        assert Counter(results) == {"BLOCKED": 30, "ALLOWED": 30}
        metrics = await asyncio.to_thread(gw.metrics)
        per_worker = calls_by_worker(metrics)
        assert sum(per_worker.values()) == 60
        assert set(per_worker) == {"0", "1"}  # the kernel spread the connections
        assert metrics[("callscreen_workers", ())] == 2

        # a worker that dies is restarted, and calls keep their answers meanwhile
        old = gw.pids()[1]
        os.kill(old, signal.SIGKILL)
        await until(lambda: gw.pids()[1] != old, "the worker to be replaced", timeout=10)
        await until(
            lambda: gw.output().count("callscreen listening") >= 3,
            "the new worker to listen",
            timeout=30,
        )
        assert await screen(gw.port, "+33123456789") == "BLOCKED"
        metrics = await asyncio.to_thread(gw.metrics)
        assert metrics[("callscreen_worker_restarts_total", ())] == 1

        # SIGHUP reaches every worker
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        # parent + 2 workers
        await until(lambda: gw.output().count("reload:") >= 3, "every process to reload")

        # SIGTERM drains them all; the parent exits 0 once they are gone
        gw.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(gw.proc.wait, 20) == 0
        out = gw.output()
        assert "stopped (worker 0)" in out and "stopped (worker 1)" in out, out
        for pid in gw.pids().values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_only_worker_zero_watches_outcomes(redis_url: str) -> None:
    settings = ops_settings(redis_url)
    parts = {p.name: p for p in Gateway(settings, worker=1).parts}
    assert parts["outcome watcher"].start is None
    parts = {p.name: p for p in Gateway(settings, worker=0).parts}
    assert parts["outcome watcher"].start is not None
    assert Gateway(settings, worker=1).server.reuse_port
    assert not Gateway(settings).server.reuse_port
