"""The admin services: one method per operation on lists, entries, campaigns and the
audit trail, each returning a frozen dataclass with a ``to_json()``. The CLI only
parses arguments and renders these; an HTTP API can reuse them unchanged.

Rules kept here (the storage rules are in :mod:`callscreen.services.entries`):

- every change records who made it (``by``, default the OS user) and when: on the
  entry (its batch), and in the audit trail (:mod:`callscreen.services.audit`);
- a change to several entries is all or nothing: every entry is checked before the
  first write (a permanent entry refuses ``remove`` and ``unapprove``; a missing one
  refuses every transition);
- approving permanently a prefix that is a whole country calling code (``+33*``,
  ``+1*``) cannot be undone and reaches millions of numbers: it needs
  ``confirm_broad`` (:class:`~callscreen.core.errors.NeedsConfirmation` otherwise);
- a list holding permanent entries cannot be deleted;
- when entries of a *block* list become enforced (``add``, ``approve``, ``restore``,
  ``import``), the calls already on their way to them are cancelled
  (:mod:`callscreen.asterisk.cascade`): the change's result carries what was done (``cascade``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any, Self, TextIO

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from callscreen.asterisk.cascade import CascadeReport
from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.precedence import Match, rank, specificity
from callscreen.core.config import Settings
from callscreen.core.errors import (
    InvalidInput,
    InvalidNumber,
    NeedsConfirmation,
    NotFound,
    Refused,
)
from callscreen.core.model import Action, Direction, EntryRecord, Scope, Status
from callscreen.core.numbers import EntryKey, parse_entry
from callscreen.core.times import iso, parse_before, parse_expiry
from callscreen.services import audit, cascading, entries, importer
from callscreen.services.audit import Event
from callscreen.services.entries import WriteSummary
from callscreen.services.importer import ImportOptions, ImportSummary, Progress
from callscreen.services.table import MAX_DESCRIPTION, ListInfo, Table, default_actor

MAX_REASON = 500
MAX_ACTOR = 200
MAX_EXTERNAL_ID = 64
MAX_PAGE = 10_000
DEFAULT_PAGE = 50
DEFAULT_SOURCE = "manual"

COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


def covers_country_code(key: EntryKey) -> bool:
    """Whether a prefix matches a whole country calling code (``+33*``, ``+1*``).

    :func:`~callscreen.core.numbers.parse_entry` refuses prefixes shorter than a country
    code, so these are the broadest prefixes an entry can be.
    """
    return key.is_prefix and key.digits in COUNTRY_CODES


def _text(value: str, what: str, limit: int) -> str:
    """Free text from an admin: at most ``limit`` characters, no control characters."""
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def _person(actor: str) -> str:
    """The person or key behind an actor, without a client's ``(note)``."""
    return actor.split(" (", 1)[0].strip()


def _actor(by: str) -> str:
    """Who makes a change: ``by`` (checked), or the OS user."""
    return _text(by.strip(), "--by", MAX_ACTOR) if by.strip() else default_actor()


# -- views -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListView:
    """A list, its settings, its audit fields and its entry counts by status."""

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
    counts: dict[str, int]
    campaigns: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def enforced(self) -> int:
        """Entries that take part in screening (active and permanent)."""
        return self.counts.get("active", 0) + self.counts.get("permanent", 0)

    @classmethod
    def of(cls, info: ListInfo, counts: dict[str, int], campaigns: Sequence[str] = ()) -> ListView:
        return cls(
            id=info.id,
            name=info.name,
            action=info.action,
            direction=info.direction,
            scope=info.scope,
            description=info.description,
            created_at=iso(info.created_at),
            created_by=info.created_by,
            updated_at=iso(info.updated_at),
            updated_by=info.updated_by,
            counts=dict(counts),
            campaigns=tuple(campaigns),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["campaigns"] = list(self.campaigns)
        data["counts"] = {**self.counts, "total": self.total}
        return data


@dataclass(frozen=True, slots=True)
class EntryView:
    """One entry as an admin sees it: what, its status now, who created it and when,
    and who last set it, when, why."""

    entry: str  # +33123456789 or +33*
    kind: str  # number | prefix
    status: Status  # effective: an active entry past its expiry is expired
    reason: str
    source: str
    external_id: str
    expires: str | None
    op: str  # the change that last set the entry: add, import, ...
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None
    removed_by: str = ""
    removed_at: str | None = None
    removal_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of a list's entries (sorted by entry), with totals."""

    list_name: str
    total: int  # entries matching the filter
    offset: int
    limit: int
    counts: dict[str, int]  # the whole list, by status
    entries: tuple[EntryView, ...]
    status: Status | None = None
    search: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "list": self.list_name,
            "status": self.status,
            "search": self.search,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "counts": self.counts,
            "entries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change to entries did.

    ``outcomes`` counts entries by outcome (``added``, ``updated``, ``restored``,
    ``unchanged``, ``skipped``, ``removed``, ``approved``, ``unapproved``,
    ``purged``); ``entries`` gives each named entry's outcome (for small changes).
    """

    list_name: str
    op: str
    by: str
    outcomes: dict[str, int]
    entries: dict[str, str]
    reason: str = ""
    batch: int | None = None
    notes: tuple[str, ...] = ()
    cascade: CascadeReport | None = None  # when entries of a block list became enforced

    @property
    def changed(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k not in ("unchanged", "skipped"))

    @classmethod
    def of(
        cls,
        info: ListInfo,
        op: str,
        by: str,
        summary: WriteSummary,
        *,
        reason: str = "",
        batch: int | None = None,
        notes: Sequence[str] = (),
        cascade: CascadeReport | None = None,
    ) -> ChangeResult:
        return cls(
            info.name,
            op,
            by,
            dict(summary.counts),
            dict(summary.outcomes),
            reason,
            batch,
            tuple(notes),
            cascade,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["changed"] = self.changed
        data["cascade"] = self.cascade.to_json() if self.cascade is not None else None
        return data


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did, and, when it made entries of a block list enforced, what
    the cascade did (``cascade``)."""

    summary: ImportSummary
    cascade: CascadeReport | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.summary.to_json()
        data["cascade"] = self.cascade.to_json() if self.cascade is not None else None
        return data


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A deleted list and the entries it held, by stored status."""

    list_name: str
    by: str
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign: the lists assigned to it. Its calls are screened against these and
    every global list."""

    name: str
    lists: tuple[str, ...]
    global_lists: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lists": list(self.lists),
            "global_lists": list(self.global_lists),
        }


@dataclass(frozen=True, slots=True)
class MatchView:
    """One entry that matched a checked number, enforced or not."""

    list_name: str
    action: Action
    entry: str
    kind: str
    status: Status
    enforced: bool
    decides: bool
    reason: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a call would get, every entry that matched, and why the winner won."""

    input: str
    direction: Direction
    campaign: str
    result: str
    label: str
    number: str
    list_name: str
    match: str
    reason: str
    explanation: str
    lists_applied: tuple[str, ...]
    matches: tuple[MatchView, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lists_applied"] = list(self.lists_applied)
        data["matches"] = [m.to_json() for m in self.matches]
        return data


# -- explanations ----------------------------------------------------------------------

_STATUS_WORDS = {
    Status.PENDING: "pending review",
    Status.DELETED: "removed",
    Status.EXPIRED: "expired",
}


def _kind(match: Match) -> str:
    return f"prefix of {len(match.digits)} digits" if match.is_prefix else "exact number"


def explain(decision: Decision, lists_applied: Sequence[str] = ()) -> str:
    """Why a decision came out as it did, in words (precedence rules included)."""
    matches = decision.matches
    if not decision.number:
        return decision.reason or "no number to screen"
    if not matches and decision.reason:
        return decision.reason
    ignored = [m for m in matches if not m.enforced]
    ignored_text = ""
    if ignored:
        parts = [
            f"{m.display} in {m.list_name!r} ({_STATUS_WORDS.get(m.status, m.status)})"
            for m in ignored
        ]
        ignored_text = "; not enforced: " + ", ".join(parts)
    enforced = sorted((m for m in matches if m.enforced), key=rank)
    if not enforced:
        if not matches:
            scope = (
                f"the {len(lists_applied)} lists that apply"
                if lists_applied
                else "any list that applies"
            )
            return f"no entry in {scope} matches {decision.number}: the call is allowed"
        return f"no enforced entry matches {decision.number}: the call is allowed" + ignored_text
    winner = enforced[0]
    head = f"{winner.display} ({_kind(winner)}) in {winner.list_name!r} ({winner.action}) decides"
    if len(enforced) == 1:
        return f"{head}: it is the only enforced match" + ignored_text
    runner = enforced[1]
    if specificity(winner) != specificity(runner):
        if not winner.is_prefix:
            why = f"an exact number beats any prefix ({runner.display} in {runner.list_name!r})"
        else:
            why = f"a longer prefix beats a shorter one ({runner.display} in {runner.list_name!r})"
    elif winner.action != runner.action:
        why = (
            f"at equal specificity block beats label beats allow ({runner.action} by "
            f"{runner.display} in {runner.list_name!r})"
        )
    else:
        why = (
            f"the same {runner.action} entry is also in {runner.list_name!r}; at a full tie "
            "the list whose name sorts first decides"
        )
    return f"{head}: {why}" + ignored_text


# -- the service -----------------------------------------------------------------------


class Admin:
    """Every admin operation, over one :class:`~callscreen.services.table.Table` (sync Redis).

    ``by`` arguments name who makes a change; empty means the OS user.
    """

    def __init__(self, settings: Settings, table: Table | None = None) -> None:
        self.settings = settings
        self.table = table if table is not None else Table(settings)
        self.region = settings.default_region

    def close(self) -> None:
        self.table.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------

    def _info(self, name: str) -> ListInfo:
        return self.table.get_list(name)

    def parse_entries(self, raws: Iterable[str]) -> list[EntryKey]:
        """Entries as typed by an admin, deduplicated; every bad one is reported."""
        keys: list[EntryKey] = []
        bad: list[str] = []
        for raw in raws:
            try:
                keys.append(parse_entry(raw, self.region))
            except InvalidNumber as exc:
                bad.append(str(exc))
        if bad:
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise InvalidNumber("; ".join(bad[:5]) + more)
        if not keys:
            raise InvalidInput("no entries given")
        return list(dict.fromkeys(keys))

    def _record(
        self,
        info: ListInfo,
        op: str,
        by: str,
        summary: WriteSummary,
        *,
        reason: str = "",
        batch: int | None = None,
        detail: str = "",
    ) -> None:
        if summary.changed:
            audit.record(
                self.table,
                info.id,
                op,
                by=by,
                list_name=info.name,
                reason=reason,
                count=summary.changed,
                entries=summary.sample,
                batch=batch,
                detail=detail,
            )

    # -- lists -------------------------------------------------------------------------

    def create_list(
        self,
        name: str,
        action: Action,
        direction: Direction = Direction.BOTH,
        *,
        campaign_only: bool = False,
        description: str = "",
        by: str = "",
    ) -> ListView:
        """A new list: global, or applying only to the campaigns it gets assigned to."""
        by = _actor(by)
        _text(description, "description", MAX_DESCRIPTION)
        scope = Scope.CAMPAIGN if campaign_only else Scope.GLOBAL
        info = self.table.create_list(name, action, direction, scope, description, by)
        detail = f"{action}, {direction}, {scope}"
        audit.record(self.table, info.id, "create", by=by, list_name=name, detail=detail)
        audit.record(self.table, None, "create", by=by, list_name=name, detail=detail)
        return ListView.of(info, entries.counts_from({}, 0))

    def list_lists(self) -> list[ListView]:
        """Every list, by name, with its counts."""
        infos = self.table.all_lists()
        counts = entries.all_status_counts(self.table, infos)
        assigned = self.table.assignments()
        return [
            ListView.of(info, c, assigned.get(info.id, ()))
            for info, c in zip(infos, counts, strict=True)
        ]

    def show_list(self, name: str) -> ListView:
        """One list with its counts by status (expired included) and its campaigns."""
        info = self._info(name)
        counts = entries.status_counts(self.table, info)
        return ListView.of(info, counts, self.table.campaigns_of(info.id))

    def update_list(
        self,
        name: str,
        *,
        new_name: str | None = None,
        action: Action | None = None,
        direction: Direction | None = None,
        scope: Scope | None = None,
        description: str | None = None,
        by: str = "",
    ) -> ListView:
        """Change only what is given (a name can change, not be emptied)."""
        by = _actor(by)
        if description is not None:
            _text(description, "description", MAX_DESCRIPTION)
        before = self._info(name)
        after = self.table.update_list(
            name,
            new_name=new_name,
            action=action,
            direction=direction,
            scope=scope,
            description=description,
            by=by,
        )
        changes = [
            f"{attr}: {getattr(before, attr)} -> {getattr(after, attr)}"
            for attr in ("name", "action", "direction", "scope")
            if getattr(before, attr) != getattr(after, attr)
        ]
        if before.description != after.description:
            changes.append("description changed")
        if changes:
            detail = "; ".join(changes)
            audit.record(self.table, after.id, "update", by=by, list_name=after.name, detail=detail)
            if before.name != after.name:
                audit.record(self.table, None, "rename", by=by, list_name=after.name, detail=detail)
        counts = entries.status_counts(self.table, after)
        return ListView.of(after, counts, self.table.campaigns_of(after.id))

    def delete_list(self, name: str, *, by: str = "") -> DeleteResult:
        """Delete a list and all its entries; refused while it holds permanent entries.

        Confirmation is the caller's business (the CLI asks, or takes ``--yes``).
        """
        by = _actor(by)
        info = self._info(name)
        raw = self.table.drop_list(info)
        counts = entries.counts_from({k: str(v) for k, v in raw.items()}, 0)
        del counts[Status.EXPIRED.value]
        detail = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "empty"
        audit.record(self.table, None, "delete", by=by, list_name=name, detail=detail)
        return DeleteResult(name, by, counts)

    # -- entries -----------------------------------------------------------------------

    def add(
        self,
        list_name: str,
        raw_entries: Sequence[str],
        *,
        reason: str = "",
        external_id: str = "",
        expires: str | None = None,
        by: str = "",
        source: str = DEFAULT_SOURCE,
        hangup_live: bool | None = None,
        status: Status = Status.ACTIVE,
    ) -> ChangeResult:
        """Add entries, active at once (``status`` pending: new ones wait for review).
        An entry already there is updated (and said so): a permanent one stays
        permanent, a removed one is restored, and what is not given (reason, expiry,
        external id) keeps its stored value; an entry whose
        reason is kept also keeps the record of who gave it.

        ``expires`` is a duration (``30d``) or a date (``2027-01-31``, kept through
        that day, UTC); see :mod:`callscreen.core.times`. On a block list, the calls queued
        for the entries are cancelled, and with ``hangup_live`` (default: the
        ``cascade_hangup_live`` setting) their live calls hung up (``cascade``).
        """
        by = _actor(by)
        info = self._info(list_name)
        keys = self.parse_entries(raw_entries)
        _text(reason, "reason", MAX_REASON)
        _text(external_id, "external id", MAX_EXTERNAL_ID)
        now = time.time()
        expires_at = parse_expiry(expires, now) if expires else None
        notes = []
        if expires_at is not None and expires_at <= now:
            notes.append(f"the expiry {iso(expires_at)} is past: these entries do not match")
        batch = self.table.new_batch("add", reason, source, by)
        if status not in (Status.ACTIVE, Status.PENDING):
            raise InvalidInput("entries are added active or pending")
        summary = entries.add_entries(
            self.table,
            info,
            keys,
            batch,
            status=status,
            expires=expires_at,
            external_id=external_id,
        )
        self._record(info, "add", by, summary, reason=reason, batch=batch.id)
        report = cascading.for_entries(
            self.settings, self.table, info, keys, hangup_live=hangup_live
        )
        return ChangeResult.of(
            info, "add", by, summary, reason=reason, batch=batch.id, notes=notes, cascade=report
        )

    def remove(
        self, list_name: str, raw_entries: Sequence[str], *, reason: str, by: str = ""
    ) -> ChangeResult:
        """Soft-delete entries: they stop matching at once and are kept, with who
        removed them, when and why. Refused (nothing changed) if any is permanent or
        missing."""
        by = _actor(by)
        if not reason.strip():
            raise InvalidInput("a reason is required to remove entries")
        _text(reason, "reason", MAX_REASON)
        info = self._info(list_name)
        keys = self.parse_entries(raw_entries)
        entries.precheck(self.table, info, "remove", keys)
        batch = self.table.new_batch("remove", reason, DEFAULT_SOURCE, by)
        summary = entries.transition(self.table, info, "remove", keys, batch=batch)
        self._record(info, "remove", by, summary, reason=reason, batch=batch.id)
        return ChangeResult.of(info, "remove", by, summary, reason=reason, batch=batch.id)

    def restore(
        self,
        list_name: str,
        raw_entries: Sequence[str],
        *,
        reason: str = "",
        by: str = "",
        hangup_live: bool | None = None,
    ) -> ChangeResult:
        """Bring soft-deleted entries back: they are active again, with the reason
        they had. Refused (nothing changed) if any is missing. On a block list, as for
        :meth:`add`, the calls on their way to them are cancelled."""
        by = _actor(by)
        _text(reason, "reason", MAX_REASON)
        info = self._info(list_name)
        keys = self.parse_entries(raw_entries)
        summary = entries.transition(self.table, info, "restore", keys)
        self._record(info, "restore", by, summary, reason=reason)
        report = cascading.for_entries(
            self.settings, self.table, info, keys, hangup_live=hangup_live
        )
        return ChangeResult.of(info, "restore", by, summary, reason=reason, cascade=report)

    def approve(
        self,
        list_name: str,
        raw_entries: Sequence[str] = (),
        *,
        all_pending: bool = False,
        permanent: bool = False,
        confirm_broad: bool = False,
        by: str = "",
        hangup_live: bool | None = None,
    ) -> ChangeResult:
        """Approve pending entries (they are enforced from now on), or, with
        ``permanent``, make entries permanent: never again unapproved, removed or
        deleted. A permanent approval of a whole country code needs ``confirm_broad``.
        Refused (nothing changed) if an entry is missing or removed. On a block list,
        as for :meth:`add`, the calls on their way to the approved entries are
        cancelled (after ``all_pending``: to any enforced entry of the list)."""
        by = _actor(by)
        if all_pending == bool(raw_entries):
            raise InvalidInput("give the entries to approve, or --all-pending (not both)")
        info = self._info(list_name)
        op = "approve"
        detail = "permanent" if permanent else ""
        if not all_pending:
            keys = self.parse_entries(raw_entries)
            if permanent and not confirm_broad:
                self._confirm_broad(keys)
            if permanent and self.settings.four_eyes:
                records = entries.read_records(self.table, info, keys)
                self._four_eyes(
                    by, [(k, r) for k, r in zip(keys, records, strict=True) if r is not None]
                )
            summary = entries.transition(self.table, info, op, keys, permanent=permanent)
            report = cascading.for_entries(
                self.settings, self.table, info, keys, hangup_live=hangup_live
            )
        else:
            summary = self._approve_all_pending(info, permanent, confirm_broad, by)
            report = cascading.for_list(
                self.settings, self.table, info, count=summary["approved"], hangup_live=hangup_live
            )
        self._record(info, op, by, summary, detail=detail)
        notes = ("permanent entries cannot be unapproved, removed or deleted",) if permanent else ()
        return ChangeResult.of(info, op, by, summary, notes=notes, cascade=report)

    @staticmethod
    def _confirm_broad(keys: Iterable[EntryKey]) -> None:
        broad = [key.display for key in keys if covers_country_code(key)]
        if broad:
            raise NeedsConfirmation(
                f"approving {', '.join(broad)} permanently covers a whole country code and "
                "cannot be undone and needs explicit confirmation"
            )

    def _four_eyes(self, by: str, items: Iterable[tuple[EntryKey, EntryRecord]]) -> None:
        """The four-eyes rule (setting ``four_eyes``): refuse (nothing changed) if ``by``
        added any of these entries (the actor of the entry's creating batch; an API
        key's ``(X-Actor)`` note is not a different person)."""
        mine: list[str] = []
        chunk: list[tuple[EntryKey, EntryRecord]] = []

        def check() -> None:
            batches = self.table.batches([r.created_batch for _k, r in chunk])
            for key, record in chunk:
                made = batches.get(record.created_batch)
                if made is not None and _person(made.by) == _person(by):
                    mine.append(key.display)

        for item in items:
            chunk.append(item)
            if len(chunk) >= entries.CHUNK:
                check()
                chunk = []
        check()
        if mine:
            more = f" and {len(mine) - 5} more" if len(mine) > 5 else ""
            raise Refused(
                f"four-eyes rule: {by} added {', '.join(mine[:5])}{more}; another person "
                "must approve them permanently"
            )

    def _approve_all_pending(
        self, info: ListInfo, permanent: bool, confirm_broad: bool, by: str
    ) -> WriteSummary:
        total = WriteSummary()
        if not entries.status_counts(self.table, info)[Status.PENDING.value]:
            return total
        pending = [
            key
            for key, record in entries.scan_entries(self.table, info, prefixes_only=True)
            if record.status is Status.PENDING
        ]
        if permanent and not confirm_broad:
            self._confirm_broad(pending)
        if permanent and self.settings.four_eyes:
            self._four_eyes(
                by,
                (
                    (key, record)
                    for key, record in entries.scan_entries(self.table, info)
                    if record.status is Status.PENDING
                ),
            )

        def chunks() -> Iterator[list[EntryKey]]:
            yield pending
            chunk: list[EntryKey] = []
            for key, record in entries.scan_entries(self.table, info, exact_only=True):
                if record.status is Status.PENDING:
                    chunk.append(key)
                    if len(chunk) >= entries.CHUNK:
                        yield chunk
                        chunk = []
            yield chunk

        for chunk in chunks():
            if chunk:
                part = entries.transition(
                    self.table, info, "approve", chunk, permanent=permanent, lenient=True
                )
                total.merge(part)
        return total

    def unapprove(
        self, list_name: str, raw_entries: Sequence[str], *, by: str = ""
    ) -> ChangeResult:
        """Send active entries back to review (pending: no longer enforced). Refused
        (nothing changed) if any is permanent, removed or missing."""
        by = _actor(by)
        info = self._info(list_name)
        keys = self.parse_entries(raw_entries)
        summary = entries.transition(self.table, info, "unapprove", keys)
        self._record(info, "unapprove", by, summary)
        return ChangeResult.of(info, "unapprove", by, summary)

    def import_file(
        self,
        list_name: str,
        path: str,
        options: ImportOptions,
        *,
        stdin: IO[bytes] | None = None,
        errors_out: TextIO | None = None,
        progress: Progress | None = None,
        hangup_live: bool | None = None,
    ) -> ImportResult:
        """Import a CSV file (``-``: ``stdin``) into a list; :mod:`callscreen.services.importer`
        gives the rules. On a block list, when the import made entries enforced
        (``--approve``, ``--approve-permanently``, or an export's statuses with
        ``keep_status``), the calls on their way to them are cancelled as for
        :meth:`add` — matched against every enforced entry of the list, as after
        ``approve --all-pending``: an import is too big to name its entries."""
        options = dataclasses.replace(options, by=_actor(options.by))
        if options.approve is Status.PERMANENT and self.settings.four_eyes:
            raise Refused(
                "four-eyes rule: an import cannot approve entries permanently; import them "
                "pending or approved, and another person approves them permanently"
            )
        if options.reason is not None:
            _text(options.reason, "reason", MAX_REASON)
        info = self._info(list_name)
        summary = importer.import_file(
            self.table,
            info.name,
            path,
            options,
            stdin=stdin,
            errors_out=errors_out,
            progress=progress,
        )
        report = cascading.for_list(
            self.settings, self.table, info, count=summary.enforced, hangup_live=hangup_live
        )
        return ImportResult(summary, report)

    def list_entries(
        self,
        list_name: str,
        *,
        status: Status | None = None,
        search: str = "",
        limit: int = DEFAULT_PAGE,
        offset: int = 0,
        after: tuple[str, bool] | None = None,
        statuses: frozenset[Status] | None = None,
    ) -> EntryPage:
        """A page of a list's entries sorted by entry, with the number matching the
        filter and the list's counts (``statuses``: any of these, as ``status`` one).
        ``search`` keeps entries starting with it
        (``+3361``, or national digits read with the default region). ``after``
        (digits, is_prefix) starts the page past that entry (a cursor that stays
        right while entries are added or removed before it).

        This scans the whole list (admin side, never on the call path).
        """
        if not 0 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 0 and {MAX_PAGE}")
        if offset < 0:
            raise InvalidInput("--offset must not be negative")
        info = self._info(list_name)
        digits = ""
        if search:
            digits = parse_entry(search.strip().rstrip("*") + "*", self.region).digits
        now = time.time()
        total = 0

        def selected() -> Iterator[tuple[EntryKey, EntryRecord]]:
            nonlocal total
            for key, record in entries.scan_entries(self.table, info):
                if digits and not key.digits.startswith(digits):
                    continue
                if status is not None and record.effective_status(now) is not status:
                    continue
                if statuses is not None and record.effective_status(now) not in statuses:
                    continue
                total += 1
                if after is not None and (key.digits, key.is_prefix) <= after:
                    continue
                yield key, record

        page = heapq.nsmallest(
            offset + limit, selected(), key=lambda item: (item[0].digits, item[0].is_prefix)
        )[offset:]
        counts = entries.status_counts(self.table, info, now)
        views = self._entry_views(page, now)
        return EntryPage(info.name, total, offset, limit, counts, views, status, search)

    def show_entry(self, list_name: str, entry: str) -> EntryView:
        """One entry of a list (NotFound if the list never held it)."""
        info = self._info(list_name)
        key = self.parse_entries([entry])[0]
        record = entries.read_records(self.table, info, [key])[0]
        if record is None:
            raise NotFound(f"{key.display} is not in list {info.name!r}")
        return self._entry_views([(key, record)], time.time())[0]

    def entry_views(
        self, items: Sequence[tuple[EntryKey, EntryRecord]], now: float | None = None
    ) -> tuple[EntryView, ...]:
        """Views of entries read elsewhere (:mod:`callscreen.services.browse`)."""
        return self._entry_views(items, time.time() if now is None else now)

    def _entry_views(
        self, items: Sequence[tuple[EntryKey, EntryRecord]], now: float
    ) -> tuple[EntryView, ...]:
        ids = [r.batch for _k, r in items] + [r.removal for _k, r in items if r.removal]
        ids += [r.created for _k, r in items if r.created is not None]
        batches = self.table.batches(ids)
        views = []
        for key, record in items:
            batch = batches[record.batch]
            created = batches[record.created_batch]
            removal = batches.get(record.removal) if record.removal else None
            views.append(
                EntryView(
                    entry=key.display,
                    kind="prefix" if key.is_prefix else "number",
                    status=record.effective_status(now),
                    reason=batch.reason,
                    source=batch.source,
                    external_id=record.external_id,
                    expires=iso(record.expires),
                    op=batch.op,
                    created_by=created.by,
                    created_at=iso(created.at) if created.at else None,
                    updated_by=batch.by,
                    updated_at=iso(batch.at) if batch.at else None,
                    removed_by=removal.by if removal else "",
                    removed_at=iso(removal.at) if removal and removal.at else None,
                    removal_reason=removal.reason if removal else "",
                )
            )
        return tuple(views)

    def purge(self, list_name: str, before: str, *, by: str = "") -> ChangeResult:
        """Hard-delete the entries soft-deleted before ``before`` (a date, or a
        duration meaning that long ago). Nothing else is touched."""
        by = _actor(by)
        info = self._info(list_name)
        now = time.time()
        cutoff = parse_before(before, now)
        deleted = [
            (key, record)
            for key, record in entries.scan_entries(self.table, info)
            if record.status is Status.DELETED
        ]
        batches = self.table.batches([record.removal or record.batch for _key, record in deleted])
        doomed = [
            (key, record.removal)
            for key, record in deleted
            if batches[record.removal or record.batch].at < cutoff
        ]
        summary = entries.purge_records(self.table, info, doomed)
        detail = f"removed before {iso(cutoff)}"
        self._record(info, "purge", by, summary, detail=detail)
        return ChangeResult.of(info, "purge", by, summary, notes=(detail,))

    def history(
        self,
        list_name: str | None = None,
        entry: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
    ) -> list[Event]:
        """The most recent changes first: to one list (and, given ``entry``, to that
        entry), or without a list to lists as a whole and to campaigns. ``before`` (an
        event id) pages back past that event."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 1 and {MAX_PAGE}")
        if before is not None and not re.fullmatch(r"\d{1,20}-\d{1,20}", before):
            raise InvalidInput("not an event id")
        if list_name is None:
            return audit.read(self.table, None, limit=limit, before=before)
        info = self._info(list_name)
        if entry is None:
            return audit.read(self.table, info.id, limit=limit, before=before)
        key = self.parse_entries([entry])[0]
        record = entries.read_records(self.table, info, [key])[0]
        batches = [] if record is None else [record.batch]
        if record is not None and record.created is not None:
            batches.append(record.created)
        if record is not None and record.removal:
            batches.append(record.removal)
        return audit.read(
            self.table, info.id, entry=key.display, batches=batches, limit=limit, before=before
        )

    # -- campaigns ---------------------------------------------------------------------

    def assign(self, campaign: str, list_names: Sequence[str], *, by: str = "") -> CampaignView:
        """Replace the lists assigned to a campaign (duplicates dropped, at most 100;
        none clears the assignment)."""
        by = _actor(by)
        names = self.table.assign(campaign, list(list_names))
        audit.record(
            self.table, None, "assign", by=by, detail=f"{campaign}: {', '.join(names) or '-'}"
        )
        return self.campaign(campaign)

    def campaign(self, name: str) -> CampaignView:
        """A campaign's lists (a campaign nobody assigned lists to has none, and its
        calls are screened against the global lists only)."""
        assigned = tuple(info.name for info in self.table.campaign_lists(name))
        global_lists = tuple(
            info.name for info in self.table.all_lists() if info.scope is Scope.GLOBAL
        )
        return CampaignView(name, assigned, global_lists)

    def campaigns(self) -> list[CampaignView]:
        """Every campaign that has lists assigned, by name."""
        return [
            CampaignView(name, tuple(info.name for info in self.table.campaign_lists(name)))
            for name in self.table.campaign_names()
        ]

    # -- check -------------------------------------------------------------------------

    def lists_applied(self, direction: Direction, campaign: str = "") -> list[str]:
        """The lists a call in ``direction`` for ``campaign`` is screened against."""
        assigned = {info.id for info in self.table.campaign_lists(campaign)} if campaign else set()
        return [
            info.name
            for info in self.table.all_lists()
            if (info.scope is Scope.GLOBAL or info.id in assigned)
            and info.direction in (Direction.BOTH, direction)
        ]

    async def check_async(
        self, number: str, direction: Direction = Direction.INBOUND, campaign: str = ""
    ) -> CheckResult:
        """What a call would get, through the screening core itself (one Redis round
        trip, as on a real call), with every matching entry, enforced or not."""
        from callscreen.callpath.leanredis import LeanRedis
        from callscreen.callpath.screener import Screener

        if direction is Direction.BOTH:
            raise InvalidInput("a call is inbound or outbound")
        client = LeanRedis.from_settings(self.settings)
        try:
            screener = Screener(self.settings, client)
            decision = await screener.decide(
                ScreenRequest(number, direction, campaign), include_inactive=True
            )
        finally:
            await client.close()
        applied = self.lists_applied(direction, campaign)
        return self.check_result(number, direction, campaign, decision, applied)

    def check(
        self, number: str, direction: Direction = Direction.INBOUND, campaign: str = ""
    ) -> CheckResult:
        """:meth:`check_async` for synchronous callers (the CLI)."""
        return asyncio.run(self.check_async(number, direction, campaign))

    @staticmethod
    def check_result(
        number: str,
        direction: Direction,
        campaign: str,
        decision: Decision,
        applied: Sequence[str],
    ) -> CheckResult:
        winner = next(
            (
                m
                for m in decision.matches
                if m.enforced and m.list_name == decision.list_name and m.display == decision.match
            ),
            None,
        )
        views = tuple(
            MatchView(
                list_name=m.list_name,
                action=m.action,
                entry=m.display,
                kind="prefix" if m.is_prefix else "number",
                status=m.status,
                enforced=m.enforced,
                decides=m is winner,
                reason=m.reason,
                source=m.source,
            )
            for m in sorted(decision.matches, key=rank)
        )
        return CheckResult(
            input=number,
            direction=direction,
            campaign=campaign,
            result=decision.result.value,
            label=decision.label,
            number=decision.number,
            list_name=decision.list_name,
            match=decision.match,
            reason=decision.reason,
            explanation=explain(decision, applied),
            lists_applied=tuple(applied),
            matches=views,
        )
