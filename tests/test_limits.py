"""Hostile peers against the gateway's limits: floods that last seconds, from other
processes (``tests/flood.py``), while genuine sessions must keep getting their right
answers. The long versions are in ``bench/soak.py``."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer
from callscreen.core.config import Settings
from callscreen.core.model import Action
from tests.support.agiclient import FakeAsterisk
from tests.test_agi_server import fill

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
