"""``/check``, ``/optouts`` and ``/campaigns``: what calls get, and what campaigns use."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from callscreen.api.auth import Principal, scoped
from callscreen.api.models import (
    ERRORS,
    CampaignLists,
    CampaignOut,
    CheckIn,
    CheckOut,
    OptoutIn,
    OptoutOut,
)
from callscreen.core.errors import InvalidNumber, StoreUnavailable
from callscreen.core.model import Direction, Result
from callscreen.services.apikeys import KeyScope
from callscreen.services.views import Verdict

router = APIRouter(tags=["screening"], responses=ERRORS)

Checker = Annotated[Principal, Depends(scoped(KeyScope.CHECK))]
OptoutWriter = Annotated[Principal, Depends(scoped(KeyScope.OPTOUT_WRITE))]
Reader = Annotated[Principal, Depends(scoped(KeyScope.LISTS_READ))]
Writer = Annotated[Principal, Depends(scoped(KeyScope.LISTS_WRITE))]
CampaignName = Annotated[str, Path(min_length=1, max_length=200)]


@router.post(
    "/check",
    response_model=CheckOut,
    summary="The decision for each number (up to 10,000), as the gateway would answer",
    description="How a dialer scrubs a lead file: each number gets exactly what a call "
    "would get now (result, list, entry, reason), through the gateway's own screener.",
)
async def check(body: CheckIn, who: Checker) -> dict[str, Any]:
    direction = Direction(body.direction)
    decisions = await who.backend.check_numbers(body.numbers, direction, body.campaign)
    counts = Counter(d.result.value for d in decisions)
    return {
        "direction": direction,
        "campaign": body.campaign,
        "counts": dict(counts),
        "decisions": [
            Verdict.of(raw, d).to_json() for raw, d in zip(body.numbers, decisions, strict=True)
        ],
    }


@router.post(
    "/optouts",
    response_model=OptoutOut,
    summary="Record an opt-out: the number is blocked on every gateway from the next call",
    description="The same list and rules as the dialplan's opt-out route (the "
    "`optout_list` setting, created if missing as a global block list); idempotent. The "
    "number's queued calls are cancelled.",
)
async def optout(body: OptoutIn, who: OptoutWriter) -> dict[str, Any]:
    decision = await who.backend.opt_out(
        body.number, Direction(body.direction), body.campaign, body.source, body.note
    )
    recorded = decision.result is Result.BLOCKED or bool(decision.list_name)
    if decision.failed and not decision.list_name:
        # not recorded: a number was read (Redis failed or was too slow), or none was
        if decision.number:
            raise StoreUnavailable(decision.reason)
        raise InvalidNumber(decision.reason)
    return {
        "number": decision.number,
        "list": decision.list_name,
        "result": decision.result,
        "recorded": recorded,
        "reason": decision.reason,
    }


@router.put(
    "/campaigns/{name}/lists",
    response_model=CampaignOut,
    tags=["campaigns"],
    summary="Replace the lists of a campaign (at most 100; empty clears)",
)
async def assign(name: CampaignName, body: CampaignLists, who: Writer) -> dict[str, Any]:
    return (await who.backend.assign(name, body.lists)).to_json()


@router.get("/campaigns/{name}", response_model=CampaignOut, tags=["campaigns"])
async def campaign(name: CampaignName, who: Reader) -> dict[str, Any]:
    return (await who.backend.campaign(name)).to_json()


@router.get("/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
async def campaigns(who: Reader) -> list[dict[str, Any]]:
    return [view.to_json() for view in await who.backend.campaigns()]
