"""Pages of a list's entries in storage order, for screens: fast whatever the list's size.

:meth:`callscreen.services.approvals.EntryService.list_entries` sorts (it reads the whole
list for every page: seconds at a million entries). A screen needs the next 50 entries
of a status now, so this pages the list as it is stored, with
:func:`callscreen.services.entries.page_entries` — prefixes first, then the exact
numbers bucket by bucket, each bucket's numbers in field order — and stops as soon as
the page is full. The cursor (:class:`Cursor`, the text of an
:data:`~callscreen.services.entries.Position` for a URL) is where the page ended (a
bucket and a field), so it stays right while entries are added or removed elsewhere.
The number of entries matching comes from the list's status counts, not from a scan.
What this adds to ``page_entries``: the filters of the console's list page (batch,
source, added between; :class:`Filter`), the count, and the first read sized by the
share of entries with the statuses asked for. The pending or the removed entries
alone (the "For review" tab) are read from their index by ``page_entries``, past the
prefixes, not from the list's buckets. A search (:func:`search`) reads the list's
number index instead: its pages come in number order, its cursor is the last number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callscreen.core.errors import InvalidInput
from callscreen.core.model import EntryRecord, Status
from callscreen.core.numbers import EntryKey
from callscreen.services import entries, store
from callscreen.services.table import ListInfo, Table

MAX_BUCKETS_PER_READ = 1024  # the first read of a page at most
PREFIX_BUCKET = -1


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: bucket ``-1`` is the prefixes (field: the prefix digits),
    ``-2`` (:data:`entries.NUMBER_ORDER`, a search's pages) the exact numbers in number
    order (field: the last number, its digits; -1: from the first), else an
    exact-number bucket (field: the number's field in it)."""

    bucket: int
    field: int

    def encode(self) -> str:
        return f"{self.bucket}.{self.field}"

    @classmethod
    def decode(cls, raw: str) -> Cursor | None:
        if not raw:
            return None
        try:
            bucket, field = raw.split(".", 1)
            return cls(int(bucket), int(field))
        except ValueError:
            raise InvalidInput("not a page cursor") from None

    def position(self) -> entries.Position:
        """The same place as a :data:`entries.Position`."""
        if self.bucket == PREFIX_BUCKET:
            return PREFIX_BUCKET, str(self.field)
        # E.164 digits never start with 0, so a number's digits survive int()
        return self.bucket, str(self.field) if self.field >= 0 else None

    @classmethod
    def of(cls, position: entries.Position) -> Cursor:
        """The cursor of an :data:`entries.Position` (a bucket from its start: field -1)."""
        loc, after = position
        return cls(loc, int(after) if after is not None else -1)


@dataclass(frozen=True, slots=True)
class Filter:
    """What a page keeps besides the status: entries of one batch (the change that
    created them or last set them), whose last change came from ``source`` (exact,
    ``import:FILE``, ``api``, ...), or created between two times (epoch seconds)."""

    batch: int | None = None
    source: str = ""
    added_from: float | None = None
    added_to: float | None = None

    @property
    def empty(self) -> bool:
        return (
            self.batch is None
            and not self.source
            and self.added_from is None
            and self.added_to is None
        )

    def keeps(self, record: EntryRecord, batches: Mapping[int, Any]) -> bool:
        """Whether ``record`` passes: ``batches`` holds the batch records (``source``,
        ``at``) of its last change and of its creation, as far as the filter needs them
        (a missing one fails a source filter and reads as created at 0)."""
        if self.batch is not None and self.batch not in (record.batch, record.created_batch):
            return False
        if self.source:
            last = batches.get(record.batch)
            if last is None or last.source != self.source:
                return False
        if self.added_from is not None or self.added_to is not None:
            made = batches.get(record.created_batch)
            when = made.at if made is not None else 0.0
            if self.added_from is not None and when < self.added_from:
                return False
            if self.added_to is not None and when >= self.added_to:
                return False
        return True


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """A page of entries in storage order, the cursor of the next one (None: the last
    page), and how many entries have these statuses."""

    items: tuple[tuple[EntryKey, EntryRecord], ...]
    next: Cursor | None
    total: int | None  # None: not known without a scan (a filter besides the status)


async def browse(
    table: Table,
    info: ListInfo,
    statuses: frozenset[Status],
    limit: int,
    after: Cursor | None = None,
    now: float | None = None,
    keep: Filter = Filter(),
) -> BrowsePage:
    """Up to ``limit`` entries whose status (as enforced at ``now``) is in ``statuses``,
    and that ``keep`` keeps, after ``after``: :func:`entries.page_entries`, read until
    the page is full or the list is done, its first read sized by the share of the
    list's entries these statuses hold (pending or removed entries alone: their index,
    see :func:`entries.page_entries`)."""
    at = table.clock() if now is None else now
    counts = await entries.status_counts(table, info, at)
    total = sum(counts.get(s.value, 0) for s in statuses)
    if total == 0 or limit <= 0:
        return BrowsePage((), None, total)
    buckets = await table.buckets()
    stored = max(1, sum(counts.values()))
    share = max(total / stored, 1 / stored)
    first = int(min(MAX_BUCKETS_PER_READ, max(1, 1.5 * limit * buckets / stored / share)))
    batch_cache: dict[int, Any] = {}

    def kept(_key: EntryKey, record: EntryRecord) -> bool:
        return keep.keeps(record, batch_cache)

    async def load_batches(records: Sequence[EntryRecord]) -> None:
        wanted = {r.batch for r in records} | {r.created_batch for r in records}
        missing = [b for b in wanted if b not in batch_cache]
        if missing:
            batch_cache.update(await table.batches(missing))

    needs_batches = bool(keep.source) or keep.added_from is not None or keep.added_to is not None
    items, position = await entries.page_entries(
        table,
        info,
        after=after.position() if after is not None else None,
        limit=limit,
        keep=None if keep.empty else kept,
        max_buckets=buckets,  # until the page is full: a screen shows full pages
        statuses=statuses,
        now=at,
        prepare=load_batches if needs_batches else None,
        first_read=first,
    )
    return BrowsePage(
        tuple(items),
        Cursor.of(position) if position is not None else None,
        total if keep.empty else None,
    )


async def search(
    table: Table,
    info: ListInfo,
    starting: str,
    statuses: frozenset[Status],
    limit: int,
    after: Cursor | None = None,
    now: float | None = None,
) -> BrowsePage:
    """Up to ``limit`` entries starting with ``starting`` (digits) whose status is in
    ``statuses``, past ``after``: the matching prefixes by digits, then the matching
    numbers in number order, read from the list's number index and filtered in Redis
    (:func:`entries.search_numbers`): a page costs the numbers it reads, whether many
    entries match or few, and at most :data:`entries.SEARCH_PAGE_READ` of them (a
    status that few of many matches have: a short page with a cursor to go on from).
    The total is not known without reading every match (:func:`count_matching`)."""
    items, position = await entries.page_entries(
        table,
        info,
        after=after.position() if after is not None else None,
        limit=limit,
        starting=starting,
        statuses=statuses,
        now=now,
    )
    return BrowsePage(tuple(items), Cursor.of(position) if position else None, None)


async def count_matching(
    table: Table, info: ListInfo, starting: str, statuses: frozenset[Status], now: float
) -> int:
    """How many entries start with ``starting`` with a status in ``statuses``: the
    matching prefixes, and every number that starts with it read from the number index
    and counted in Redis (:func:`entries.count_numbers`: its cost grows with the
    numbers that start with it, not with the list)."""
    raw: dict[str, str] = await store.wait(table.r.hgetall(table.keys.prefixes(info.id)))
    prefixes = sum(
        1
        for digits, value in raw.items()
        if digits.startswith(starting)
        and EntryRecord.decode(value).effective_status(now) in statuses
    )
    return prefixes + await entries.count_numbers(table, info, starting, statuses, now)
