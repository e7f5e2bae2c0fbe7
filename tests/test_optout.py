"""Opt-out capture over real TCP: a fake Asterisk calls ``optout`` on the FastAGI server,
which writes to a real Redis; the next call to the number is blocked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from callscreen.asterisk import cascade
from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.protocol import AgiEnv
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer, CallInfo
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Result, Scope, Status
from callscreen.gateway import optout
from tests.support.agiclient import FakeAsterisk
from tests.support.amihelpers import make_settings, mark_dialing, spool_names
from tests.support.amihelpers import write_call_file as queue_call
from tests.support.blocking import SyncAdmin as Admin
from tests.support.redisproc import RedisProcess

HOST = "127.0.0.1"
NUM = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
async def start(redis_url: str, spool: Path) -> AsyncIterator[Callable[..., Any]]:
    running: list[tuple[AgiServer, Screener, optout.OptoutRoute]] = []

    async def start_server(**overrides: Any) -> tuple[AgiServer, Settings]:
        values: dict[str, Any] = {
            "listen_host": HOST,
            "listen_port": 0,
            "deadline_ms": 2_000,
            "spool_dir": str(spool),
        }
        values.update(overrides)
        settings = make_settings(values.pop("redis_url", redis_url), **values)
        screener = Screener.from_settings(settings)
        server = AgiServer(settings, screener)
        route = optout.OptoutRoute(server, screener.client)
        server.routes["optout"] = route
        await server.start()
        running.append((server, screener, route))
        return server, settings

    yield start_server
    for server, screener, route in running:
        await server.close(1.0)
        await screener.close()
        await route.drain(2.0)


@pytest.fixture
def admin(redis_url: str) -> Iterator[Admin]:
    service = Admin(make_settings(redis_url))
    yield service
    service.close()


def asterisk(server: AgiServer) -> FakeAsterisk:
    return FakeAsterisk(HOST, server.port)


async def test_opt_out_puts_the_number_on_the_list_and_the_next_call_is_blocked(
    start: Callable[..., Any], admin: Admin
) -> None:
    server, _settings = await start()
    fake = asterisk(server)
    result = await fake.call(script="optout", args=("inbound", "06 12 34 56 78", "spring"))

    assert result.command_count == 1  # one EXEC MSet, as for screen
    assert result.argvs[0][:2] == ["EXEC", "MSet"]
    v = result.variables
    assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_LIST"]) == ("BLOCKED", "do-not-call")
    assert (v["CALLSCREEN_MATCH"], v["CALLSCREEN_NUMBER"]) == (NUM, NUM)
    assert v["CALLSCREEN_LABEL"] == "Blacklisted"
    assert v["CALLSCREEN_REASON"].startswith("opt-out request (campaign spring, 20")

    # the list was created: global, block, both directions
    listed = admin.show_list("do-not-call")
    assert (listed.action, listed.direction, listed.scope) == (
        Action.BLOCK,
        Direction.BOTH,
        Scope.GLOBAL,
    )
    [entry] = admin.list_entries("do-not-call").entries
    assert (entry.entry, entry.status, entry.source) == (NUM, Status.ACTIVE, "opt-out")
    assert entry.reason == v["CALLSCREEN_REASON"] and entry.updated_at
    assert [e.op for e in admin.history("do-not-call")] == ["add", "create"]
    assert admin.history("do-not-call", NUM)[0].reason == entry.reason
    assert listed.counts["active"] == 1

    # the next calls to and from the number, in any campaign, are blocked
    for args in (("outbound", NUM, "autumn"), ("inbound", "0612345678"), ("outbound", NUM)):
        screened = await fake.call(args=args)
        assert screened.variables["CALLSCREEN_RESULT"] == "BLOCKED", args
        assert screened.variables["CALLSCREEN_LIST"] == "do-not-call"
    other = await fake.call(args=("outbound", OTHER))
    assert other.variables["CALLSCREEN_RESULT"] == "ALLOWED"


async def test_the_other_party_by_direction_when_no_number_is_given(
    start: Callable[..., Any], admin: Admin
) -> None:
    server, _ = await start(optout_list="stop")
    fake = asterisk(server)
    inbound = await fake.call(script="optout", args=("inbound",), callerid=NUM, extension="100")
    outbound = await fake.call(
        script="optout", args=("outbound", "", "spring"), callerid="100", extension=OTHER
    )
    assert inbound.variables["CALLSCREEN_NUMBER"] == NUM
    assert outbound.variables["CALLSCREEN_NUMBER"] == OTHER
    assert sorted(e.entry for e in admin.list_entries("stop").entries) == [NUM, OTHER]


async def test_opting_out_again_and_removed_or_pending_entries(
    start: Callable[..., Any], admin: Admin
) -> None:
    admin.create_list("do-not-call", Action.BLOCK)
    admin.add("do-not-call", [NUM], reason="old")
    admin.remove("do-not-call", [NUM], reason="asked to be called again")
    server, _ = await start()
    fake = asterisk(server)
    first = await fake.call(script="optout", args=("inbound", NUM))
    again = await fake.call(script="optout", args=("inbound", NUM))
    assert first.variables["CALLSCREEN_RESULT"] == again.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    [entry] = admin.list_entries("do-not-call").entries
    assert entry.status is Status.ACTIVE and entry.source == "opt-out"
    counts = admin.show_list("do-not-call").counts
    assert (counts["active"], counts["deleted"]) == (1, 0)

    admin.approve("do-not-call", [NUM], permanent=True)
    await fake.call(script="optout", args=("inbound", NUM))
    assert admin.list_entries("do-not-call").entries[0].status is Status.PERMANENT


async def test_what_cannot_be_recorded_is_answered_unscreened(
    start: Callable[..., Any], admin: Admin
) -> None:
    server, _ = await start()
    fake = asterisk(server)
    cases = {
        ("inbound", "anonymous"): "opt-out not recorded: ",
        ("inbound", "123"): "opt-out not recorded: not a valid number",
        ("inbound", "+33*"): "opt-out not recorded: a prefix is not a number",
        ("sideways", NUM): "bad request: ",
    }
    for args, reason in cases.items():
        result = await fake.call(script="optout", args=args, callerid="anonymous")
        assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED", args
        assert result.variables["CALLSCREEN_REASON"].startswith(reason), args
        assert result.variables["CALLSCREEN_LABEL"] == ""
    empty = await fake.call(script="optout", args=("inbound",), callerid="")
    assert empty.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert admin.table.all_lists() == []

    # a do-not-call list that an admin turned into a label list: recorded, not blocked
    admin.create_list("do-not-call", Action.LABEL)
    result = await fake.call(script="optout", args=("inbound", NUM))
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert "a label list: not blocked" in result.variables["CALLSCREEN_REASON"]
    assert [e.entry for e in admin.list_entries("do-not-call").entries] == [NUM]


async def test_redis_down_answers_within_the_deadline(
    start: Callable[..., Any], private_redis: RedisProcess
) -> None:
    server, _ = await start(redis_url=private_redis.url, deadline_ms=300)
    private_redis.kill()
    result = await asterisk(server).call(script="optout", args=("inbound", NUM))
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert result.variables["CALLSCREEN_REASON"].startswith("opt-out not recorded")
    assert result.variables["CALLSCREEN_NUMBER"] == NUM


async def test_queued_calls_to_the_number_are_cancelled_off_the_call_path(
    start: Callable[..., Any], spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_call(spool, "queued.call", f"PJSIP/{NUM}@trunk")
    # the call the person is on right now, pressing 9: being dialed, left alone
    mark_dialing(queue_call(spool, "this-call.call", f"PJSIP/{NUM}@trunk", due_in=-1))
    queue_call(spool, "other.call", f"PJSIP/{OTHER}@trunk")

    release = threading.Event()
    entered = threading.Event()
    real = cascade.cancel_queued

    def slow_cancel(*args: Any, **kwargs: Any) -> cascade.SpoolScan:
        entered.set()
        release.wait(5.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(cascade, "cancel_queued", slow_cancel)
    server, _ = await start()
    result = await asterisk(server).call(script="optout", args=("outbound", NUM, "spring"))
    # answered while the cascade has not run yet: it never delays the answer
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert await asyncio.to_thread(entered.wait, 5.0)
    assert "queued.call" in spool_names(spool)
    release.set()
    route = server.routes["optout"]
    assert isinstance(route, optout.OptoutRoute)
    await route.drain(5.0)
    assert spool_names(spool) == {"this-call.call", "other.call"}


async def test_a_forged_caller_id_opt_out_cancels_no_other_customers_call(
    start: Callable[..., Any], spool: Path, admin: Admin
) -> None:
    # a campaign's call to a customer, presenting the company's number
    queue_call(spool, "customer.call", "PJSIP/+14155550100@trunk", callerid="+33140000000")
    server, _ = await start()
    route = server.routes["optout"]
    assert isinstance(route, optout.OptoutRoute)
    # someone calls in presenting the company's number and presses 9
    result = await asterisk(server).call(
        script="optout", args=("inbound", ""), callerid="+33140000000"
    )
    assert result.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    await route.drain(5.0)
    assert spool_names(spool) == {"customer.call"}


async def test_opt_outs_only_from_the_asterisk_hosts(
    start: Callable[..., Any], admin: Admin
) -> None:
    server, _ = await start(optout_clients="10.0.0.0/8,192.0.2.7")
    result = await asterisk(server).call(script="optout", args=("inbound", NUM))
    assert result.command_count == 1
    assert result.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert result.variables["CALLSCREEN_REASON"] == (
        "opt-out not recorded: not accepted from this address (optout_clients)"
    )
    assert admin.table.all_lists() == []  # nothing written
    # screening from the same peer is not affected
    assert (await asterisk(server).call(args=("inbound", NUM))).variables[
        "CALLSCREEN_RESULT"
    ] == "ALLOWED"
    # the default is loopback only
    assert Settings(_env_file=None).optout_clients == ["127.0.0.0/8", "::1"]


async def test_opt_outs_are_rate_limited_per_peer(start: Callable[..., Any], admin: Admin) -> None:
    server, _ = await start(optout_rate=0.01, optout_burst=3)
    fake = asterisk(server)
    answers = [
        (await fake.call(script="optout", args=("inbound", f"+336123456{i:02d}"))) for i in range(5)
    ]
    results = [a.variables["CALLSCREEN_RESULT"] for a in answers]
    assert results == ["BLOCKED"] * 3 + ["UNSCREENED"] * 2
    assert (
        answers[-1].variables["CALLSCREEN_REASON"].endswith("too many requests from this address")
    )
    assert len(admin.list_entries("do-not-call").entries) == 3
    # another address has its own bucket
    other = FakeAsterisk(HOST, server.port, local_addr="127.0.0.2")
    again = await other.call(script="optout", args=("inbound", OTHER))
    assert again.variables["CALLSCREEN_RESULT"] == "BLOCKED"


def test_the_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = optout.RateLimiter(clock=lambda: now[0])
    assert [limiter.allow("a", 20.0, 100) for _ in range(101)].count(True) == 100
    now[0] += 0.05  # one token back
    assert limiter.allow("a", 20.0, 100) and not limiter.allow("a", 20.0, 100)
    now[0] += 1000
    assert [limiter.allow("a", 20.0, 100) for _ in range(101)].count(True) == 100


async def test_opt_outs_are_refused_while_overloaded(
    start: Callable[..., Any], admin: Admin
) -> None:
    server, _ = await start()
    route = server.routes["optout"]
    env = AgiEnv(network_script="optout", uniqueid="1.1", args=("inbound", NUM))
    answer = await route(env, CallInfo(peer="127.0.0.1:5000", overloaded=True, host="127.0.0.1"))
    assert answer.variables["CALLSCREEN_RESULT"] == "UNSCREENED"
    assert answer.variables["CALLSCREEN_REASON"] == "opt-out not recorded: gateway overloaded"
    assert answer.cause == "overloaded"
    assert admin.table.all_lists() == []


async def test_an_opt_out_of_a_listed_number_writes_nothing(
    start: Callable[..., Any], admin: Admin, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans: list[object] = []
    real = cascade.cancel_queued

    def counted(*args: Any, **kwargs: Any) -> cascade.SpoolScan:
        scans.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cascade, "cancel_queued", counted)
    server, _ = await start()
    route = server.routes["optout"]
    assert isinstance(route, optout.OptoutRoute)
    fake = asterisk(server)
    first = await fake.call(script="optout", args=("inbound", NUM))
    assert first.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    await route.drain(5.0)
    assert len(scans) == 1
    client = redis.Redis.from_url(redis_url)
    try:
        before = (client.get("{cs}:bseq"), client.dbsize(), client.info("memory")["used_memory"])
        history = len(admin.history("do-not-call"))
        for _ in range(30):
            again = await fake.call(script="optout", args=("inbound", NUM))
            assert again.variables["CALLSCREEN_RESULT"] == "BLOCKED"
            assert again.variables["CALLSCREEN_LIST"] == "do-not-call"
        await route.drain(5.0)
        after = (client.get("{cs}:bseq"), client.dbsize())
        assert after == before[:2]
        assert client.info("memory")["used_memory"] - before[2] < 64 * 1024
    finally:
        client.close()
    assert len(admin.history("do-not-call")) == history
    assert len(scans) == 1  # no cascade either


async def test_opt_out_function_over_lean_redis(redis_url: str, spool: Path) -> None:
    settings = make_settings(redis_url, spool_dir=str(spool), optout_list="dnc")
    async with LeanRedis.from_settings(settings) as client:
        decision = await optout.opt_out(
            settings, client, ScreenRequest("tel:+33612345678", Direction.INBOUND, "c1", "u1")
        )
        assert decision.result is Result.BLOCKED and not decision.failed
        assert (decision.list_name, decision.number) == ("dnc", NUM)
        # three round trips once Redis has the scripts: list and batch, entry, audit
        before = client.requests
        second = await optout.opt_out(settings, client, ScreenRequest(OTHER, Direction.OUTBOUND))
        assert second.result is Result.BLOCKED
        assert client.requests - before == 3
        screener = Screener(settings, client)
        blocked = await screener.screen(ScreenRequest(NUM, Direction.OUTBOUND))
        assert (blocked.result, blocked.list_name) == (Result.BLOCKED, "dnc")


async def test_an_opt_out_of_a_permanent_entry_is_permanent_unchanged(
    start: Callable[..., Any], admin: Admin
) -> None:
    admin.create_list("do-not-call", Action.BLOCK)
    admin.add("do-not-call", [NUM], reason="court order", external_id="CASE-1")
    admin.approve("do-not-call", [NUM], permanent=True)
    before = admin.show_entry("do-not-call", NUM)
    server, _ = await start()
    answer = await asterisk(server).call(script="optout", args=("inbound", NUM))
    assert answer.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert answer.variables["CALLSCREEN_REASON"] == (
        "opt-out request (already on do-not-call: permanent, unchanged)"
    )
    assert admin.show_entry("do-not-call", NUM) == before
