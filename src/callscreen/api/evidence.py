"""``/history`` (the audit trail) and the health endpoints."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from callscreen.api.auth import Principal, scoped
from callscreen.api.backend import Backend
from callscreen.api.models import ERRORS, Health, HistoryOut
from callscreen.core.errors import InvalidInput
from callscreen.services.apikeys import KeyScope

router = APIRouter(tags=["evidence"], responses=ERRORS)
health = APIRouter(tags=["health"], responses={503: ERRORS[503]})

EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")


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
    if cursor is not None and not EVENT_ID.fullmatch(cursor):
        raise InvalidInput("not a cursor this API gave")
    events = await who.backend.history(list_id, limit=limit, before=cursor)
    next_cursor = events[-1].id if len(events) == limit else None
    return {"events": [e.to_json() for e in events], "next_cursor": next_cursor}


@health.get("/healthz", response_model=Health, summary="The process is up (no auth)")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@health.get("/readyz", response_model=Health, summary="Redis answers (no auth; 503 if not)")
async def readyz(request: Request) -> dict[str, Any]:
    backend: Backend = request.app.state.backend
    await backend.ready()
    return {"status": "ready"}
