"""Bulk transitions by filter: approve, unapprove, remove or restore every entry of a
list that a filter selects (:class:`Selection`: a status, a search prefix, and the
browse filter of :mod:`callscreen.services.browse` — batch, source, creation time), or
count them first (a dry run).

The selection is read in storage order, a page at a time (:data:`PAGE` entries, a
position where the page ended: it stays right while the change moves entries out of
the filter), and each page is changed by the entry service's own method
(:class:`~callscreen.services.approvals.EntryService`), so every rule of a change by
numbers holds page by page: the list must be writable, permanent entries are never
removed or unapproved, each page is one change with one batch, one audit event and
(on a block list) one queued cascade. Memory holds one page, whatever the list's size.

A permanent approval is checked over the whole selection before anything is written:
a prefix covering a whole country code needs ``confirm_broad``, and the four-eyes rule
refuses the whole change if the actor added any selected entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from callscreen.core.errors import InvalidInput
from callscreen.core.model import EntryRecord, Status
from callscreen.core.numbers import EntryKey, parse_entry
from callscreen.core.times import duration, parse_datetime
from callscreen.services import browse, entries
from callscreen.services.approvals import EntryService
from callscreen.services.context import Context
from callscreen.services.entries import Position, WriteSummary
from callscreen.services.rules import MAX_REASON, confirm_broad, writable_list
from callscreen.services.table import Batch, ListInfo
from callscreen.services.views import ChangeResult

PAGE = 5_000
"""Entries changed at once: one change (batch, audit event, cascade plan) per page."""

SAMPLE = 100  # entries named (with their status) in a dry run's answer

# the statuses (as enforced now) each transition changes; a filter's status must be one
_TAKES: dict[tuple[str, bool], frozenset[Status]] = {
    ("approve", False): frozenset({Status.PENDING}),
    ("approve", True): frozenset({Status.PENDING, Status.ACTIVE}),
    ("unapprove", False): frozenset({Status.ACTIVE}),
    ("remove", False): frozenset({Status.PENDING, Status.ACTIVE, Status.EXPIRED}),
    ("restore", False): frozenset({Status.DELETED}),
}
OPS = ("approve", "unapprove", "remove", "restore")


@dataclass(frozen=True, slots=True)
class Selection:
    """The entries of a list a bulk change takes, as ``entries`` filters them: one
    ``status`` (None: every status the change applies to), entries starting with
    ``search`` (``+3361``, or national digits), and ``keep`` (batch, source, created
    between two times)."""

    status: Status | None = None
    search: str = ""
    keep: browse.Filter = dataclasses.field(default_factory=browse.Filter)

    def describe(self) -> str:
        """The filter in words, for the audit trail (``status pending, search +3361``)."""
        parts = []
        if self.status is not None:
            parts.append(f"status {self.status.value}")
        if self.search:
            parts.append(f"search {self.search}")
        if self.keep.batch is not None:
            parts.append(f"batch {self.keep.batch}")
        if self.keep.source:
            parts.append(f"source {self.keep.source}")
        if self.keep.added_from is not None:
            parts.append(f"created from {self.keep.added_from!r}")
        if self.keep.added_to is not None:
            parts.append(f"created before {self.keep.added_to!r}")
        return ", ".join(parts) or "every entry"


def selection_of(
    *,
    status: Status | None = None,
    search: str = "",
    batch: int | None = None,
    source: str = "",
    created_before: str | None = None,
    created_after: str | None = None,
    now: float,
) -> Selection | None:
    """The selection front ends' filters give (None: no filter at all).
    ``created_before``/``created_after`` are a date (``2026-01-01``: from the start of
    that day, UTC), a date-time, or a duration ago (``90d``); before is exclusive,
    after inclusive."""
    if (
        status is None
        and not search
        and batch is None
        and not source
        and created_before is None
        and created_after is None
    ):
        return None
    keep = browse.Filter(
        batch=batch,
        source=source,
        added_from=None if created_after is None else _moment(created_after, now, "after"),
        added_to=None if created_before is None else _moment(created_before, now, "before"),
    )
    return Selection(status, search, keep)


def _moment(text: str, now: float, side: str) -> float:
    seconds = duration(text)
    if seconds is not None:
        return now - seconds
    return parse_datetime(text, f"--created-{side}").timestamp()


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk change did (or, ``dry_run``, would do): how many entries the filter
    selected (``matched``, by status now in ``by_status``, the first :data:`SAMPLE` in
    ``sample``), the outcomes summed over its pages, and each page's change (one batch,
    one audit event, one queued cascade each; their per-entry outcomes dropped)."""

    list_name: str
    op: str
    by: str
    dry_run: bool
    matched: int
    by_status: dict[str, int]
    sample: dict[str, str]
    outcomes: dict[str, int]
    changes: tuple[ChangeResult, ...] = ()

    @property
    def changed(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k not in ("unchanged", "skipped"))

    def to_json(self) -> dict[str, Any]:
        return {
            "list_name": self.list_name,
            "op": self.op,
            "by": self.by,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "by_status": self.by_status,
            "sample": self.sample,
            "outcomes": self.outcomes,
            "changed": self.changed,
            "batches": [c.batch for c in self.changes if c.batch is not None],
            "cascade_jobs": [c.cascade_job for c in self.changes if c.cascade_job],
        }


class BulkChangeService:
    """Approve, unapprove, remove or restore the entries a :class:`Selection` picks."""

    def __init__(self, ctx: Context, entries: EntryService | None = None) -> None:
        self.ctx = ctx
        self.entries = entries or EntryService(ctx)

    async def change(
        self,
        list_name: str,
        op: str,
        selection: Selection,
        *,
        reason: str = "",
        permanent: bool = False,
        confirm_broad: bool = False,
        hangup_live: bool | None = None,
        dry_run: bool = False,
        within: frozenset[Status] | None = None,
    ) -> BulkResult:
        """Apply ``op`` to every entry ``selection`` picks among those ``op`` changes
        (approve: pending ones, and active ones when ``permanent``; unapprove: active;
        remove: pending, active, expired, with a ``reason``; restore: removed), a page
        at a time; with ``dry_run``, only count them (nothing is written). ``within``
        narrows the statuses further (a console tab's: "all N matching" there)."""
        ctx = self.ctx
        if op not in OPS:
            raise InvalidInput(f"unknown change {op!r}")
        if permanent and op != "approve":
            raise InvalidInput("only an approval can be permanent")
        if op == "remove" and not reason.strip():
            raise InvalidInput("a reason is required to remove entries")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
        takes = _TAKES[(op, permanent)]
        if selection.status is not None:
            if selection.status not in takes:
                names = ", ".join(sorted(s.value for s in takes))
                raise InvalidInput(
                    f"{op}{' --permanent' if permanent else ''} changes {names} entries: "
                    f"--status {selection.status.value} selects none of them"
                )
            takes = frozenset({selection.status})
        if within is not None:
            takes &= within
            if not takes:
                raise InvalidInput(f"{op} changes none of the entries of these statuses")
        info = await writable_list(ctx, list_name)
        digits = ""
        if selection.search:
            digits = parse_entry(selection.search.strip().rstrip("*") + "*", ctx.region).digits
        now = ctx.clock()
        by_status: dict[str, int]
        sample: dict[str, str]
        if dry_run or permanent:
            # count (and, for a permanent approval, check the whole selection first:
            # nothing may be made permanent before every page is known to pass)
            matched, by_status, sample = 0, {}, {}
            async for page in _pages(ctx, info, takes, selection.keep, digits, now):
                matched += len(page)
                _tally(page, now, by_status, sample)
                if permanent and not dry_run:
                    await self._check_permanent(page, confirm_broad)
            if dry_run:
                return BulkResult(
                    info.name, op, ctx.actor.name, True, matched, by_status, sample, {}
                )
        matched, by_status, sample = 0, {}, {}
        total = WriteSummary()
        changes: list[ChangeResult] = []
        async for page in _pages(ctx, info, takes, selection.keep, digits, now):
            matched += len(page)
            _tally(page, now, by_status, sample)
            result = await self._apply(
                info, op, [key.display for key, _ in page], reason, permanent, hangup_live
            )
            total.counts.update(result.outcomes)
            changes.append(dataclasses.replace(result, entries={}))
        return BulkResult(
            info.name,
            op,
            ctx.actor.name,
            False,
            matched,
            by_status,
            sample,
            dict(total.counts),
            tuple(changes),
        )

    async def _check_permanent(self, page: list[tuple[EntryKey, Any]], confirm: bool) -> None:
        if not confirm:
            confirm_broad(key for key, _record in page)
        if self.ctx.settings.four_eyes:
            # the entry service's own four-eyes rule, over this page
            await self.entries._four_eyes(page)

    async def _apply(
        self,
        info: ListInfo,
        op: str,
        numbers: list[str],
        reason: str,
        permanent: bool,
        hangup_live: bool | None,
    ) -> ChangeResult:
        service = self.entries
        if op == "approve":
            # the whole selection was checked already (broad prefixes confirmed or
            # refused, four eyes) before the first page
            return await service.approve(
                info.name,
                numbers,
                permanent=permanent,
                confirm_broad=True,
                hangup_live=hangup_live,
            )
        if op == "unapprove":
            return await service.unapprove(info.name, numbers)
        if op == "remove":
            return await service.remove(info.name, numbers, reason=reason)
        return await service.restore(info.name, numbers, reason=reason, hangup_live=hangup_live)


def _tally(
    page: list[tuple[EntryKey, Any]], now: float, by_status: dict[str, int], sample: dict[str, str]
) -> None:
    for key, record in page:
        status = record.effective_status(now).value
        by_status[status] = by_status.get(status, 0) + 1
        if len(sample) < SAMPLE:
            sample[key.display] = status


async def _pages(
    ctx: Context,
    info: ListInfo,
    statuses: frozenset[Status],
    keep: browse.Filter,
    digits: str,
    now: float,
) -> AsyncIterator[list[tuple[EntryKey, EntryRecord]]]:
    """The selection in storage order (:func:`~callscreen.services.entries.page_entries`;
    with a search, in number order from the list's number index), about :data:`PAGE`
    entries at a time. The position is where the last read ended, so changing a page
    before reading the next one neither skips nor repeats entries."""
    table = ctx.table
    after: Position | None = None
    page: list[tuple[EntryKey, EntryRecord]] = []
    made: dict[int, Batch] = {}  # the batches the source and time filters look at
    by_batches = bool(keep.source) or keep.added_from is not None or keep.added_to is not None
    # one status with an index (pending, removed): read it, not the list
    indexed = entries.indexed_code(next(iter(statuses))) if len(statuses) == 1 else None

    def wanted(key: EntryKey, record: EntryRecord) -> bool:
        if digits and not key.digits.startswith(digits):
            return False
        if record.effective_status(now) not in statuses:
            return False
        return keep.batch is None or keep.batch in (record.batch, record.created_batch)

    def kept(record: EntryRecord) -> bool:
        return keep.keeps(record, made)  # as the console's browse filter keeps them

    while True:
        # a search reads the list's number index (number order), the matches only
        items, after = await entries.page_entries(
            table,
            info,
            after=after,
            limit=PAGE,
            keep=wanted,
            stored_status=None if digits else indexed,
            starting=digits,
            statuses=statuses if digits else None,
            now=now,
        )
        if by_batches and items:
            ids = {r.batch for _k, r in items} | {r.created_batch for _k, r in items}
            made.update(await table.batches([b for b in ids if b not in made]))
            items = [(key, record) for key, record in items if kept(record)]
            if len(made) > 10 * PAGE:  # batches are few; this only bounds a pathological list
                made.clear()
        page.extend(items)
        if len(page) >= PAGE or (after is None and page):
            yield page
            page = []
        if after is None:
            return
