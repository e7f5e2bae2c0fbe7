"""The screening core against a real Redis: precedence, scopes, directions, policies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import EMERGENCY_REASON, Screener
from callscreen.core.config import AnonymousPolicy, FailPolicy, Settings
from callscreen.core.model import LABEL, Action, Direction, Result, Scope, Status
from callscreen.core.numbers import parse_entry
from callscreen.services.entries import add_entries
from callscreen.services.table import Table
from tests.support.redisproc import RedisProcess

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"redis_url": url, "default_region": "FR", "deadline_ms": 5_000}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def table(redis_url: str) -> AsyncIterator[Table]:
    t = Table(make_settings(redis_url))
    yield t
    await t.close()


@pytest.fixture
async def screener(redis_url: str) -> AsyncIterator[Screener]:
    s = Screener.from_settings(make_settings(redis_url))
    yield s
    await s.close()


async def fill(
    table: Table,
    name: str,
    action: Action,
    entries: list[str],
    *,
    direction: Direction = Direction.BOTH,
    scope: Scope = Scope.GLOBAL,
    reason: str = "",
    status: Status = Status.ACTIVE,
    expires: int | None = None,
) -> None:
    try:
        info = await table.get_list(name)
    except Exception:
        info = await table.create_list(name, action, direction, scope, "", "tester")
    batch = await table.new_batch("add", reason=reason, source="test", by="tester")
    keys = [parse_entry(e, "FR") for e in entries]
    await add_entries(table, info, keys, batch, status=status, expires=expires)


async def ask(
    screener: Screener, number: str, direction: Direction = IN, campaign: str = ""
) -> tuple[Result, str, str, str]:
    d = await screener.screen(ScreenRequest(number, direction, campaign))
    return d.result, d.list_name, d.match, d.reason


async def test_exact_number_blocks_with_list_match_and_reason(
    table: Table, screener: Screener
) -> None:
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"], reason="asked us to stop")
    d = await screener.screen(ScreenRequest("+33123456789", IN))
    assert d.result is Result.BLOCKED
    assert d.variables() == {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_LABEL": LABEL,
        "CALLSCREEN_LIST": "dnc",
        "CALLSCREEN_MATCH": "+33123456789",
        "CALLSCREEN_REASON": "asked us to stop",
        "CALLSCREEN_NUMBER": "+33123456789",
    }


async def test_unlisted_number_is_allowed_with_empty_variables(
    table: Table, screener: Screener
) -> None:
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
    d = await screener.screen(ScreenRequest("+33123456780", IN))
    assert d.variables() == {
        "CALLSCREEN_RESULT": "ALLOWED",
        "CALLSCREEN_LABEL": "",
        "CALLSCREEN_LIST": "",
        "CALLSCREEN_MATCH": "",
        "CALLSCREEN_REASON": "",
        "CALLSCREEN_NUMBER": "+33123456780",
    }


async def test_prefix_blocks_and_longer_allow_entry_wins(table: Table, screener: Screener) -> None:
    await fill(table, "premium", Action.BLOCK, ["+3389*"], reason="premium rate")
    await fill(table, "partners", Action.ALLOW, ["+33899123*"])
    assert await ask(screener, "+33 8 99 00 00 00") == (
        Result.BLOCKED, "premium", "+3389*", "premium rate",
    )  # fmt: skip
    assert (await ask(screener, "+33899123456"))[:3] == (Result.ALLOWED, "partners", "+33899123*")


async def test_exact_beats_prefix_and_block_beats_label_at_equal_specificity(
    table: Table, screener: Screener
) -> None:
    await fill(table, "france", Action.BLOCK, ["+33*"])
    await fill(table, "vip", Action.ALLOW, ["+33123456789"])
    await fill(table, "watch", Action.LABEL, ["+3361*"])
    await fill(table, "stop", Action.BLOCK, ["+3361*"])
    assert (await ask(screener, "+33123456789"))[0] is Result.ALLOWED
    assert (await ask(screener, "+33612345678"))[:2] == (Result.BLOCKED, "stop")


async def test_label_list_labels(table: Table, screener: Screener) -> None:
    await fill(table, "suspect", Action.LABEL, ["+33611111111"], reason="complaints")
    d = await screener.screen(ScreenRequest("+33611111111", IN))
    assert (d.result, d.label, d.list_name) == (Result.LABELED, LABEL, "suspect")


async def test_direction_filters_lists(table: Table, screener: Screener) -> None:
    await fill(table, "inbound-only", Action.BLOCK, ["+33611111111"], direction=IN)
    assert (await ask(screener, "+33611111111", IN))[0] is Result.BLOCKED
    assert (await ask(screener, "+33611111111", OUT))[0] is Result.ALLOWED


async def test_campaign_list_applies_to_its_campaigns_only(
    table: Table, screener: Screener
) -> None:
    await fill(table, "camp-dnc", Action.BLOCK, ["+33611111111"], scope=Scope.CAMPAIGN)
    await fill(table, "global-dnc", Action.BLOCK, ["+33622222222"])
    await table.assign("spring", ["camp-dnc", "global-dnc"])
    assert (await ask(screener, "+33611111111", OUT, "spring"))[0] is Result.BLOCKED
    assert (await ask(screener, "+33611111111", OUT, "autumn"))[0] is Result.ALLOWED
    assert (await ask(screener, "+33611111111", OUT))[0] is Result.ALLOWED
    # a global list applies everywhere, assigned or not
    assert (await ask(screener, "+33622222222", OUT, "autumn"))[0] is Result.BLOCKED


async def test_national_format_matches_e164_entry(table: Table, screener: Screener) -> None:
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
    for raw in ("01 23 45 67 89", "0033123456789", "tel:+33-1-23-45-67-89", "sip:0123456789@pbx"):
        assert (await ask(screener, raw))[0] is Result.BLOCKED, raw


async def test_emergency_number_is_never_blocked_outbound(redis_url: str, table: Table) -> None:
    await fill(table, "france", Action.BLOCK, ["+33*", "+331*"])
    await fill(table, "short", Action.BLOCK, ["+33112*", "+3315*", "+3317*", "+3318*"])
    for policy in FailPolicy:
        s = Screener.from_settings(make_settings(redis_url, fail_policy=policy))
        try:
            for number in ("112", "15", "17", "18"):
                d = await s.screen(ScreenRequest(number, OUT))
                assert (d.result, d.reason) == (Result.ALLOWED, EMERGENCY_REASON), number
            assert s.fail_decision(ScreenRequest("112", OUT), "down").result is Result.UNSCREENED
        finally:
            await s.close()
    # inbound, the same digits are screened like any number
    s = Screener.from_settings(make_settings(redis_url))
    try:
        assert (await s.screen(ScreenRequest("0123456789", IN))).result is Result.BLOCKED
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (AnonymousPolicy.ALLOW, Result.ALLOWED),
        (AnonymousPolicy.LABEL, Result.LABELED),
        (AnonymousPolicy.BLOCK, Result.BLOCKED),
    ],
)
async def test_anonymous_caller_follows_policy(
    redis_url: str, policy: AnonymousPolicy, expected: Result
) -> None:
    s = Screener.from_settings(make_settings(redis_url, anonymous_policy=policy))
    try:
        for raw in ("anonymous", "", "Restricted", "sip:anonymous@anonymous.invalid"):
            d = await s.screen(ScreenRequest(raw, IN))
            assert d.result is expected, raw
            assert d.number == "" and not d.failed
    finally:
        await s.close()


async def test_pending_and_expired_entries_are_not_enforced(
    table: Table, screener: Screener
) -> None:
    await fill(table, "dnc", Action.BLOCK, ["+33611111111"], status=Status.PENDING)
    await fill(table, "old", Action.BLOCK, ["+33622222222"], expires=int(time.time()) - 1)
    await fill(table, "new", Action.BLOCK, ["+33633333333"], expires=int(time.time()) + 3600)
    assert (await ask(screener, "+33611111111"))[0] is Result.ALLOWED
    assert (await ask(screener, "+33622222222"))[0] is Result.ALLOWED
    assert (await ask(screener, "+33633333333"))[0] is Result.BLOCKED
    d = await screener.decide(ScreenRequest("+33611111111", IN), include_inactive=True)
    assert d.result is Result.ALLOWED
    assert [(m.list_name, m.status) for m in d.matches] == [("dnc", Status.PENDING)]


async def test_one_round_trip_per_decision_whatever_the_number_of_lists(
    table: Table, redis_url: str
) -> None:
    for i in range(30):
        await fill(table, f"list{i}", Action.BLOCK, [f"+336{i:02d}*"])
    client = LeanRedis.from_settings(make_settings(redis_url))
    s = Screener(make_settings(redis_url), client)
    try:
        await s.screen(ScreenRequest("+33600000000", IN))  # loads the script
        evalsha = await _evalsha_calls(client)
        sent = client.requests
        for _ in range(10):
            assert (await s.screen(ScreenRequest("+33629000000", IN))).list_name == "list29"
        assert client.requests - sent == 10
        # the server saw exactly those ten scripts (the INFO call is not an EVALSHA)
        assert await _evalsha_calls(client) - evalsha == 10
    finally:
        await s.close()


async def _evalsha_calls(client: LeanRedis) -> int:
    """EVALSHA and EVALSHA_RO calls the server has seen (the lookup is read-only)."""
    info = await client.call("INFO", "commandstats")
    calls = 0
    for line in info.decode().splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_evalsha_ro:")):
            calls += int(line.split("calls=")[1].split(",")[0])
    return calls


@pytest.mark.parametrize("policy", list(FailPolicy))
async def test_redis_down_gives_fail_policy_answer_within_deadline(
    private_redis: RedisProcess, policy: FailPolicy
) -> None:
    settings = make_settings(private_redis.url, fail_policy=policy, deadline_ms=150)
    table = Table(settings)
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
    await table.close()
    s = Screener.from_settings(settings)
    try:
        assert (await s.screen(ScreenRequest("+33123456789", IN))).result is Result.BLOCKED
        private_redis.stop()
        for _ in range(5):
            started = time.monotonic()
            d = await s.screen(ScreenRequest("+33123456789", IN))
            assert time.monotonic() - started < 0.15 + 0.1
            assert d.failed and d.label == "" and "unavailable" in d.reason
            expected = Result.BLOCKED if policy is FailPolicy.CLOSED else Result.UNSCREENED
            assert d.result is expected
        private_redis.start()  # a new, empty server on the same port: refill it
        table = Table(settings)
        await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
        await table.close()
        d = await s.screen(ScreenRequest("+33123456789", IN))
        assert (d.result, d.failed, d.list_name) == (Result.BLOCKED, False, "dnc")
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("caller_id", "trailing"),
    [
        ("+33123456789abc", "abc"),
        ("+33123456789#", "#"),
        ("+33123456789:5060", ":5060"),
        ("+33123456789@host.example", "@host.example"),
        ("+33123456789;ext=12", ";ext=12"),
        ("01 23 45 67 89 x", "x"),
    ],
)
async def test_inbound_caller_id_is_screened_on_its_leading_number(
    table: Table, screener: Screener, caller_id: str, trailing: str
) -> None:
    """Whatever trails a blocked caller ID's number, the call is blocked; letters are
    never read as keypad digits (``…789abc`` used to become ``…789222``, allowed), and
    what was not screened is kept for the attempt log."""
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
    d = await screener.screen(ScreenRequest(caller_id, IN))
    assert (d.result, d.number, d.stripped) == (Result.BLOCKED, "+33123456789", trailing)


async def test_letters_stay_letters_inbound_and_spell_digits_outbound(
    table: Table, screener: Screener
) -> None:
    """``+33612345222`` is listed: an inbound ``+33612345abc`` is not it, an outbound
    vanity number dialed as ``+33612345abc`` is (1800FLOWERS is a real number to
    dial)."""
    await fill(table, "vanity", Action.BLOCK, ["+33612345222"])
    inbound = await screener.screen(ScreenRequest("+33612345abc", IN))
    outbound = await screener.screen(ScreenRequest("+33612345abc", Direction.OUTBOUND))
    assert (inbound.result, inbound.number, inbound.stripped) == (
        Result.ALLOWED,
        "+33612345",
        "abc",
    )
    assert (outbound.result, outbound.number) == (Result.BLOCKED, "+33612345222")
    assert outbound.stripped == ""


async def test_a_caller_id_with_no_leading_number_follows_the_anonymous_policy(
    table: Table, screener: Screener
) -> None:
    await fill(table, "dnc", Action.BLOCK, ["+33123456789"])
    d = await screener.screen(ScreenRequest("abc+33123456789", IN))
    assert d.result is Result.ALLOWED and d.number == ""
    assert d.reason.startswith("not a phone number")
