"""Hostile peers against the gateway's limits: floods that last seconds, from other
processes (``tests/flood.py``), while genuine sessions must keep getting their right
answers. The long versions are in ``bench/soak.py``."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callscreen.asterisk import cascade
from callscreen.asterisk.cascade import EntryTargets
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer
from callscreen.core.config import Settings
from callscreen.core.model import Action
from callscreen.core.numbers import parse_entry
from callscreen.gateway.metrics import MAX_METRICS_CONNECTIONS
from callscreen.gateway.optout import OptoutRoute
from callscreen.gateway.serve import Gateway, watch_accept_failures
from tests.support.agiclient import FakeAsterisk
from tests.support.amihelpers import spool_names, write_call_file
from tests.support.redisproc import free_port
from tests.test_agi_server import fill
from tests.test_operations import fetch, metric, parse_metrics, until

HOST = "127.0.0.1"
GENUINE = "127.0.0.2"  # the Asterisk
BLOCKED = "+33123456789"


@pytest.fixture(autouse=True)
def more_files() -> None:
    """Both ends of every flood socket live on this machine: raise this process's
    open files limit to its hard limit (the flood process raises its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture
async def screening(redis_url: str) -> AsyncIterator[tuple[Settings, Screener]]:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        listen_host=HOST,
        listen_port=0,
        default_region="FR",
        # the floods run on this machine's two cores beside the server: the deadline
        # is not what is tested here
        deadline_ms=2000,
    )
    await fill(settings, "dnc", Action.BLOCK, [BLOCKED], "asked us to stop")
    screener = Screener.from_settings(settings)
    yield settings, screener
    await screener.close()


async def flood(*args: str) -> asyncio.subprocess.Process:
    """Start ``tests/flood.py`` and wait until all of its connections are open."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.flood", *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert json.loads(line)["ready"] > 0
    return process


async def flood_result(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


async def genuine_sessions(port: int, count: int, *, batch: int = 4) -> list[tuple[str, str]]:
    """``count`` sessions from the Asterisk's address, ``batch`` at a time, half of them
    for the blocked number: ``(number, result)`` of each."""
    fake = FakeAsterisk(HOST, port, local_addr=GENUINE, timeout=10.0)
    out: list[tuple[str, str]] = []
    for start in range(0, count, batch):
        numbers = [
            BLOCKED if i % 2 == 0 else f"+3319876{i:04d}" for i in range(start, start + batch)
        ]
        results = await asyncio.gather(*(fake.call(args=("inbound", n)) for n in numbers))
        for number, result in zip(numbers, results, strict=True):
            out.append((number, result.variables.get("CALLSCREEN_RESULT", "none")))
    return out


def expected(number: str) -> str:
    return "BLOCKED" if number == BLOCKED else "ALLOWED"


async def test_idle_sockets_from_many_peers_do_not_switch_screening_off(
    screening: tuple[Settings, Screener],
) -> None:
    settings, screener = screening
    limit = 150
    server = AgiServer(settings.model_copy(update={"max_connections": limit}), screener)
    await server.start()
    try:
        # 58 addresses x 5 = 290 idle sockets, nearly twice the limit, each reopened
        # as soon as it is closed, for the whole run
        process = await flood("idle", HOST, str(server.port), "--per-source", "5", "--seconds", "4")
        answers = await genuine_sessions(server.port, 80)
        held = server.active_connections
        counts = await flood_result(process)
    finally:
        await server.close(1.0)
    wrong = [(n, r) for n, r in answers if r != expected(n)]
    assert wrong == [], wrong[:5]
    assert server.stats.fails == {}
    assert held > 0 and counts["connects"] > limit
    closed = server.stats.unanswered.get("evicted", 0) + server.stats.unanswered.get("idle", 0)
    assert closed > 0 and counts["closed_by_server"] > 0


async def test_idle_metrics_connections_cannot_take_the_calls_descriptors(
    screening: tuple[Settings, Screener],
) -> None:
    settings, _ = screening
    settings = settings.model_copy(update={"metrics_port": free_port(), "metrics_host": HOST})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with Gateway(settings, load_settings=lambda: settings) as gateway:
        port = gateway.server.port
        assert (await genuine_sessions(port, 2))[0][1] == "BLOCKED"  # Redis connected
        # leave this process 400 descriptors: fewer than the 700 idle connections
        in_use = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 400, hard))
        try:
            process = await flood(
                "idle",
                HOST,
                str(settings.metrics_port),
                "--per-source", "14", "--sources", "127.0.0.3-127.0.0.52",
                "--seconds", "3", "--reopen-delay", "0.05",
            )  # fmt: skip
            answers = await genuine_sessions(port, 40)
            endpoint_open = gateway.endpoint.open
            counts = await flood_result(process)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await until(lambda: gateway.endpoint.open == 0)
        samples = parse_metrics(
            await asyncio.to_thread(fetch, f"http://{HOST}:{settings.metrics_port}/metrics")
        )
    wrong = [(n, r) for n, r in answers if r != expected(n)]
    assert wrong == [], wrong[:5]
    assert endpoint_open <= MAX_METRICS_CONNECTIONS
    assert counts["connects"] >= 700 and gateway.endpoint.refused > 0
    assert metric(samples, "callscreen_peer_events_total", cause="metrics_refused") > 0


async def test_lines_peers_cause_are_rate_limited_and_counted(
    screening: tuple[Settings, Screener], caplog: pytest.LogCaptureFixture
) -> None:
    settings, screener = screening
    server = AgiServer(settings, screener)
    await server.start()
    try:
        with caplog.at_level(logging.INFO, logger="callscreen.agi"):
            for _ in range(300):
                reader, writer = await asyncio.open_connection(HOST, server.port)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await reader.read()
                writer.close()
            answers = await genuine_sessions(server.port, 4)
    finally:
        await server.close(1.0)  # writes the summary of what was held back
    assert [r for n, r in answers] == ["BLOCKED", "ALLOWED"] * 2
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([line for line in lines if "AGI protocol error" in line]) == 1
    [summary] = [line for line in lines if line.startswith("suppressed")]
    assert summary.startswith("suppressed 299 similar lines") and "protocol_error=299" in summary
    assert len(lines) <= 3
    assert server.notices.counts["protocol_error"] == 300
    assert server.stats.unanswered["protocol_error"] == 300


def test_spool_file_names_cannot_forge_log_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "outgoing"
    spool.mkdir()
    name = "x\n2026-01-01 00:00:00 CRITICAL callscreen forged\r\x1b[2J.call"
    write_call_file(spool, name, f"PJSIP/{BLOCKED}@trunk")
    targets = EntryTargets.of([parse_entry(BLOCKED, "FR")])
    with caplog.at_level(logging.INFO, logger="callscreen.cascade"):
        scan = cascade.cancel_queued(str(spool), targets, "FR")
    assert [c.file for c in scan.cancelled] == [name] and spool_names(spool) == set()
    [line] = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "x\\x0a2026-01-01" in line


async def test_accepts_failing_for_lack_of_descriptors_are_logged_and_counted(
    screening: tuple[Settings, Screener], caplog: pytest.LogCaptureFixture
) -> None:
    settings, screener = screening
    server = AgiServer(settings, screener)
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    watch_accept_failures(loop, server)
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(50):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    }
                )
    finally:
        loop.set_exception_handler(before)
        await server.close(0)
    assert server.stats.refused == {"no_descriptors": 50}
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines[0] == (
        "a connection could not be accepted: Too many open files (open files limit reached?)"
    )
    assert len(lines) == 2 and "no_descriptors=49" in lines[1]


def queue_files(spool: Path, numbers: list[str]) -> None:
    """One waiting call file per number, as a dialer writes them (an hour ahead)."""
    when = time.time() + 3600
    for i, number in enumerate(numbers):
        staging = spool.parent / f".{i}.tmp"
        staging.write_text(
            f"Channel: PJSIP/{number}@trunk\nCallerID: <+33140000000>\n"
            "Context: campaign-out\nExtension: s\nPriority: 1\n"
        )
        os.utime(staging, (when, when))
        os.replace(staging, spool / f"call-{i:05d}.call")


async def test_an_opt_out_flood_against_a_large_spool_is_one_bounded_queue(
    screening: tuple[Settings, Screener], tmp_path: Path
) -> None:
    settings, screener = screening
    spool = tmp_path / "outgoing"
    spool.mkdir()
    opted = [f"+3361{i:07d}" for i in range(300)]
    others = [f"+3362{i:07d}" for i in range(4700)]
    queue_files(spool, opted + others)
    settings = settings.model_copy(update={"spool_dir": str(spool), "optout_burst": 1000})
    server = AgiServer(settings, screener)
    route = OptoutRoute(server, screener.client)
    server.routes["optout"] = route
    await server.start()
    try:
        fake = FakeAsterisk(HOST, server.port, timeout=10.0)

        async def opt_outs() -> list[str]:
            results = []
            for start in range(0, len(opted), 10):
                batch = opted[start : start + 10]
                done = await asyncio.gather(
                    *(fake.call(script="optout", args=("outbound", n)) for n in batch)
                )
                results += [r.variables.get("CALLSCREEN_RESULT", "none") for r in done]
            return results

        optouts, answers = await asyncio.gather(opt_outs(), genuine_sessions(server.port, 60))
        assert await route.drain(60.0) is None
        assert route.canceller.wait_idle(0)
    finally:
        await server.close(1.0)
        route.close()
    assert optouts == ["BLOCKED"] * 300
    wrong = [(n, r) for n, r in answers if r != expected(n)]
    assert wrong == [], wrong[:5]
    # every queued call to an opted-out number is gone, the others are all there
    assert len(spool_names(spool)) == 4700 and route.canceller.cancelled == 300
    # 300 requests, a handful of scans: merged, one at a time
    assert route.canceller.submitted == 300 and route.canceller.scans <= 30


def test_requests_are_merged_and_one_scan_serves_every_number_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "outgoing"
    spool.mkdir()
    settings = Settings(_env_file=None, spool_dir=str(spool), default_region="FR")
    release, entered = threading.Event(), threading.Event()
    scanned: list[frozenset[str]] = []
    real = cascade.cancel_queued

    def held(spool_dir: str, targets: EntryTargets, region: str, **kw: Any) -> Any:
        scanned.append(targets.exact)
        entered.set()
        release.wait(10)
        return real(spool_dir, targets, region, **kw)

    monkeypatch.setattr(cascade, "cancel_queued", held)
    canceller = cascade.SpoolCanceller(lambda: settings)
    try:
        assert canceller.submit(["33612345678"]) == 1
        assert entered.wait(10)  # the first scan has started (and is held)
        for _ in range(300):
            canceller.submit(["33612345678"])
        assert canceller.submit([f"336000000{i:02d}" for i in range(50)]) == 50
        assert canceller.pending == 51
        release.set()
        assert canceller.wait_idle(10)
    finally:
        canceller.close()
    assert len(scanned) == 2 and canceller.scans == 2
    assert len(scanned[1]) == 51 and "33612345678" in scanned[1]
