"""``/lists``: lists, their entries, and changes to entries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse

from callscreen.api.auth import Principal, scoped
from callscreen.api.backend import Replay
from callscreen.api.models import (
    ERRORS,
    MAX_ENTRIES,
    ChangeOut,
    EntriesAdd,
    EntriesAdded,
    EntriesChange,
    EntryDetail,
    EntryOutcome,
    EntryPageOut,
    ListCreate,
    ListOut,
    ListPatch,
)
from callscreen.core.errors import InvalidInput, TooLarge
from callscreen.core.model import Status
from callscreen.core.numbers import parse_entry_fast
from callscreen.core.times import parse_expiry
from callscreen.services.apikeys import KeyScope
from callscreen.services.bulkchanges import Selection, selection_of
from callscreen.services.entries import Position
from callscreen.services.views import ChangeResult, EntryView

router = APIRouter(prefix="/lists", tags=["lists"], responses=ERRORS)

Reader = Annotated[Principal, Depends(scoped(KeyScope.LISTS_READ))]
Writer = Annotated[Principal, Depends(scoped(KeyScope.LISTS_WRITE))]
Approver = Annotated[Principal, Depends(scoped(KeyScope.ENTRIES_APPROVE))]
ListId = Annotated[int, Path(ge=1, le=2**53, description="the list's numeric id")]
MAX_IDEMPOTENCY_KEY = 200


# -- lists -----------------------------------------------------------------------------


@router.post("", status_code=201, response_model=ListOut, summary="Create a list")
async def create_list(body: ListCreate, who: Writer) -> dict[str, Any]:
    view = await who.backend.create_list(
        body.name, body.action, body.direction, body.scope, body.description
    )
    return view.to_json()


@router.get("", response_model=list[ListOut], summary="Every list (or the one named)")
async def list_lists(
    who: Reader,
    name: Annotated[str | None, Query(max_length=500, description="exactly this name")] = None,
) -> list[dict[str, Any]]:
    return [view.to_json() for view in await who.backend.list_lists(name)]


@router.get("/{list_id}", response_model=ListOut, summary="One list, its counts, its campaigns")
async def show_list(list_id: ListId, who: Reader) -> dict[str, Any]:
    return (await who.backend.show_list(list_id)).to_json()


@router.patch("/{list_id}", response_model=ListOut, summary="Change a list")
async def update_list(list_id: ListId, body: ListPatch, who: Writer) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    for field in ("name", "action", "direction", "scope"):
        if field in changes and changes[field] is None:
            raise InvalidInput(f"{field} cannot be cleared")
    return (await who.backend.update_list(list_id, changes)).to_json()


@router.delete(
    "/{list_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a list (409 while it holds permanent entries)",
)
async def delete_list(list_id: ListId, who: Writer) -> Response:
    await who.backend.delete_list(list_id)
    return Response(status_code=204)


@router.get(
    "/{list_id}/export",
    response_class=StreamingResponse,
    summary="The list's entries as CSV (the CLI's export format), streamed",
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, header row first"}},
)
async def export_list(
    list_id: ListId,
    who: Reader,
    status: Annotated[list[Status] | None, Query(description="only these statuses")] = None,
) -> StreamingResponse:
    name, chunks = await who.backend.export_list(list_id, frozenset(status) if status else None)
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "list"
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


# -- entries ---------------------------------------------------------------------------


def _body_hash(body: EntriesAdd) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


@router.post(
    "/{list_id}/entries",
    response_model=EntriesAdded,
    summary="Add entries (bulk, up to 10,000), each with its outcome",
    description="One change per distinct (reason, external id, expiry). Invalid entries "
    "are reported with their index and the others are added. With `Idempotency-Key`, "
    "a retried request answers what the first one did for 24 h (the same key with "
    "another body: 422).",
)
async def add_entries(
    list_id: ListId,
    body: EntriesAdd,
    who: Writer,
    idempotency_key: Annotated[
        str | None, Header(max_length=MAX_IDEMPOTENCY_KEY, alias="Idempotency-Key")
    ] = None,
) -> Any:
    if len(body.entries) > MAX_ENTRIES:
        raise TooLarge(f"at most {MAX_ENTRIES} entries a request ({len(body.entries)} given)")
    if idempotency_key is not None:
        body_hash = f"{list_id}:{_body_hash(body)}"
        kept = await who.backend.replay_begin(idempotency_key, body_hash)
        if kept is not None:
            return JSONResponse(kept.body, status_code=kept.status)
        try:
            result = await _add(list_id, body, who)
        except BaseException:
            await who.backend.replay_abort(idempotency_key)
            raise
        data = result.model_dump(mode="json")
        await who.backend.replay_store(idempotency_key, body_hash, Replay(200, data))
        return data
    return await _add(list_id, body, who)


async def _add(list_id: int, body: EntriesAdd, who: Principal) -> EntriesAdded:
    region = who.backend.settings.default_region
    now = time.time()
    outcomes: list[EntryOutcome | None] = [None] * len(body.entries)
    groups: dict[tuple[str, str, str | None], list[tuple[int, str]]] = {}
    for index, item in enumerate(body.entries):
        expires = item.expires if item.expires is not None else body.expires
        try:
            display = parse_entry_fast(item.number, region).display
            if expires:
                parse_expiry(expires, now)
        except InvalidInput as exc:
            outcomes[index] = EntryOutcome(
                index=index, entry=None, outcome="invalid", message=str(exc)
            )
            continue
        reason = item.reason if item.reason is not None else body.reason
        external_id = item.external_id if item.external_id is not None else body.external_id
        groups.setdefault((reason, external_id, expires), []).append((index, display))
    counts: dict[str, int] = {}
    batches: list[int] = []
    for (reason, external_id, expires), members in groups.items():
        result = await who.backend.add_entries(
            list_id,
            [display for _i, display in members],
            reason=reason,
            external_id=external_id,
            expires=expires,
            status=Status(body.status),
        )
        if result.batch is not None:
            batches.append(result.batch)
        for outcome, n in result.outcomes.items():
            counts[outcome] = counts.get(outcome, 0) + n
        for index, display in members:
            outcome = result.entries.get(display, "unchanged")
            outcomes[index] = EntryOutcome(index=index, entry=display, outcome=outcome)
    invalid = sum(1 for o in outcomes if o is not None and o.outcome == "invalid")
    if invalid:
        counts["invalid"] = invalid
    return EntriesAdded(
        list_id=list_id,
        batches=batches,
        counts=counts,
        outcomes=[o for o in outcomes if o is not None],
    )


def _cursor(position: Position, status: Status | None, search: str) -> str:
    loc, after = position
    raw = json.dumps([loc, after, status.value if status else "", search])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(cursor: str, status: Status | None, search: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        loc, after, c_status, c_search = json.loads(raw)
        # -2: a search's position in number order (entries.NUMBER_ORDER)
        if type(loc) is not int or loc < (-2 if c_search else -1) or loc > 2**31:
            raise ValueError(cursor)
        if after is not None and (not isinstance(after, str) or not after.isdigit()):
            raise ValueError(cursor)
        if len(after or "") > 20:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("not a cursor this API gave") from None
    if c_status != (status.value if status else "") or c_search != search:
        raise InvalidInput("the cursor was given for another filter")
    return loc, after


def _entry(view: EntryView) -> dict[str, Any]:
    return view.to_json()


@router.get(
    "/{list_id}/entries",
    response_model=EntryPageOut,
    summary="A page of entries",
    description="Entries in storage order: prefixes, then numbers in an order fixed by "
    "where they are stored. `next_cursor` starts the next page and stays right while "
    "entries are added or removed; a page costs a few reads whatever the list's size. "
    "`status=pending` and `status=deleted` read an index of those entries (a page costs "
    "its own entries, not a walk of the list). "
    "With `search` (entries starting with those digits), the matching prefixes come "
    "first, then the matching numbers in number order (digit by digit), read from an "
    "index of the list's numbers: a page costs the numbers it reads, whatever the "
    "list's size. "
    "With `status` or `search`, a page may hold fewer than `limit` entries and still "
    "have a `next_cursor`: go on until it is null.",
)
async def list_entries(
    list_id: ListId,
    who: Reader,
    status: Status | None = None,
    search: Annotated[str, Query(max_length=100, description="entries starting with")] = "",
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    after = _after(cursor, status, search) if cursor else None
    page = await who.backend.list_entries(
        list_id, status=status, search=search, limit=limit, after=after
    )
    return {
        "list_id": list_id,
        "counts": page.counts,
        "entries": [_entry(v) for v in page.entries],
        "next_cursor": _cursor(page.next, status, search) if page.next else None,
    }


@router.get(
    "/{list_id}/entries/{number}",
    response_model=EntryDetail,
    summary="One entry with its history",
)
async def show_entry(list_id: ListId, number: str, who: Reader) -> dict[str, Any]:
    if len(number) > 100:
        raise InvalidInput("not a number or prefix")
    view, events, steps = await who.backend.show_entry(list_id, number)
    return {
        **_entry(view),
        "history": [e.to_json() for e in events],
        "transitions": [t.to_json() for t in steps],
    }


async def _run_filter(list_id: int, op: str, body: EntriesChange, who: Principal) -> ChangeOut:
    """A change by filter: the selection service pages through the list (no cap on how
    many entries match); a dry run counts them by status and names the first ones."""
    assert body.filter is not None
    f = body.filter
    selection = (
        selection_of(
            status=f.status,
            search=f.search,
            batch=f.batch,
            source=f.source,
            created_before=f.created_before,
            created_after=f.created_after,
            now=time.time(),
        )
        or Selection()
    )
    result = await who.backend.change_selection(
        list_id,
        op,
        selection,
        reason=body.reason,
        permanent=body.permanent,
        confirm_broad=body.confirm_broad,
        dry_run=body.dry_run,
    )
    if not result.matched:
        raise InvalidInput("the filter matches no entry")
    batches = [c.batch for c in result.changes if c.batch is not None]
    return ChangeOut(
        list_id=list_id,
        op=op,
        by=result.by,
        dry_run=result.dry_run,
        changed=result.changed,
        counts=result.by_status if result.dry_run else result.outcomes,
        entries=result.sample if result.dry_run else {},
        batch=batches[0] if len(batches) == 1 else None,
        notes=[f"{len(result.changes)} changes (batches {', '.join(map(str, batches))})"]
        if len(result.changes) > 1
        else [],
    )


def _change(list_id: int, result: ChangeResult) -> ChangeOut:
    return ChangeOut(
        list_id=list_id,
        op=result.op,
        by=result.by,
        changed=result.changed,
        counts=result.outcomes,
        entries=result.entries,
        batch=result.batch,
        notes=list(result.notes),
    )


async def _run_change(list_id: int, op: str, body: EntriesChange, who: Principal) -> ChangeOut:
    if (body.numbers is None) == (body.filter is None):
        raise InvalidInput("give numbers or a filter (not both)")
    if body.filter is not None:
        return await _run_filter(list_id, op, body, who)
    assert body.numbers is not None
    numbers = body.numbers
    if body.dry_run:
        found = await who.backend.peek_entries(list_id, numbers)
        counts: dict[str, int] = {}
        for status in found.values():
            counts[status] = counts.get(status, 0) + 1
        return ChangeOut(
            list_id=list_id,
            op=op,
            by=who.actor,
            dry_run=True,
            changed=0,
            counts=counts,
            entries=found,
        )
    result = await who.backend.change_entries(
        list_id,
        op,
        numbers,
        reason=body.reason,
        permanent=body.permanent,
        confirm_broad=body.confirm_broad,
    )
    return _change(list_id, result)


@router.post(
    "/{list_id}/entries:remove",
    response_model=ChangeOut,
    summary="Remove entries (soft delete; a reason is required)",
)
async def remove(list_id: ListId, body: EntriesChange, who: Writer) -> ChangeOut:
    return await _run_change(list_id, "remove", body, who)


@router.post("/{list_id}/entries:restore", response_model=ChangeOut, summary="Restore entries")
async def restore(list_id: ListId, body: EntriesChange, who: Writer) -> ChangeOut:
    return await _run_change(list_id, "restore", body, who)


@router.post(
    "/{list_id}/entries:approve",
    response_model=ChangeOut,
    summary="Approve entries (permanently: scope entries:approve-permanent)",
)
async def approve(list_id: ListId, body: EntriesChange, who: Approver) -> ChangeOut:
    if body.permanent:
        who.need(KeyScope.ENTRIES_APPROVE_PERMANENT)
    return await _run_change(list_id, "approve", body, who)


@router.post(
    "/{list_id}/entries:unapprove",
    response_model=ChangeOut,
    summary="Send entries back to review",
)
async def unapprove(list_id: ListId, body: EntriesChange, who: Approver) -> ChangeOut:
    return await _run_change(list_id, "unapprove", body, who)
