"""The FastAGI server over real TCP, driven by a fake Asterisk — hostile input included."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callscreen.callpath.decision import VARIABLES, Decision, ScreenRequest
from callscreen.callpath.protocol import AgiEnv
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer, Answer, CallInfo
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Result, Scope
from callscreen.core.numbers import parse_entry
from callscreen.services.entries import add_entries
from callscreen.services.table import Table
from tests.support.agiclient import FakeAsterisk, build_env, mset_variables, raw_exchange
from tests.support.polling import until_async as until
from tests.support.redisproc import free_port

HOST = "127.0.0.1"
ENV_TIMEOUT_MS = 2000


class StubScreener:
    """Blocks every number that starts with +1900, allows the rest; records requests."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.requests: list[ScreenRequest] = []

    async def screen(self, request: ScreenRequest) -> Decision:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        if request.number.startswith("+1900"):
            return Decision(
                Result.BLOCKED,
                number=request.number,
                list_name="premium",
                match="+1900*",
                reason=f"premium rate ({request.direction.value}, {request.campaign or '-'})",
            )
        return Decision(Result.ALLOWED, number=request.number, reason=request.campaign)

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision:
        return Decision(Result.UNSCREENED, number="", reason=reason, failed=True)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "listen_host": HOST,
        "listen_port": 0,
        "env_timeout_ms": ENV_TIMEOUT_MS,
        "reply_timeout_ms": 500,
        "deadline_ms": 5_000,
        "max_line_bytes": 4096,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


ServerFactory = Callable[..., Awaitable[AgiServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    servers: list[AgiServer] = []

    async def start(screener: Any = None, **overrides: Any) -> AgiServer:
        server = AgiServer(make_settings(**overrides), screener or StubScreener())
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(1.0)


@pytest.fixture
async def server(start_server: ServerFactory) -> AgiServer:
    return await start_server()


def asterisk(server: AgiServer, **options: Any) -> FakeAsterisk:
    return FakeAsterisk(HOST, server.port, **options)


async def assert_still_serving(server: AgiServer) -> None:
    result = await asterisk(server).call(args=("inbound", "+19005550100"))
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert result.command_count == 1


# --------------------------------------------------------------------- calls


async def test_a_call_sets_all_six_variables_in_one_command(server: AgiServer) -> None:
    result = await asterisk(server).call(args=("inbound", "+19005550100", "spring"))
    assert result.command_count == 1
    assert result.argvs[0][:2] == ["EXEC", "MSet"]
    assert result.variables == {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_LABEL": "Blacklisted",
        "CALLSCREEN_LIST": "premium",
        "CALLSCREEN_MATCH": "+1900*",
        "CALLSCREEN_REASON": "premium rate (inbound, spring)",
        "CALLSCREEN_NUMBER": "+19005550100",
        "CDR(userfield)": "callscreen:BLOCKED:premium",
    }
    assert result.closed_by_server


async def test_empty_values_are_set_too(server: AgiServer) -> None:
    result = await asterisk(server).call(args=("outbound", "+33123456789"))
    assert list(result.variables) == list(VARIABLES)
    assert result.variables["CALLSCREEN_RESULT"] == "ALLOWED"
    assert result.variables["CALLSCREEN_LIST"] == ""
    assert result.variables["CALLSCREEN_LABEL"] == ""


async def test_number_defaults_to_caller_id_or_extension(server: AgiServer) -> None:
    screener = server.screener
    assert isinstance(screener, StubScreener)
    fake = asterisk(server)
    await fake.call(args=("inbound",), callerid="+19005550111")
    await fake.call(args=("outbound", "", "c"), extension="+19005550122")
    first, second = screener.requests
    assert (first.number, first.direction, first.campaign) == (
        "+19005550111",
        Direction.INBOUND,
        "",
    )
    assert (second.number, second.direction, second.campaign) == (
        "+19005550122",
        Direction.OUTBOUND,
        "c",
    )


async def test_a_bad_direction_is_answered_unscreened(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="callscreen.agi"):
        result = await asterisk(server).call(args=("sideways", "+19005550100"))
    assert result.command_count == 1
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert "inbound" in result.variables["CALLSCREEN_REASON"]
    assert any("sideways" in r.getMessage() for r in caplog.records)


async def test_one_info_line_per_call(server: AgiServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="callscreen.agi"):
        await asterisk(server).call(
            args=("inbound", "+19005550100"), uniqueid="1712.7", calleridname="Eve\x07"
        )
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 1
    line = lines[0]
    for part in (
        "uniqueid=1712.7",
        "direction=inbound",
        "number=+19005550100",
        "result=BLOCKED",
        "list=premium",
        "elapsed_ms=",
        "outcome=ok",
    ):
        assert part in line


async def test_unknown_script_is_closed_without_a_command(server: AgiServer) -> None:
    result = await asterisk(server).call(script="nosuch")
    assert result.command_count == 0
    assert result.closed_by_server


async def test_routes_are_extensible(server: AgiServer) -> None:
    async def optout(env: AgiEnv, call: CallInfo) -> Answer:
        return Answer({"OPTOUT_DONE": env.arg(1)}, (("peer", call.peer),))

    server.routes["optout"] = optout
    result = await asterisk(server).call(script="optout", args=("yes",))
    assert result.variables == {"OPTOUT_DONE": "yes"}


async def test_a_failing_handler_is_contained(
    server: AgiServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(env: AgiEnv, call: CallInfo) -> Answer:
        raise RuntimeError("bug")

    server.routes["broken"] = broken
    with caplog.at_level(logging.ERROR, logger="callscreen.agi"):
        result = await asterisk(server).call(script="broken")
    assert result.command_count == 0 and result.closed_by_server
    assert any("AGI connection failed" in r.getMessage() for r in caplog.records)
    await assert_still_serving(server)


async def test_caller_gone_before_the_answer(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    screener = StubScreener(delay=0.1)
    server = await start_server(screener, deadline_ms=1000)
    with caplog.at_level(logging.INFO, logger="callscreen.agi"):
        _, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(build_env(port=server.port, args=("inbound", "+1900")))
        await writer.drain()
        await until(lambda: screener.requests, "the call to be screened")
        writer.close()
        await writer.wait_closed()
        await until(
            lambda: any('outcome="hangup before answer"' in r.getMessage() for r in caplog.records),
            "the hang-up to be logged",
        )
    await assert_still_serving(server)


async def test_many_concurrent_sessions(start_server: ServerFactory) -> None:
    # 300 connections at once on this loop: the deadline (from the accept) is not tested
    server = await start_server(deadline_ms=5000)
    fake = asterisk(server)
    numbers = [f"+1900555{i:04d}" if i % 2 else f"+3312345{i:04d}" for i in range(300)]
    results = await asyncio.gather(*(fake.call(args=("inbound", n)) for n in numbers))
    for number, result in zip(numbers, results, strict=True):
        assert result.command_count == 1
        assert result.variables["CALLSCREEN_NUMBER"] == number
        expected = "BLOCKED" if number.startswith("+1900") else "ALLOWED"
        assert result.variables["CALLSCREEN_RESULT"] == expected


async def test_asterisk_style_writes_and_close(server: AgiServer) -> None:
    """The environment written a line at a time with Nagle on (one to three segments),
    and HANGUP written after the server closed, as Asterisk 22 does."""
    fake = FakeAsterisk(HOST, server.port, asterisk_writes=True)
    results = [await fake.call(args=("inbound", n)) for n in ("+19005550001", "+33123450001")]
    assert [r.variables["CALLSCREEN_RESULT"] for r in results] == ["BLOCKED", "ALLOWED"]
    assert all(r.command_count == 1 and r.closed_by_server for r in results)
    await assert_still_serving(server)


# --------------------------------------------------------------------- replies


async def test_hangup_before_the_reply(server: AgiServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="callscreen.agi"):
        result = await asterisk(server, hangup="before_reply").call(args=("inbound", "+1900"))
    assert result.command_count == 1
    assert result.closed_by_server
    assert any("outcome=hangup" in r.getMessage() for r in caplog.records)
    await assert_still_serving(server)


async def test_hangup_while_screening_gets_511(server: AgiServer) -> None:
    result = await asterisk(server, hangup="after_env").call(args=("inbound", "+1900"))
    assert result.command_count == 1
    assert result.variables == {}  # Asterisk refused EXEC on the dead channel
    assert result.closed_by_server


@pytest.mark.parametrize("mode", ["520", "510", "trying"])
async def test_odd_replies_end_the_call_cleanly(
    server: AgiServer, mode: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="callscreen.agi"):
        result = await asterisk(server, reply_mode=mode).call(args=("inbound", "+1900"))
    assert result.command_count == 1
    assert result.closed_by_server
    if mode != "trying":
        assert any(f"refused the answer: {mode}" in r.getMessage() for r in caplog.records)
    await assert_still_serving(server)


async def test_no_reply_times_out(server: AgiServer) -> None:
    fake = asterisk(server, reply_delay=2.0, timeout=5.0)
    started = time.perf_counter()
    result = await fake.call(args=("inbound", "+1900"))
    assert result.command_count == 1
    assert time.perf_counter() - started < 4.0


# --------------------------------------------------------------------- screening failures


async def test_a_slow_screener_gets_the_fail_policy_answer(start_server: ServerFactory) -> None:
    server = await start_server(StubScreener(delay=10.0), deadline_ms=100)
    result = await asterisk(server).call(args=("inbound", "+19005550100"))
    assert result.command_count == 1
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert "deadline" in result.variables["CALLSCREEN_REASON"]
    assert result.elapsed < 2.0


async def test_the_deadline_runs_from_the_accept(start_server: ServerFactory) -> None:
    # 100 ms of screening fits a 1 s deadline counted from the start of screening,
    # but not once 950 ms went by between the accept and the environment
    server = await start_server(StubScreener(delay=0.1), deadline_ms=1000, env_timeout_ms=5000)
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        await asyncio.sleep(0.95)  # the peer is slow to send its environment
        writer.write(build_env(port=server.port, args=("inbound", "+19005550100")))
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    variables = mset_variables(line.rstrip(b"\n"))
    assert variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert variables["CALLSCREEN_REASON"] == "screening unavailable: deadline exceeded"
    # sent at once, the same call is screened
    assert (await asterisk(server).call(args=("inbound", "+19005550100"))).variables[
        "CALLSCREEN_RESULT"
    ] == "BLOCKED"


async def test_a_failing_screener_gets_the_fail_policy_answer(
    start_server: ServerFactory,
) -> None:
    server = await start_server(StubScreener(fail=True))
    result = await asterisk(server).call(args=("inbound", "+19005550100"))
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert "internal error" in result.variables["CALLSCREEN_REASON"]


# --------------------------------------------------------------------- hostile peers


async def test_connect_and_close(server: AgiServer) -> None:
    for _ in range(20):
        _, writer = await asyncio.open_connection(HOST, server.port)
        writer.close()
        await writer.wait_closed()
    received, _ = await raw_exchange(HOST, server.port, b"", half_close=True)
    assert received == b""
    await assert_still_serving(server)
    await until(lambda: server.active_connections == 0, "every connection to be closed")


async def test_garbage_bytes_are_closed_at_once(server: AgiServer) -> None:
    rng = random.Random(4573)
    for _ in range(10):
        garbage = bytes(rng.randrange(256) for _ in range(2000)) + b"\n"
        received, _ = await raw_exchange(HOST, server.port, garbage)
        assert received == b""
    # refused on the first line, not left to wait for the environment's time limit
    assert server.stats.unanswered == {"protocol_error": 10}
    await assert_still_serving(server)


async def test_an_env_that_never_ends_times_out(server: AgiServer) -> None:
    partial = build_env(port=server.port).split(b"agi_callerid")[0]
    received, took = await raw_exchange(HOST, server.port, partial, timeout=30.0)
    assert received == b""
    assert server.stats.unanswered == {"env_timeout": 1}
    assert took >= ENV_TIMEOUT_MS / 1000 * 0.8  # the time limit, not an early close
    await assert_still_serving(server)


async def test_a_one_megabyte_line(server: AgiServer) -> None:
    received, took = await raw_exchange(HOST, server.port, b"agi_network: " + b"y" * (1 << 20))
    assert received == b""
    assert took < 3.0
    await assert_still_serving(server)


async def test_too_many_env_lines(server: AgiServer) -> None:
    received, _ = await raw_exchange(HOST, server.port, b"agi_x: 1\n" * 1000)
    assert received == b""
    await assert_still_serving(server)


INJECTED_NAME = (
    'Eve "the\\ spammer"\n'
    'EXEC MSet "CALLSCREEN_RESULT=ALLOWED"\n'
    "agi_callerid: +33111111111\n"
    "agi_arg_1: outbound\n"
    "agi_arg_2: +33111111111\n"
    "agi_arg_3: free\n"
    "\n"
    "agi_callingpres: 0\n"
    "agi_arg_1: outbound\n"
    "agi_arg_2: 911"
)


async def test_caller_id_name_injection(server: AgiServer) -> None:
    """Quotes, an AGI command, forged args and an early empty line in the name: the
    server answers once, on the genuine args, and keeps serving other calls."""
    screener = server.screener
    assert isinstance(screener, StubScreener)
    fake = asterisk(server)
    others = [fake.call(args=("inbound", f"+1900555{i:04d}")) for i in range(50)]
    attack = fake.call(
        args=("inbound", "+19005550100", "spring"),
        calleridname=INJECTED_NAME,
        callerid="+19005550100",
        uniqueid="666.1",
    )
    result, *rest = await asyncio.gather(attack, *others)
    assert result.command_count == 1
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert result.variables["CALLSCREEN_NUMBER"] == "+19005550100"
    assert result.variables["CALLSCREEN_REASON"] == "premium rate (inbound, spring)"
    final = [r for r in screener.requests if r.uniqueid == "666.1"][-1]
    assert final.number == "+19005550100" and final.direction is Direction.INBOUND
    assert final.callerid_name.startswith('Eve "the\\ spammer" EXEC MSet')
    assert "\n" not in final.callerid_name
    for other in rest:
        assert other.command_count == 1
        assert other.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    await assert_still_serving(server)


async def test_injection_whose_genuine_tail_arrives_after_the_answer(
    server: AgiServer,
) -> None:
    """The race: the forged block's empty line arrives, the genuine tail only after the
    server answered. The server answers again on the genuine env; the last MSet wins."""
    fake = asterisk(server, pause_after_first_blank=0.15)
    result = await fake.call(
        args=("inbound", "+19005550100", "spring"),
        calleridname=INJECTED_NAME,
        uniqueid="666.2",
    )
    assert 1 <= result.command_count <= 2
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert result.variables["CALLSCREEN_NUMBER"] == "+19005550100"
    assert result.variables["CALLSCREEN_REASON"] == "premium rate (inbound, spring)"


async def test_a_name_with_quotes_and_backslashes_is_harmless(server: AgiServer) -> None:
    result = await asterisk(server).call(
        args=("inbound", "+19005550100"), calleridname='"\\"; HANGUP \\ \t,(['
    )
    assert result.command_count == 1
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"


# --------------------------------------------------------------------- admission


async def test_clients_outside_allowed_networks_are_refused(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(allowed_clients=["10.0.0.0/8", "::1/128"])
    with caplog.at_level(logging.WARNING, logger="callscreen.agi"):
        result = await asterisk(server).call(args=("inbound", "+1900"))
    assert result.command_count == 0
    assert result.closed_by_server
    assert any("not in allowed_clients" in r.getMessage() for r in caplog.records)
    allowed = await start_server(allowed_clients=["127.0.0.0/8"])
    assert (await asterisk(allowed).call(args=("inbound", "+1900"))).command_count == 1


async def test_at_the_limit_a_connection_without_its_env_makes_room(
    start_server: ServerFactory,
) -> None:
    server = await start_server(max_connections=2, env_timeout_ms=5000, idle_close_ms=60_000)
    partial = build_env(port=server.port)[:50]
    holds = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(partial)
        holds.append((reader, writer))
    await until(lambda: server.active_connections == 2)
    try:
        # the newcomer is screened; the oldest connection still without its env goes
        result = await asterisk(server).call(args=("inbound", "+19005550100"))
        assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
        assert await asyncio.wait_for(holds[0][0].read(), 5) == b""
        assert server.stats.unanswered == {"evicted": 1}
    finally:
        for _, writer in holds:
            writer.close()


async def test_above_the_idle_share_silent_connections_are_closed(
    start_server: ServerFactory,
) -> None:
    server = await start_server(max_connections=5, env_timeout_ms=60_000, idle_close_ms=100)
    holds = [await asyncio.open_connection(HOST, server.port) for _ in range(4)]  # 80 %
    try:
        for reader, _ in holds:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert server.stats.unanswered == {"idle": 4}
        await assert_still_serving(server)
    finally:
        for _, writer in holds:
            writer.close()
    # below the share, a connection is given env_timeout_ms as before
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(), 0.5)
    finally:
        writer.close()


async def test_over_max_connections_answers_the_fail_policy(
    start_server: ServerFactory,
) -> None:
    # every slot is a call past its environment (Asterisk slow to reply): nothing to evict
    screener = StubScreener()
    server = await start_server(screener, max_connections=1, reply_timeout_ms=5000)
    slow = FakeAsterisk(HOST, server.port, reply_delay=1.0)
    held = asyncio.create_task(slow.call(args=("inbound", "+19005550100")))
    await until(lambda: len(screener.requests) == 1)
    try:
        result = await asterisk(server).call(args=("inbound", "+19005550100"))
        assert result.command_count == 1
        assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
        assert "overloaded" in result.variables["CALLSCREEN_REASON"]
        # past twice the limit, connections are closed at once
        held2 = asyncio.create_task(slow.call(args=("inbound", "+19005550100")))
        await until(lambda: (server.active_connections, server.waiting_connections) == (2, 0))
        refused, took = await raw_exchange(HOST, server.port, build_env(port=server.port))
        assert refused == b"" and took < 1.0
        assert server.stats.refused == {"overload": 1}
        assert (await held2).variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    finally:
        assert (await held).variables["CALLSCREEN_RESULT"] == "BLOCKED"


# --------------------------------------------------------------------- shutdown


async def test_close_lets_calls_in_flight_finish(start_server: ServerFactory) -> None:
    screener = StubScreener(delay=0.2)
    server = await start_server(screener, deadline_ms=1000)
    port = server.port
    call = asyncio.create_task(asterisk(server).call(args=("inbound", "+19005550100")))
    await until(lambda: screener.requests, "the call to be in flight")
    await server.close(grace=2.0)
    result = await call
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert server.sockets == ()
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, port)


async def test_close_answers_a_call_whose_environment_is_still_arriving(
    start_server: ServerFactory,
) -> None:
    # A connection's task starts only once its environment is complete: shutting down
    # must still count a connection half-way through its environment as a call.
    server = await start_server(env_timeout_ms=5000)
    env = build_env(args=("inbound", "+19005550100"))
    half = env.index(b"agi_calleridname")
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(env[:half])
    await writer.drain()
    await until(lambda: server.waiting_connections == 1, "the connection waiting for its env")
    closing = asyncio.create_task(server.close(grace=3.0))
    await until(lambda: server.sockets == (), "the listener closed")
    writer.write(env[half:])
    await writer.drain()
    command = await asyncio.wait_for(reader.readline(), 3)
    assert command.startswith(b"EXEC MSet ")
    assert mset_variables(command)["CALLSCREEN_RESULT"] == "BLOCKED"
    writer.write(b"200 result=0\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""  # then the server closes
    await asyncio.wait_for(closing, 3)
    writer.close()


async def test_close_cancels_what_outlives_the_grace(start_server: ServerFactory) -> None:
    screener = StubScreener(delay=10.0)
    server = await start_server(screener, deadline_ms=20_000)
    port = server.port
    call = asyncio.create_task(FakeAsterisk(HOST, port).call(args=("inbound", "+1900")))
    await until(lambda: screener.requests, "the call to be in flight")
    started = time.perf_counter()
    await server.close(grace=0.1)
    assert time.perf_counter() - started < 2.0
    result = await call
    assert result.command_count == 0 and result.closed_by_server


async def test_runs_on_uvloop_too() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[str]:
        server = AgiServer(make_settings(), StubScreener())
        await server.start()
        try:
            fake = asterisk(server)
            results = await asyncio.gather(
                *(fake.call(args=("inbound", f"+1900555{i:04d}")) for i in range(50))
            )
        finally:
            await server.close(1.0)
        return [r.variables["CALLSCREEN_RESULT"] for r in results]

    # a fresh thread: pytest-asyncio's loop is running in this one
    results = await asyncio.to_thread(uvloop.run, main())
    assert results == ["BLOCKED"] * 50


# --------------------------------------------------------------------- the real screener


async def fill(
    settings: Settings, name: str, action: Action, entries: list[str], reason: str
) -> None:
    table = Table(settings)
    try:
        info = await table.create_list(name, action, Direction.BOTH, Scope.GLOBAL, "", "tester")
        batch = await table.new_batch("add", reason=reason, source="test", by="tester")
        keys = [parse_entry(e, settings.default_region) for e in entries]
        await add_entries(table, info, keys, batch)
    finally:
        await table.close()


async def test_real_screener_over_fastagi(redis_url: str, start_server: ServerFactory) -> None:
    overrides = {"redis_url": redis_url, "default_region": "FR", "deadline_ms": 1000}
    settings = make_settings(**overrides)
    await fill(settings, "dnc", Action.BLOCK, ["+33123456789"], 'asked us to stop, "twice" (a\\b)')
    await fill(settings, "premium", Action.LABEL, ["+33899*"], "premium rate")
    screener = Screener.from_settings(settings)
    try:
        server = await start_server(screener, **overrides)
        fake = asterisk(server)
        blocked, labeled, allowed, emergency = await asyncio.gather(
            fake.call(args=("inbound", "01 23 45 67 89")),
            fake.call(args=("inbound",), callerid="+33899123456", calleridname='Bob "B" (x,y)'),
            fake.call(args=("outbound", "+33198765432", "spring")),
            fake.call(args=("outbound",), extension="112"),
        )
        nameless = await fake.call(
            args=("inbound", "+33899123457"), callerid="+33899123457", calleridname="unknown"
        )
    finally:
        await screener.close()
    assert blocked.command_count == 1
    assert blocked.variables == {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_LABEL": "Blacklisted",
        "CALLSCREEN_LIST": "dnc",
        "CALLSCREEN_MATCH": "+33123456789",
        "CALLSCREEN_REASON": 'asked us to stop, "twice" (a\\b)',
        "CALLSCREEN_NUMBER": "+33123456789",
        "CDR(userfield)": "callscreen:BLOCKED:dnc",
    }
    assert labeled.variables["CALLSCREEN_RESULT"] == "LABELED"
    assert labeled.variables["CALLSCREEN_MATCH"] == "+33899*"
    # what the dialplan used to do after the answer now comes with it
    assert labeled.variables["CDR(userfield)"] == "callscreen:LABELED:premium"
    assert labeled.variables["CALLERID(name)"] == 'Blacklisted: Bob "B" (x,y)'
    assert nameless.variables["CALLERID(name)"] == "Blacklisted: +33899123457"
    assert "CDR(userfield)" not in allowed.variables
    assert "CALLERID(name)" not in allowed.variables
    assert allowed.variables["CALLSCREEN_RESULT"] == "ALLOWED"
    assert allowed.variables["CALLSCREEN_NUMBER"] == "+33198765432"
    assert emergency.variables["CALLSCREEN_RESULT"] == "ALLOWED"


async def test_real_screener_fails_closed_when_redis_is_down(
    start_server: ServerFactory,
) -> None:
    overrides = {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "default_region": "FR",
        "deadline_ms": 200,
        "fail_policy": "closed",
    }
    screener = Screener.from_settings(make_settings(**overrides))
    try:
        server = await start_server(screener, **overrides)
        fake = asterisk(server)
        inbound, emergency = await asyncio.gather(
            fake.call(args=("inbound", "+33123456789")),
            fake.call(args=("outbound", "112")),
        )
    finally:
        await screener.close()
    assert inbound.command_count == 1
    assert inbound.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert inbound.variables["CALLSCREEN_LABEL"] == ""
    assert inbound.variables["CALLSCREEN_REASON"].startswith("screening unavailable")
    # one CDR form for both failure paths, no Redis address in it; the number read
    assert inbound.variables["CDR(userfield)"] == "callscreen:BLOCKED:screening unavailable"
    assert inbound.variables["CALLSCREEN_NUMBER"] == "+33123456789"
    assert emergency.variables["CALLSCREEN_RESULT"] != "BLOCKED"
    # an emergency number is allowed before Redis is asked
    assert "CDR(userfield)" not in emergency.variables
    assert emergency.variables["CALLSCREEN_NUMBER"] == "112"
    assert inbound.elapsed < 2.0


# --------------------------------------------------------------------- classic AGI


async def run_classic(
    tmp_path: Path,
    redis_url: str,
    argv: list[str],
    env: bytes,
    *,
    reply: bytes = b"200 result=0\n",
    sighup: bool = False,
) -> tuple[int, list[bytes], str]:
    """Run ``callscreen-agi`` as Asterisk does: env on stdin, commands on stdout."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    environ |= {
        "CALLSCREEN_REDIS_URL": redis_url,
        "CALLSCREEN_DEFAULT_REGION": "FR",
        "CALLSCREEN_DEADLINE_MS": "2000",
        "CALLSCREEN_LOG_LEVEL": "INFO",
    }
    script = Path(sys.executable).parent / "callscreen-agi"
    command = [str(script)] if script.exists() else [sys.executable, "-m", CLASSIC]
    proc = await asyncio.create_subprocess_exec(
        *command,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    commands: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            proc.stdin.write(env)
            await proc.stdin.drain()
            while line := await proc.stdout.readline():
                commands.append(line)
                if sighup:
                    proc.send_signal(signal.SIGHUP)
                    await until(lambda: not signal_pending(proc.pid), "SIGHUP to be delivered")
                proc.stdin.write(reply)
                await proc.stdin.drain()
            stderr = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, commands, stderr


CLASSIC = "callscreen.callpath.classic"


def signal_pending(pid: int) -> bool:
    """Whether a signal sent to ``pid`` waits for delivery (/proc's pending masks)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [line.split()[1] for line in status.splitlines() if line[:6] in ("SigPnd", "ShdPnd")]
    return any(int(mask, 16) for mask in masks)


@pytest.mark.slow
async def test_classic_agi_answers_with_one_command(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(redis_url=redis_url, default_region="FR")
    await fill(settings, "dnc", Action.BLOCK, ["+33123456789"], "stop, please (really)")
    argv = ["inbound", "01 23 45 67 89", "spring"]
    env = build_env(network=False, script="callscreen-agi", args=argv, uniqueid="42.1")
    code, commands, stderr = await run_classic(tmp_path, redis_url, argv, env, sighup=True)
    assert code == 0, stderr
    assert len(commands) == 1
    assert mset_variables(commands[0]) == {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_LABEL": "Blacklisted",
        "CALLSCREEN_LIST": "dnc",
        "CALLSCREEN_MATCH": "+33123456789",
        "CALLSCREEN_REASON": "stop, please (really)",
        "CALLSCREEN_NUMBER": "+33123456789",
        "CDR(userfield)": "callscreen:BLOCKED:dnc",
    }
    assert "uniqueid=42.1" in stderr and "result=BLOCKED" in stderr


@pytest.mark.slow
async def test_classic_agi_ignores_a_forged_env(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(redis_url=redis_url, default_region="FR")
    await fill(settings, "dnc", Action.BLOCK, ["+33123456789"], "dnc")
    argv = ["inbound"]
    env = build_env(
        network=False,
        script="callscreen-agi",
        args=argv,
        callerid="+33123456789",
        calleridname=INJECTED_NAME.replace("+33111111111", "+33999999999"),
    )
    code, commands, stderr = await run_classic(tmp_path, redis_url, argv, env)
    assert code == 0, stderr
    assert len(commands) == 1
    variables = mset_variables(commands[0])
    assert variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert variables["CALLSCREEN_NUMBER"] == "+33123456789"


@pytest.mark.slow
async def test_classic_agi_env_that_never_ends(tmp_path: Path, redis_url: str) -> None:
    partial = build_env(network=False, script="callscreen-agi")[:200]
    environ_timeout = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        CLASSIC,
        "inbound",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")},
            "CALLSCREEN_REDIS_URL": redis_url,
            "CALLSCREEN_ENV_TIMEOUT_MS": "300",
        },
        cwd=tmp_path,
    )
    assert proc.stdin is not None
    proc.stdin.write(partial)
    await proc.stdin.drain()
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert out == b""
    assert b"no complete AGI environment" in err
    assert time.perf_counter() - environ_timeout < 15
