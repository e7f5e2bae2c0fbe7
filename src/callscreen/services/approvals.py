"""The entries service: entries and their life — add, remove, restore, approve,
unapprove, purge — and pages of a list's entries.

- every change records its actor and time: on the entries (their batch) and in the
  audit trail;
- a change to several entries is all or nothing: every entry is checked before the
  first write (a permanent entry refuses ``remove`` and ``unapprove``; a missing one
  refuses every transition);
- approving permanently a prefix that is a whole country calling code cannot be undone
  and reaches millions of numbers: it needs ``confirm_broad``;
- with the four-eyes rule (setting ``four_eyes``), a permanent approval by the actor who
  added the entry is refused, whatever the front end;
- when entries of a *block* list become enforced (``add``, ``approve``, ``restore``),
  the result carries the cascade's plan and its queued job
  (:mod:`callscreen.services.cascading`); the front end may wait for its report.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from callscreen.core.errors import InvalidInput, NotFound, Refused
from callscreen.core.model import EntryRecord, Status, Transition
from callscreen.core.numbers import EntryKey, parse_entry
from callscreen.core.text import free_text
from callscreen.core.times import iso, iso_ms, parse_before, parse_expiry
from callscreen.services import entries
from callscreen.services.cascading import CascadePlan, CascadeQueue, plan_for_entries, plan_for_list
from callscreen.services.context import Context
from callscreen.services.entries import Position, WriteSummary
from callscreen.services.rules import (
    DEFAULT_PAGE,
    DEFAULT_SOURCE,
    MAX_EXTERNAL_ID,
    MAX_PAGE,
    MAX_REASON,
    confirm_broad,
    parse_entries,
    record_change,
    writable_list,
)
from callscreen.services.table import Batch, ListInfo
from callscreen.services.views import (
    ChangeResult,
    EntryCursorPage,
    EntryPage,
    EntryView,
    TransitionView,
    transition_batches,
)


def _person(actor: str) -> str:
    """The person or key behind an actor, without a client's ``(note)``."""
    return actor.split(" (", 1)[0].strip()


async def queue_plan(ctx: Context, plan: CascadePlan | None) -> tuple[str, CascadePlan] | None:
    """Queue ``plan`` for the cascade runner: its job id and the plan."""
    if plan is None:
        return None
    return await CascadeQueue(ctx.table).enqueue(plan), plan


class EntryService:
    """Entries of lists, with the context's actor and clock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def parse_entries(self, raws: Sequence[str]) -> list[EntryKey]:
        """Entries as typed by an admin (the context's default region)."""
        return parse_entries(raws, self.ctx.region)

    async def add(
        self,
        list_name: str,
        raw_entries: Sequence[str],
        *,
        reason: str = "",
        external_id: str = "",
        expires: str | None = None,
        source: str = DEFAULT_SOURCE,
        hangup_live: bool | None = None,
        status: Status = Status.ACTIVE,
    ) -> ChangeResult:
        """Add entries, active at once (``status`` pending: new ones wait for review,
        and nothing is cascaded for them). An entry already there is updated (and said
        so): a permanent one is frozen and left as it is (outcome
        ``permanent-unchanged``), a removed one is restored, and what is
        not given (reason, expiry, external id) keeps its stored value; an entry whose
        reason is kept also keeps the record of who gave it.

        ``expires`` is a duration (``30d``) or a date (``2027-01-31``, kept through
        that day, UTC); see :mod:`callscreen.core.times`. On a block list, the
        cascade's plan is queued: cancel the calls queued for the entries and, with
        ``hangup_live`` (default: the ``cascade_hangup_live`` setting), their live calls.
        """
        ctx = self.ctx
        by = ctx.actor.name
        if status not in (Status.ACTIVE, Status.PENDING):
            raise InvalidInput("entries are added active or pending")
        info = await writable_list(ctx, list_name)
        keys = self.parse_entries(raw_entries)
        free_text(reason, "reason", MAX_REASON)
        free_text(external_id, "external id", MAX_EXTERNAL_ID)
        now = ctx.clock()
        expires_at = parse_expiry(expires, now) if expires else None
        notes = []
        batch = await ctx.table.new_batch("add", reason, source, by)
        summary = await entries.add_entries(
            ctx.table,
            info,
            keys,
            batch,
            status=status,
            expires=expires_at,
            external_id=external_id,
        )
        frozen = summary[entries.PERMANENT_UNCHANGED]
        if expires_at is not None and expires_at <= now and summary.changed:
            notes.append(
                f"the expiry {iso(expires_at)} is past: the entries added or updated do not match"
            )
        if frozen:
            notes.append(
                f"{frozen} permanent, unchanged: a permanent entry's reason, expiry and "
                "external id never change"
            )
        await record_change(ctx, info, "add", summary, reason=reason, batch=batch.id)
        plan = await plan_for_entries(ctx, info, keys, hangup_live, op="add", batch=batch.id)
        job = await queue_plan(ctx, plan)
        return ChangeResult.of(
            info, "add", by, summary, reason=reason, batch=batch.id, notes=notes, cascade=job
        )

    async def remove(
        self, list_name: str, raw_entries: Sequence[str], *, reason: str
    ) -> ChangeResult:
        """Soft-delete entries: they stop matching at once and are kept, with who
        removed them, when and why. Refused (nothing changed) if any is permanent or
        missing."""
        ctx = self.ctx
        if not reason.strip():
            raise InvalidInput("a reason is required to remove entries")
        free_text(reason, "reason", MAX_REASON)
        info = await writable_list(ctx, list_name)
        keys = self.parse_entries(raw_entries)
        await entries.precheck(ctx.table, info, "remove", keys)
        batch = await ctx.table.new_batch("remove", reason, DEFAULT_SOURCE, ctx.actor.name)
        summary = await entries.transition(ctx.table, info, "remove", keys, batch=batch)
        await record_change(ctx, info, "remove", summary, reason=reason, batch=batch.id)
        return ChangeResult.of(
            info, "remove", ctx.actor.name, summary, reason=reason, batch=batch.id
        )

    async def restore(
        self,
        list_name: str,
        raw_entries: Sequence[str],
        *,
        reason: str = "",
        hangup_live: bool | None = None,
    ) -> ChangeResult:
        """Bring soft-deleted entries back: they are active again, with the reason
        they had. Refused (nothing changed) if any is missing. On a block list, as for
        :meth:`add`, the cascade's plan is queued."""
        ctx = self.ctx
        free_text(reason, "reason", MAX_REASON)
        info = await writable_list(ctx, list_name)
        keys = self.parse_entries(raw_entries)
        batch = await ctx.table.new_batch("restore", reason, DEFAULT_SOURCE, ctx.actor.name)
        summary = await entries.transition(ctx.table, info, "restore", keys, batch=batch)
        await record_change(ctx, info, "restore", summary, reason=reason, batch=batch.id)
        job = await queue_plan(
            ctx,
            await plan_for_entries(ctx, info, keys, hangup_live, op="restore", batch=batch.id),
        )
        return ChangeResult.of(info, "restore", ctx.actor.name, summary, reason=reason, cascade=job)

    async def approve(
        self,
        list_name: str,
        raw_entries: Sequence[str] = (),
        *,
        all_pending: bool = False,
        permanent: bool = False,
        confirm_broad: bool = False,
        hangup_live: bool | None = None,
    ) -> ChangeResult:
        """Approve pending entries (they are enforced from now on), or, with
        ``permanent``, make entries permanent: never again unapproved, removed or
        deleted. A permanent approval of a whole country code needs ``confirm_broad``.
        Refused (nothing changed) if an entry is missing or removed. On a block list,
        as for :meth:`add`, the cascade's plan is queued (after ``all_pending``: for
        every enforced entry of the list)."""
        ctx = self.ctx
        if all_pending == bool(raw_entries):
            raise InvalidInput("give the entries to approve, or --all-pending (not both)")
        info = await writable_list(ctx, list_name)
        op = "approve"
        detail = "permanent" if permanent else ""
        # one batch record for the whole approval: each entry's trail points at it (none
        # when there is nothing pending: a scheduled --all-pending writes nothing then)
        batch: Batch | None = None
        if not all_pending or (await entries.status_counts(ctx.table, info))["pending"]:
            batch = await ctx.table.new_batch(op, "", DEFAULT_SOURCE, ctx.actor.name)
        if not all_pending:
            keys = self.parse_entries(raw_entries)
            if permanent and not confirm_broad:
                _confirm(keys)
            if permanent and ctx.settings.four_eyes:
                records = await entries.read_records(ctx.table, info, keys)
                await self._four_eyes(
                    [(k, r) for k, r in zip(keys, records, strict=True) if r is not None]
                )
            summary = await entries.transition(
                ctx.table, info, op, keys, batch=batch, permanent=permanent
            )
            plan = await plan_for_entries(
                ctx, info, keys, hangup_live, op=op, batch=batch.id if batch else None
            )
        else:
            summary = await self._approve_all_pending(info, permanent, confirm_broad, batch)
            plan = await plan_for_list(
                ctx,
                info,
                summary["approved"],
                hangup_live,
                op=op,
                batch=batch.id if batch else None,
            )
        batch_id = batch.id if batch is not None else None
        await record_change(ctx, info, op, summary, detail=detail, batch=batch_id)
        job = await queue_plan(ctx, plan)
        notes = ("permanent entries cannot be unapproved, removed or deleted",) if permanent else ()
        return ChangeResult.of(info, op, ctx.actor.name, summary, notes=notes, cascade=job)

    async def _four_eyes(self, items: Sequence[tuple[EntryKey, EntryRecord]]) -> None:
        """The four-eyes rule (setting ``four_eyes``): refuse (nothing changed) if the
        context's actor added any of these entries (the actor of the entry's creating
        batch; a client's ``(note)`` after a key's name is not another person)."""
        by = self.ctx.actor.name
        mine: list[str] = []
        for start in range(0, len(items), entries.CHUNK):
            chunk = items[start : start + entries.CHUNK]
            batches = await self.ctx.table.batches([r.created_batch for _k, r in chunk])
            for key, record in chunk:
                made = batches.get(record.created_batch)
                if made is not None and _person(made.by) == _person(by):
                    mine.append(key.display)
        if mine:
            more = f" and {len(mine) - 5} more" if len(mine) > 5 else ""
            raise Refused(
                f"four-eyes rule: {by} added {', '.join(mine[:5])}{more}; another person "
                "must approve them permanently"
            )

    async def _approve_all_pending(
        self, info: ListInfo, permanent: bool, confirm: bool, batch: Batch | None
    ) -> WriteSummary:
        table = self.ctx.table
        total = WriteSummary()
        if not (await entries.status_counts(table, info))[Status.PENDING.value]:
            return total
        pending = [
            key
            async for key, record in entries.scan_entries(table, info, prefixes_only=True)
            if record.status is Status.PENDING
        ]
        if permanent and not confirm:
            _confirm(pending)
        if permanent and self.ctx.settings.four_eyes:
            await self._four_eyes(
                [
                    (key, record)
                    async for key, record in entries.scan_entries(table, info)
                    if record.status is Status.PENDING
                ]
            )

        async def approve(chunk: list[EntryKey]) -> None:
            if chunk:
                part = await entries.transition(
                    table, info, "approve", chunk, batch=batch, permanent=permanent, lenient=True
                )
                total.merge(part)

        await approve(pending)
        chunk: list[EntryKey] = []
        async for key, record in entries.scan_entries(table, info, exact_only=True):
            if record.status is Status.PENDING:
                chunk.append(key)
                if len(chunk) >= entries.CHUNK:
                    await approve(chunk)
                    chunk = []
        await approve(chunk)
        return total

    async def unapprove(self, list_name: str, raw_entries: Sequence[str]) -> ChangeResult:
        """Send active entries back to review (pending: no longer enforced). Refused
        (nothing changed) if any is permanent, removed or missing."""
        ctx = self.ctx
        info = await writable_list(ctx, list_name)
        keys = self.parse_entries(raw_entries)
        batch = await ctx.table.new_batch("unapprove", "", DEFAULT_SOURCE, ctx.actor.name)
        summary = await entries.transition(ctx.table, info, "unapprove", keys, batch=batch)
        await record_change(ctx, info, "unapprove", summary, batch=batch.id)
        return ChangeResult.of(info, "unapprove", ctx.actor.name, summary)

    async def list_entries(
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
        ``search`` keeps entries starting with it (``+3361``, or national digits read
        with the default region). ``after`` (digits, is_prefix) starts the page past
        that entry (a cursor that stays right while entries are added or removed
        before it).

        This reads every entry it counts (admin side, never on the call path): with
        ``search``, the matching numbers from the list's number index, filtered in
        Redis (:func:`entries.search_all`: the cost is the matches', not the list's);
        without, the pending or the removed entries alone (``status``/``statuses``
        exactly pending or deleted) from their index (:func:`entries.scan_status`),
        else every entry of the list (seconds at a million). :meth:`page_entries`
        gives pages instead, fast at any size, with or without a search.
        """
        if not 0 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 0 and {MAX_PAGE}")
        if offset < 0:
            raise InvalidInput("--offset must not be negative")
        ctx = self.ctx
        info = await ctx.table.get_list(list_name)
        digits = ""
        if search:
            digits = parse_entry(search.strip().rstrip("*") + "*", ctx.region).digits
        now = ctx.clock()
        selected: list[tuple[EntryKey, EntryRecord]] = []
        total = 0
        wanted = offset + limit
        sort_key = _entry_order
        picked = _statuses(status, statuses)
        code = entries.indexed_code(next(iter(picked))) if picked and len(picked) == 1 else None
        found = (
            entries.search_all(ctx.table, info, digits, picked, now)
            if digits
            else entries.scan_status(ctx.table, info, code)
            if code is not None
            else entries.scan_entries(ctx.table, info)
        )
        async for key, record in found:
            if digits and not key.digits.startswith(digits):
                continue
            if status is not None and record.effective_status(now) is not status:
                continue
            if statuses is not None and record.effective_status(now) not in statuses:
                continue
            total += 1
            if after is not None and (key.digits, key.is_prefix) <= after:
                continue
            # keep the smallest offset+limit seen so far (bounded memory)
            selected.append((key, record))
            if len(selected) > 2 * wanted + 1000:
                selected = heapq.nsmallest(wanted, selected, key=sort_key)
        page = heapq.nsmallest(wanted, selected, key=sort_key)[offset:]
        counts = await entries.status_counts(ctx.table, info, now)
        views = await self._entry_views(page, now)
        return EntryPage(info.name, total, offset, limit, counts, views, status, search)

    async def page_entries(
        self,
        list_name: str,
        *,
        status: Status | None = None,
        search: str = "",
        limit: int = DEFAULT_PAGE,
        after: Position | None = None,
    ) -> EntryCursorPage:
        """A page of a list's entries in storage order (prefixes, then numbers in an
        order fixed by where they are stored) past ``after``, with the position of the
        next page: it stays right while entries change, and costs a few reads whatever
        the list's size. ``status`` and ``search`` (entries starting with it) filter;
        a filtered page may come back short of ``limit`` with a next position. A
        search's pages come in number order (the matching prefixes, then the matching
        numbers digit by digit), read from the list's number index and filtered in
        Redis (:func:`entries.search_numbers`): a page costs the numbers it reads,
        whatever the list's size. Pending and removed entries (``status``, no search)
        are read from their index (a page costs their entries, not the list's)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 1 and {MAX_PAGE}")
        ctx = self.ctx
        info = await ctx.table.get_list(list_name)
        digits = ""
        if search:
            digits = parse_entry(search.strip().rstrip("*") + "*", ctx.region).digits
        now = ctx.clock()

        def keep(key: EntryKey, record: EntryRecord) -> bool:
            if digits and not key.digits.startswith(digits):
                return False
            return status is None or record.effective_status(now) is status

        filtered = bool(digits) or status is not None
        items, position = await entries.page_entries(
            ctx.table,
            info,
            after=after,
            limit=limit,
            keep=keep if filtered else None,
            starting=digits,
            statuses=None if status is None else frozenset({status}),
            now=now,
        )
        counts = await entries.status_counts(ctx.table, info, now)
        return EntryCursorPage(info.name, counts, await self._entry_views(items, now), position)

    async def show_entry(self, list_name: str, entry: str) -> EntryView:
        """One entry of a list (:class:`NotFound` if the list does not hold it, removed
        ones included)."""
        info = await self.ctx.table.get_list(list_name)
        key = self.parse_entries([entry])[0]
        record = (await entries.read_records(self.ctx.table, info, [key]))[0]
        if record is None:
            raise NotFound(f"{key.display} is not in list {info.name!r}")
        return (await self._entry_views([(key, record)], self.ctx.clock()))[0]

    async def statuses(self, list_name: str, raw_entries: Sequence[str]) -> dict[str, str]:
        """The status of each entry now, by entry as written (``missing`` when the list
        does not hold it): what a change would start from (a dry run)."""
        info = await self.ctx.table.get_list(list_name)
        keys = self.parse_entries(raw_entries)
        records = await entries.read_records(self.ctx.table, info, keys)
        now = self.ctx.clock()
        return {
            key.display: record.effective_status(now).value if record else "missing"
            for key, record in zip(keys, records, strict=True)
        }

    async def cascade(
        self, list_name: str, raw_entries: Sequence[str], *, hangup_live: bool | None = None
    ) -> tuple[str, CascadePlan] | None:
        """Queue the cascade of entries made enforced by another way than this service
        (an opt-out recorded by the call path's script): as after :meth:`add`, the plan
        for those of them enforced now on a block list, and its job id; None when there
        is nothing to do."""
        info = await self.ctx.table.get_list(list_name)
        keys = self.parse_entries(raw_entries)
        plan = await plan_for_entries(self.ctx, info, keys, hangup_live, op="opt-out")
        return await queue_plan(self.ctx, plan)

    async def entry_views(
        self, items: Sequence[tuple[EntryKey, EntryRecord]], now: float | None = None
    ) -> tuple[EntryView, ...]:
        """Views of entries read elsewhere (:mod:`callscreen.services.browse`)."""
        return await self._entry_views(items, self.ctx.clock() if now is None else now)

    async def transitions(self, list_name: str, entry: str) -> tuple[TransitionView, ...]:
        """Every transition of one entry of a list, oldest first — added, updated,
        approved, approved permanently, unapproved, removed, restored, expired — each
        with who, when and why, read from the entry itself (its trail of batch
        pointers) and resolved through the batch records: the entry's own history,
        whatever the audit trail kept. :class:`NotFound` if the list does not hold it.
        An entry written before trails existed shows its creation and its last change."""
        info = await self.ctx.table.get_list(list_name)
        key = self.parse_entries([entry])[0]
        record = (await entries.read_records(self.ctx.table, info, [key]))[0]
        if record is None:
            raise NotFound(f"{key.display} is not in list {info.name!r}")
        return (await self.transitions_of([record]))[0]

    async def transitions_of(
        self, records: Sequence[EntryRecord], now: float | None = None
    ) -> list[tuple[TransitionView, ...]]:
        """:meth:`transitions` of records read elsewhere (of any lists), their batch
        records read in one round trip."""
        ids = [bid for record in records for bid in transition_batches(record)]
        batches = await self.ctx.table.batches(ids)
        at = self.ctx.clock() if now is None else now
        return [TransitionView.of(record, batches, at) for record in records]

    async def _entry_views(
        self, items: Sequence[tuple[EntryKey, EntryRecord]], now: float
    ) -> tuple[EntryView, ...]:
        ids = [r.batch for _k, r in items] + [r.removal for _k, r in items if r.removal]
        ids += [r.created for _k, r in items if r.created is not None]
        ids += [r.last_batch for _k, r in items]
        ids += [b for _k, r in items if (b := r.first_enforced_batch) is not None]
        batches = await self.ctx.table.batches(ids)
        views = []
        for key, record in items:
            batch = batches[record.batch]
            created = batches[record.created_batch]
            removal = batches.get(record.removal) if record.removal else None
            last = record.steps[-1]
            changed = batches[last.batch]
            expired = record.effective_status(now) is Status.EXPIRED
            first = record.first_enforced_batch
            enforced = batches[first] if first is not None else None
            views.append(
                EntryView(
                    entry=key.display,
                    kind="prefix" if key.is_prefix else "number",
                    status=record.effective_status(now),
                    reason=batch.reason,
                    source=batch.source,
                    external_id=record.external_id,
                    expires=iso_ms(record.expires),
                    op=batch.op,
                    created_by=created.by,
                    created_at=iso_ms(created.at) if created.at else None,
                    updated_by="" if expired else changed.by,
                    updated_at=iso_ms(record.expires if expired else changed.at or None),
                    removed_by=removal.by if removal else "",
                    removed_at=iso_ms(removal.at) if removal and removal.at else None,
                    removed_reason=removal.reason if removal else "",
                    last_change=Transition.EXPIRED if expired else last.transition,
                    enforced_since=iso_ms(enforced.at) if enforced and enforced.at else None,
                )
            )
        return tuple(views)

    async def purge(self, list_name: str, before: str) -> ChangeResult:
        """Hard-delete the entries soft-deleted before ``before`` (a date, or a
        duration meaning that long ago). Nothing else is touched."""
        ctx = self.ctx
        info = await writable_list(ctx, list_name)
        cutoff = parse_before(before, ctx.clock())
        deleted = [
            (key, record)
            async for key, record in entries.scan_entries(ctx.table, info)
            if record.status is Status.DELETED
        ]
        batches = await ctx.table.batches(
            [record.removal or record.batch for _key, record in deleted]
        )
        doomed = [
            (key, record.removal)
            for key, record in deleted
            if batches[record.removal or record.batch].at < cutoff
        ]
        summary = await entries.purge_records(ctx.table, info, doomed)
        detail = f"removed before {iso(cutoff)}"
        await record_change(ctx, info, "purge", summary, detail=detail)
        return ChangeResult.of(info, "purge", ctx.actor.name, summary, notes=(detail,))


def _entry_order(item: tuple[EntryKey, EntryRecord]) -> tuple[str, bool]:
    return item[0].digits, item[0].is_prefix


def _confirm(keys: Sequence[EntryKey]) -> None:
    confirm_broad(keys)


def _statuses(
    status: Status | None, statuses: frozenset[Status] | None
) -> frozenset[Status] | None:
    """The statuses kept by ``status`` (one) and ``statuses`` (any of) together."""
    if status is None:
        return statuses
    return frozenset({status}) & (statuses if statuses is not None else frozenset({status}))
