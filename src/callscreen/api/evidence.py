"""``/history`` (the audit trail), ``/attempts``, ``/numbers/{number}`` (the number page),
``/reports`` and the health endpoints."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from callscreen.api.auth import Principal, scoped
from callscreen.api.backend import Backend
from callscreen.api.models import ERRORS, AttemptsOut, Health, HistoryOut, NumberOut
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction
from callscreen.core.times import parse_before
from callscreen.reports.report import order_of
from callscreen.schema.attempts import Outcome
from callscreen.services.apikeys import KeyScope

router = APIRouter(tags=["evidence"], responses=ERRORS)
CallsReader = Annotated[Principal, Depends(scoped(KeyScope.CALLS_READ))]
health = APIRouter(tags=["health"], responses={503: ERRORS[503]})

ATTEMPT_CURSOR = re.compile(r"(\d{1,18})\.(\d{1,18})-(\d{1,18})")


@router.get(
    "/history",
    response_model=HistoryOut,
    summary="The audit trail, most recent first",
    description="With `list_id`, the changes to that list and its entries; without, "
    "lists created, renamed and deleted, campaign assignments and API keys.",
)
async def history(
    who: Annotated[Principal, Depends(scoped(KeyScope.LISTS_READ))],
    list_id: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    # the cursor is an event id: the history service refuses anything else
    events = await who.backend.history(list_id, limit=limit, before=cursor)
    next_cursor = events[-1].id if len(events) == limit else None
    return {"events": [e.to_json() for e in events], "next_cursor": next_cursor}


@router.get(
    "/attempts",
    response_model=AttemptsOut,
    summary="Screened calls from the attempt log, newest first (as `callscreen log`)",
)
async def attempts(
    who: CallsReader,
    campaign: Annotated[str | None, Query(max_length=200)] = None,
    number: Annotated[str | None, Query(max_length=100, description="a number or +33*")] = None,
    result: Outcome | None = None,
    direction: Literal["inbound", "outbound"] | None = None,
    since: Annotated[str | None, Query(max_length=40, description="15m, 2h, 7d or a date")] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    before = None
    if cursor is not None:
        found = ATTEMPT_CURSOR.fullmatch(cursor)
        if found is None:
            raise InvalidInput("not a cursor this API gave")
        before = (int(found[1]), int(found[2]), int(found[3]))
    now = time.time()
    records = await who.backend.attempts(
        campaign=campaign,
        number=number,
        outcome=result,
        direction=Direction(direction) if direction else None,
        since=parse_before(since, now) if since else None,
        until=parse_before(until, now) if until else None,
        limit=limit,
        before=before,
    )
    next_cursor = None
    if len(records) == limit:
        next_cursor = "{}.{}-{}".format(*order_of(records[-1]))
    return {"attempts": [r.to_json() for r in records], "next_cursor": next_cursor}


@router.get(
    "/numbers/{number}",
    response_model=NumberOut,
    summary="Everything known of one number (as `callscreen number --json`)",
    description="Every list that holds the number, exactly or by a prefix, whatever its "
    "status, with each entry's reason and history; deleted lists whose trail names it; "
    "the decision inbound and outbound, globally and per campaign whose lists hold it; "
    "registry listings; its first contact, its last attempts and its totals by outcome. "
    "The number as one would type it (URL-encoded: `%2B33612345678`), not a prefix. A "
    "key restricted to lists sees the others as `another list`, with no name or "
    "reason. Shape: docs/number.md.",
)
async def number_page(
    who: CallsReader,
    number: Annotated[str, Path(min_length=1, max_length=100)],
    campaign: Annotated[
        str | None,
        Query(max_length=200, description="only this campaign's decisions and attempts"),
    ] = None,
    attempts: Annotated[int, Query(ge=0, le=200, description="last attempts listed")] = 20,
) -> dict[str, Any]:
    card = await who.backend.number_page(number, campaign=campaign, attempts=attempts)
    return card.to_json()


@router.get(
    "/reports",
    summary="The report of a range of days (as `callscreen report --json`)",
    description="Totals by result, direction, list, campaign and day, top numbers, "
    "blacklisted numbers contacted before (lost) or never. Not for keys restricted to "
    "lists (a report names every list).",
)
async def reports(
    who: CallsReader,
    since: Annotated[date | None, Query(description="first day")] = None,
    until: Annotated[date | None, Query(description="last day (default today)")] = None,
    days: Annotated[int | None, Query(ge=1, le=3660)] = None,
    campaign: Annotated[str | None, Query(max_length=200)] = None,
    top: Annotated[int, Query(ge=0, le=1000)] = 20,
    numbers: Annotated[int, Query(ge=0, le=100_000)] = 1000,
) -> dict[str, Any]:
    if since is not None and days is not None:
        raise InvalidInput("give since or days, not both")
    return await who.backend.report(
        since=since, until=until, days=days, campaign=campaign, top=top, numbers=numbers
    )


@health.get("/healthz", response_model=Health, summary="The process is up (no auth)")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@health.get("/readyz", response_model=Health, summary="Redis answers (no auth; 503 if not)")
async def readyz(request: Request) -> dict[str, Any]:
    backend: Backend = request.app.state.backend
    await backend.ready()
    return {"status": "ready"}
