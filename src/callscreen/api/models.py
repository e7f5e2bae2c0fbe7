"""Every body and response of the API as a pydantic model: they are its documentation
(OpenAPI). Limits here are the services' own (names, reasons, page sizes), stated so
that a client learns them from the schema; the services check them again."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from callscreen.core.model import Action, Direction, Result, Scope, Status
from callscreen.services.apikeys import KeyScope
from callscreen.services.checking import MAX_CHECK

MAX_ENTRIES = 10_000
MAX_CHANGE = 1_000

Text = Field(max_length=500)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- lists -----------------------------------------------------------------------------


class ListCreate(Strict):
    name: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=2000)
    action: Action
    direction: Direction = Direction.BOTH
    scope: Scope = Scope.GLOBAL


class ListPatch(Strict):
    """Only what is given changes; ``description: null`` clears it."""

    name: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=2000)
    action: Action | None = None
    direction: Direction | None = None
    scope: Scope | None = None


class ListOut(BaseModel):
    id: int
    name: str
    action: Action
    direction: Direction
    scope: Scope
    description: str
    created_at: str | None
    created_by: str
    updated_at: str | None
    updated_by: str
    counts: dict[str, int] = Field(description="entries by status, and total")
    campaigns: list[str]


# -- entries ---------------------------------------------------------------------------


class EntryIn(Strict):
    number: str = Field(min_length=1, max_length=100, description="a number or a prefix (`+33*`)")
    reason: str | None = Field(None, max_length=500, description="default: the request's")
    external_id: str | None = Field(None, max_length=64)
    expires: str | None = Field(
        None, max_length=40, description="a duration (`30d`) or a date (`2027-01-31`)"
    )


class EntriesAdd(Strict):
    entries: list[EntryIn] = Field(min_length=1, description=f"at most {MAX_ENTRIES}")
    reason: str = Field("", max_length=500)
    external_id: str = Field("", max_length=64)
    expires: str | None = Field(None, max_length=40)
    status: Literal["active", "pending"] = "active"


class EntryOutcome(BaseModel):
    index: int
    entry: str | None = Field(description="as stored (`+33123456789`), null when invalid")
    outcome: str = Field(
        description="added, updated, restored, unchanged, permanent-unchanged (a permanent "
        "entry is frozen: nothing of it changed), skipped or invalid"
    )
    message: str | None = None


class EntriesAdded(BaseModel):
    list_id: int
    batches: list[int]
    counts: dict[str, int]
    outcomes: list[EntryOutcome]


class EntryOut(BaseModel):
    entry: str
    kind: Literal["number", "prefix"]
    status: Status
    reason: str
    source: str
    external_id: str
    expires: str | None
    op: str
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None
    removed_by: str
    removed_at: str | None
    removed_reason: str
    last_change: str = Field(
        description="what the entry's last transition was (added, updated, approved, "
        "approved-permanently, unapproved, removed, restored, expired); `updated_by` and "
        "`updated_at` say who made it and when (expired: at its expiry, by nobody)"
    )
    enforced_since: str | None = Field(
        None,
        description="when the entry first became enforced (active or permanent) in its "
        "list, set once; null if it never was",
    )


class TransitionOut(BaseModel):
    transition: str = Field(
        description="added, updated, approved, approved-permanently, unapproved, removed, "
        "restored or expired"
    )
    by: str
    at: str | None
    reason: str
    source: str
    batch: int | None = Field(description="the change's batch (null: expired, no change)")
    first_enforced: bool = Field(
        description="this transition made the entry enforced for the first time"
    )


class EntryPageOut(BaseModel):
    list_id: int
    counts: dict[str, int] = Field(description="the whole list's entries by status")
    entries: list[EntryOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class EventOut(BaseModel):
    id: str
    at: str | None
    op: str
    by: str
    list_name: str
    reason: str
    count: int
    entries: list[str]
    batch: int | None
    detail: str


class EntryDetail(EntryOut):
    history: list[EventOut] = Field(description="the list's audit-trail events naming it")
    transitions: list[TransitionOut] = Field(
        description="every transition of the entry, oldest first, read from the entry"
    )


class EntryFilter(Strict):
    """The entries a change takes instead of numbers: those of the list's entries that
    every given field keeps, however many (changed a page at a time)."""

    status: Status | None = None
    search: str = Field("", max_length=100, description="entries starting with this")
    batch: int | None = Field(None, ge=1, description="created or last set by this batch")
    source: str = Field("", max_length=200, description="last change from this source")
    created_before: str | None = Field(
        None, max_length=40, description="a date (2026-01-01, UTC), date-time or 90d ago"
    )
    created_after: str | None = Field(
        None, max_length=40, description="a date (2026-01-01, UTC), date-time or 30d ago"
    )


class EntriesChange(Strict):
    """The entries to change: ``numbers``, or a ``filter`` (not both)."""

    numbers: list[str] | None = Field(
        None, min_length=1, max_length=MAX_CHANGE, description=f"at most {MAX_CHANGE}"
    )
    filter: EntryFilter | None = None
    reason: str = Field("", max_length=500, description="required to remove")
    permanent: bool = Field(
        False, description="approve permanently (scope entries:approve-permanent)"
    )
    confirm_broad: bool = Field(False, description="confirm a permanent whole-country prefix")
    dry_run: bool = False


class ChangeOut(BaseModel):
    list_id: int
    op: str
    by: str
    dry_run: bool = False
    changed: int
    counts: dict[str, int]
    entries: dict[str, str] = Field(description="entry -> outcome (or status, in a dry run)")
    batch: int | None = None
    notes: list[str] = []


# -- campaigns -------------------------------------------------------------------------


class CampaignLists(Strict):
    lists: list[str] = Field(max_length=100, description="list names; empty clears")


class CampaignOut(BaseModel):
    name: str
    lists: list[str]
    global_lists: list[str]


# -- screening -------------------------------------------------------------------------


class CheckIn(Strict):
    numbers: list[str] = Field(min_length=1, description=f"at most {MAX_CHECK}")
    direction: Literal["inbound", "outbound"] = "outbound"
    campaign: str = Field("", max_length=200)


class DecisionOut(BaseModel):
    input: str
    result: Result
    label: str
    number: str = Field(description="E.164 as screened")
    list: str
    entry: str = Field(description="the entry that decided")
    reason: str


class CheckOut(BaseModel):
    direction: Direction
    campaign: str
    counts: dict[str, int] = Field(description="decisions by result")
    decisions: list[DecisionOut]


class OptoutIn(Strict):
    number: str = Field(min_length=1, max_length=100)
    campaign: str = Field("", max_length=200)
    source: str = Field("api", min_length=1, max_length=100)
    note: str = Field("", max_length=500)
    direction: Literal["inbound", "outbound"] = "outbound"


class OptoutOut(BaseModel):
    number: str
    list: str
    result: Result
    recorded: bool
    reason: str


# -- keys ------------------------------------------------------------------------------


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=64)
    scopes: list[KeyScope] = Field(min_length=1)
    lists: list[str] = Field([], max_length=100)
    expires: str | None = Field(None, max_length=40)


class KeyOut(BaseModel):
    name: str
    scopes: list[str]
    lists: list[str]
    list_ids: list[int]
    created_by: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="shown once: only its hash is kept")


# -- evidence & health -----------------------------------------------------------------


class HistoryOut(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    id: str
    time: str
    epoch_ms: int
    direction: Direction
    number: str
    dialed: str
    campaign: str
    result: Result
    outcome: str
    failed: bool
    list_name: str
    match: str
    reason: str
    uniqueid: str
    callerid_name: str
    node: str
    elapsed_us: int


class AttemptsOut(BaseModel):
    attempts: list[AttemptOut]
    next_cursor: str | None


# -- the number page (GET /numbers/{number}; docs/number.md) ----------------------------------


class NumberHistoryOut(TransitionOut):
    """A transition as the number page shows it: with its batch and whether it first
    made the entry enforced."""

    batch: int | None
    first_enforced: bool


class NumberEntryOut(BaseModel):
    entry: str = Field(description="+33612345678, or a prefix +3361*")
    kind: Literal["number", "prefix", "registry"]
    status: str = Field(description="pending, active, permanent, deleted (removed), expired")
    enforced: bool
    reason: str
    source: str
    external_id: str
    expires: str | None
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None
    removed_by: str
    removed_at: str | None
    removed_reason: str
    enforced_since: str | None
    history: list[NumberHistoryOut]


class NumberListOut(BaseModel):
    list_name: str = Field(description='"another list" for a list the key may not see')
    list_id: int | None
    action: str
    direction: str
    scope: str
    campaigns: list[str]
    registry: str
    entries: list[NumberEntryOut]


class NumberRegistryOut(BaseModel):
    list_name: str
    registry: str
    listed: bool


class TrailEventOut(EventOut):
    via: str


class NumberDeletedListOut(BaseModel):
    list_id: int
    list_name: str
    by: str
    at: str | None
    reason: str
    count: int = Field(description="entries the list held when deleted")
    detail: str
    events: list[TrailEventOut] = Field(description="its trail's events naming the number")
    complete: bool = Field(description="false: the trail is longer than what was read")


class NumberMatchOut(BaseModel):
    list_name: str
    action: str
    entry: str
    kind: str
    status: str
    enforced: bool
    decides: bool
    reason: str
    source: str


class NumberDecisionOut(BaseModel):
    direction: Literal["inbound", "outbound"]
    campaign: str = Field(description='"": a call with no campaign')
    input: str
    result: Result
    label: str
    number: str
    list_name: str
    match: str
    reason: str
    explanation: str
    lists_applied: list[str]
    matches: list[NumberMatchOut]


class NumberDeciderOut(BaseModel):
    list_name: str
    entry: str


class NumberLogOut(BaseModel):
    first_contact: str | None = Field(description="its first allowed or unscreened call")
    last_decided_by: NumberDeciderOut | None
    totals: dict[str, int] = Field(description="by outcome, over the records the log keeps")
    total: int
    attempts: list[AttemptOut] = Field(description="newest first")
    more: bool


class NumberOut(BaseModel):
    number: str
    generated_at: str | None
    campaign: str | None
    lists: list[NumberListOut]
    registries: list[NumberRegistryOut]
    deleted_lists: list[NumberDeletedListOut]
    decisions: list[NumberDecisionOut]
    log: NumberLogOut


class ImportJobOut(BaseModel):
    job: str
    list_id: int
    list_name: str = Field(alias="list")
    state: Literal["queued", "running", "interrupted", "done", "failed"]
    done: bool
    rows_read: int
    bytes_read: int
    errors: int = Field(description="bad rows so far")
    file_bytes: int
    summary: dict[str, Any] | None = Field(description="the import's summary, when done")
    first_errors: list[dict[str, Any]] = Field(description="the first 100: line, raw, error")
    error: str | None = Field(description="why the job failed")
    created_by: str
    started: int = Field(description="how many times the job was run")


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = {}


class ProblemOut(BaseModel):
    """An error (RFC 9457 problem details, ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="stable per error: urn:callscreen:problem:NAME")
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="422: every invalid field (loc, message, index in a list)"
    )
    scope: str | None = Field(None, description="403: the scope the key lacks")
    retry_after: int | None = Field(None, description="429: seconds to wait")


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ProblemOut.model_json_schema()}},
    }


#: The errors every authenticated route may answer, documented once.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("Malformed JSON"),
    401: _problem("No API key, or one unknown, revoked or expired"),
    403: _problem("The key lacks the scope, or may not use the list"),
    404: _problem("No such list, entry, campaign or key"),
    409: _problem("A conflict, or a rule refuses the change (permanent entries)"),
    413: _problem("The body or the request is too large"),
    422: _problem("Invalid input: every invalid field, with its index"),
    429: _problem("Too many failed authentications from this address"),
    503: _problem("Redis unavailable"),
}
