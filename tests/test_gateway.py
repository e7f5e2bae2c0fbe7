"""The gateway end to end: lists made with the admin service, calls over real TCP
from a client that speaks AGI as Asterisk does, the real screener on a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction
from tests.support.agiclient import FakeAsterisk, build_env
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until_async
from tests.support.redisproc import RedisProcess

HOST = "127.0.0.1"


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": url,
        "listen_host": HOST,
        "listen_port": 0,
        "default_region": "FR",
        "deadline_ms": 5_000,
        "env_timeout_ms": 1000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class Gateway:
    """A running gateway and a fake Asterisk pointed at it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.screener = Screener.from_settings(settings)
        self.server = AgiServer(settings, self.screener)

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.close(1.0)
        await self.screener.close()

    async def call(
        self, direction: str, number: str = "", campaign: str = "", **env: Any
    ) -> dict[str, str]:
        """One call: ``AGI(agi://HOST/screen,DIRECTION,NUMBER,CAMPAIGN)``."""
        args = (direction, number, campaign) if campaign else (direction, number)
        fake = FakeAsterisk(HOST, self.server.port)
        if "callingpres" in env:
            result = await fake.call(env=build_env(port=self.server.port, args=args, **env))
        else:
            result = await fake.call(args=args, **env)
        assert result.command_count == 1
        return result.variables


async def running(settings: Settings) -> Gateway:
    gateway = Gateway(settings)
    await gateway.start()
    return gateway


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[Gateway]:
    settings = settings_for(redis_url)
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33123456789"], reason="asked us to stop")
        admin.create_list("france", Action.BLOCK, Direction.OUTBOUND)
        admin.add("france", ["+33*"], reason="no calls to France")
        admin.create_list("premium", Action.BLOCK)
        admin.add("premium", ["+33899*"], reason="premium rate")
        admin.create_list("partners", Action.ALLOW)
        admin.add("partners", ["+33899123*"], reason="partner line")
        admin.create_list("suspects", Action.LABEL)
        admin.add("suspects", ["+33611111111"], reason="complaints")
        admin.create_list("inbound-only", Action.BLOCK, Direction.INBOUND)
        admin.add("inbound-only", ["+33622222222"], reason="spam caller")
        admin.create_list("spring-dnc", Action.BLOCK, campaign_only=True)
        admin.add("spring-dnc", ["+33633333333"], reason="spring opt-out")
        admin.assign("spring", ["spring-dnc"])
    gw = await running(settings)
    yield gw
    await gw.close()


async def test_blocked_exact_number(gateway: Gateway) -> None:
    assert await gateway.call("inbound", "+33123456789") == {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_LABEL": "Blacklisted",
        "CALLSCREEN_LIST": "dnc",
        "CALLSCREEN_MATCH": "+33123456789",
        "CALLSCREEN_REASON": "asked us to stop",
        "CALLSCREEN_NUMBER": "+33123456789",
        "CDR(userfield)": "callscreen:BLOCKED:dnc",
    }


async def test_number_under_a_blocked_prefix(gateway: Gateway) -> None:
    v = await gateway.call("inbound", "+33899000000")
    assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_MATCH"]) == ("BLOCKED", "+33899*")


async def test_longer_allow_entry_inside_a_blocked_prefix(gateway: Gateway) -> None:
    v = await gateway.call("inbound", "+33899123456")
    assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_LIST"], v["CALLSCREEN_LABEL"]) == (
        "ALLOWED", "partners", "",
    )  # fmt: skip


async def test_label_list(gateway: Gateway) -> None:
    v = await gateway.call("inbound", "", callerid="+33611111111")
    assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_LABEL"]) == ("LABELED", "Blacklisted")


async def test_inbound_only_list_does_not_touch_outbound_calls(gateway: Gateway) -> None:
    assert (await gateway.call("inbound", "+33622222222"))["CALLSCREEN_RESULT"] == "BLOCKED"
    # outbound, only the outbound "+33*" list applies
    v = await gateway.call("outbound", "+33622222222")
    assert (v["CALLSCREEN_LIST"], v["CALLSCREEN_MATCH"]) == ("france", "+33*")


async def test_campaign_list_applies_to_that_campaign_only(gateway: Gateway) -> None:
    assert (await gateway.call("inbound", "+33633333333", "spring"))["CALLSCREEN_LIST"] == (
        "spring-dnc"
    )
    assert (await gateway.call("inbound", "+33633333333", "autumn"))["CALLSCREEN_RESULT"] == (
        "ALLOWED"
    )
    assert (await gateway.call("inbound", "+33633333333"))["CALLSCREEN_RESULT"] == "ALLOWED"


async def test_national_format_matches_its_e164_entry(gateway: Gateway) -> None:
    v = await gateway.call("inbound", "01 23 45 67 89")
    assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_NUMBER"]) == ("BLOCKED", "+33123456789")


async def test_emergency_number_allowed_under_a_covering_prefix(gateway: Gateway) -> None:
    # "+33*" blocks every outbound call to France, and 112 reads as +33112
    assert (await gateway.call("outbound", "0612345678"))["CALLSCREEN_RESULT"] == "BLOCKED"
    for number in ("112", "15", "17", "18"):
        v = await gateway.call("outbound", "", extension=number)
        assert v["CALLSCREEN_RESULT"] == "ALLOWED", number


async def test_emergency_number_allowed_under_fail_closed() -> None:
    settings = settings_for("redis://127.0.0.1:1/0", fail_policy="closed")
    gw = await running(settings)
    try:
        assert (await gw.call("outbound", "+33123456789"))["CALLSCREEN_RESULT"] == "BLOCKED"
        assert (await gw.call("outbound", "112"))["CALLSCREEN_RESULT"] == "ALLOWED"
    finally:
        await gw.close()


@pytest.mark.parametrize(
    ("policy", "result"), [("allow", "ALLOWED"), ("label", "LABELED"), ("block", "BLOCKED")]
)
async def test_anonymous_caller_follows_the_policy(
    redis_url: str, policy: str, result: str
) -> None:
    gw = await running(settings_for(redis_url, anonymous_policy=policy))
    try:
        for callerid in ("anonymous", "", "Restricted"):
            v = await gw.call("inbound", "", callerid=callerid)
            assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_NUMBER"]) == (result, ""), callerid
    finally:
        await gw.close()


async def test_presentation_restricted_number_is_screened_on_the_number(
    gateway: Gateway,
) -> None:
    # agi_callingpres 32: "prohibited, not screened" -- the number is still there
    v = await gateway.call("inbound", "", callerid="+33123456789", callingpres=32)
    assert v["CALLSCREEN_RESULT"] == "BLOCKED"


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_redis_stopped_then_restarted(private_redis: RedisProcess, policy: str) -> None:
    """Calls keep arriving while Redis goes away and comes back: each one is answered
    within the deadline, by the fail policy while Redis is down, by the table after."""
    deadline_ms = 200
    settings = settings_for(private_redis.url, fail_policy=policy, deadline_ms=deadline_ms)
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33123456789"], reason="asked us to stop")
    gw = await running(settings)
    try:

        async def timed_call() -> tuple[dict[str, str], float]:
            started = time.monotonic()
            v = await gw.call("inbound", "+33123456789")
            return v, time.monotonic() - started

        v, _ = await timed_call()
        assert v["CALLSCREEN_RESULT"] == "BLOCKED"
        private_redis.stop()
        answers = await asyncio.gather(*(timed_call() for _ in range(20)))
        expected = "BLOCKED" if policy == "closed" else "UNSCREENED"
        for v, elapsed in answers:
            assert v["CALLSCREEN_RESULT"] == expected
            assert v["CALLSCREEN_LABEL"] == "" and "unavailable" in v["CALLSCREEN_REASON"]
            assert elapsed < deadline_ms / 1000 + 0.15
        private_redis.start()
        with Admin(settings) as admin:  # the restarted server has no persistence: refill
            admin.create_list("dnc", Action.BLOCK)
            admin.add("dnc", ["+33123456789"], reason="asked us to stop")

        async def screened_again() -> dict[str, str] | None:
            v, _ = await timed_call()
            return v if v["CALLSCREEN_RESULT"] == "BLOCKED" else None

        # the client reconnects on its own, within its backoff
        v = await until_async(screened_again, "screening to resume", step=0.05)
        assert (v["CALLSCREEN_RESULT"], v["CALLSCREEN_LABEL"]) == ("BLOCKED", "Blacklisted")
    finally:
        await gw.close()
