"""Checks of many numbers (``POST /check``, the check service): each number gets what
the gateway's screener answers for it alone, with the lookups sliced into calls of the
same lookup script."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, TooLarge
from callscreen.core.model import Action, Direction, Status
from callscreen.services.checking import MAX_CHECK
from tests.support.blocking import SyncAdmin

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region="FR", deadline_ms=5000)  # type: ignore[call-arg]


@pytest.fixture
def admin(settings: Settings) -> Iterator[SyncAdmin]:
    with SyncAdmin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.create_list("suspects", Action.LABEL, Direction.INBOUND)
        admin.create_list("vip", Action.ALLOW)
        admin.create_list("spring-dnc", Action.BLOCK, campaign_only=True)
        admin.assign("spring", ["spring-dnc"])
        admin.add("dnc", ["+33612345678", "+3389*"], reason="asked us")
        admin.add("vip", ["+33890000001"], reason="partner")
        admin.add("suspects", ["+33698765432"], reason="spam reports")
        admin.add("dnc", ["+33611111111"], reason="later", status=Status.PENDING)
        admin.add("spring-dnc", ["+33622222222"], reason="campaign")
        yield admin


NUMBERS = [
    "+33612345678",  # exact block
    "0612345678",  # the same, national format
    "+33890000001",  # an allow exact beats a block prefix
    "+33891234567",  # a block prefix
    "+33698765432",  # a label, inbound only
    "+33611111111",  # pending: not enforced
    "+33622222222",  # campaign only
    "+33655555555",  # nothing
    "",  # no number: the anonymous policy
    "anonymous",
    "112",  # emergency: never blocked outbound
    "not a number",
    "+33612345678",  # twice in one check
]


def one_by_one(settings: Settings, direction: Direction, campaign: str) -> list[object]:
    async def run() -> list[object]:
        screener = Screener.from_settings(settings)
        try:
            return [await screener.decide(ScreenRequest(n, direction, campaign)) for n in NUMBERS]
        finally:
            await screener.close()

    return asyncio.run(run())


@pytest.mark.parametrize("direction", [IN, OUT])
@pytest.mark.parametrize("campaign", ["", "spring"])
def test_many_numbers_get_what_each_gets_alone(
    admin: SyncAdmin, settings: Settings, direction: Direction, campaign: str
) -> None:
    expected = one_by_one(settings, direction, campaign)
    checks = admin.services.checks
    for chunk in (1, 3, 32):

        async def many(chunk: int = chunk) -> list[object]:
            screener = Screener.from_settings(settings)
            try:
                return list(await screener.decide_many(NUMBERS, direction, campaign, chunk=chunk))
            finally:
                await screener.close()

        assert asyncio.run(many()) == expected
    assert admin.run(checks.decide_many(NUMBERS, direction, campaign)) == expected
    results = [d.result.value for d in expected]  # type: ignore[attr-defined]
    assert results[0] == "BLOCKED" and results[2] == "ALLOWED" and results[3] == "BLOCKED"
    assert results[6] == ("BLOCKED" if campaign else "ALLOWED")


def test_a_check_is_bounded_and_directed(admin: SyncAdmin) -> None:
    checks = admin.services.checks
    with pytest.raises(TooLarge):
        admin.run(checks.decide_many(["+33612345678"] * (MAX_CHECK + 1), OUT))
    with pytest.raises(InvalidInput):
        admin.run(checks.decide_many(["+33612345678"], Direction.BOTH))
    assert admin.run(checks.decide_many([], OUT)) == []


def test_a_scrub_goes_through_any_number_of_numbers_in_slices(
    admin: SyncAdmin, settings: Settings
) -> None:
    expected = one_by_one(settings, OUT, "spring")
    checks = admin.services.checks
    read: list[int] = []

    def numbers() -> Iterator[str]:
        for i, number in enumerate(NUMBERS):
            read.append(i)
            yield number

    async def scrub(size: int) -> list[tuple[int, list[object]]]:
        out: list[tuple[int, list[object]]] = []
        async for part in checks.scrub(numbers(), OUT, "spring", size=size):
            out.append((len(read), list(part)))  # how much was read when a slice came
        return out

    slices = admin.run(scrub(4))
    # 13 numbers, 4 a slice: each slice answered once it is read, before the next
    assert [(seen, len(part)) for seen, part in slices] == [(4, 4), (8, 4), (12, 4), (13, 1)]
    verdicts = [v for _, part in slices for v in part]
    assert [v.input for v in verdicts] == NUMBERS  # type: ignore[attr-defined]
    assert [(v.result, v.number, v.list_name, v.entry, v.reason) for v in verdicts] == [  # type: ignore[attr-defined]
        (d.result.value, d.number, d.list_name, d.match, d.reason)  # type: ignore[attr-defined]
        for d in expected
    ]
    with pytest.raises(InvalidInput):
        admin.run(scrub_both(checks))


async def scrub_both(checks: object) -> None:
    async for _ in checks.scrub(["+33612345678"], Direction.BOTH):  # type: ignore[attr-defined]
        pass
