"""Export a list to CSV, every field, in a form :mod:`callscreen.services.importer` reads back.

Columns (:data:`EXPORT_COLUMNS`)::

    number, kind, status, reason, source, external_id,
    created_by, created_at, updated_by, updated_at,
    removed_by, removed_at, removed_reason, expires, last_change

- ``number`` is ``+33123456789`` or, for a prefix, ``+33*``; ``kind`` is ``number`` or
  ``prefix``.
- ``status`` is the status as enforced now: ``pending``, ``active``, ``permanent``,
  ``deleted`` or ``expired`` (an active entry whose expiry has passed).
- ``reason`` and ``source`` come from the change that gave the entry its reason (its
  batch); ``updated_by``, ``updated_at`` and ``last_change`` say who made the entry's
  last transition, when, and what it was (``added``, ``updated``, ``approved``,
  ``approved-permanently``, ``unapproved``, ``removed``, ``restored``; ``expired``, by
  nobody, at the expiry: :class:`callscreen.core.model.Transition`), an approval
  included; ``created_by`` and ``created_at`` from the change that created it (see
  :attr:`callscreen.core.model.EntryRecord.created_batch`); ``removed_*`` from the
  change that removed it. The importer reads ``updated_by``/``updated_at`` back as the
  reason's who and when, and ignores ``last_change``.
- Times are ISO 8601 in UTC (``2025-11-25T08:30:00.123456Z``); ``expires`` to the
  second.

Rows come out in storage order (by bucket), not sorted: the export streams, in
constant memory, whatever the size of the list.

Spreadsheet formula injection: a free-text cell (reason, source, external id, names)
that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab
or CR) gets a leading ``'`` (:func:`protect`); the importer takes it off again
(:func:`unprotect`), so the round trip is exact. Numbers, statuses and times are never
touched.
"""

from __future__ import annotations

import csv
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from callscreen.core.model import EntryRecord, Status, Transition
from callscreen.services import store
from callscreen.services.bulk import Bulk
from callscreen.services.table import Batch, ListInfo

EXPORT_COLUMNS = (
    "number",
    "kind",
    "status",
    "reason",
    "source",
    "external_id",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
    "removed_by",
    "removed_at",
    "removed_reason",
    "expires",
    "last_change",
)
TEXT_COLUMNS = frozenset(
    {
        "reason",
        "source",
        "external_id",
        "created_by",
        "updated_by",
        "removed_by",
        "removed_reason",
    }
)
PAGE_ENTRIES = 5000  # entries read per round trip (about): bounds the export's memory
MAX_BUCKETS_PER_READ = 1024
BATCH_CACHE = 4096  # batch records kept while exporting (an LRU: memory stays flat)

# A cell a spreadsheet would evaluate; the quote-run makes the escape reversible:
# a value that already starts with quotes and then a trigger gains one more quote.
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")


def protect(text: str) -> str:
    """``text`` safe for a spreadsheet cell: a leading ``'`` if it could run as a
    formula (``=``, ``+``, ``-``, ``@``, tab or CR first, possibly after quotes)."""
    return "'" + text if _NEEDS_QUOTE.match(text) else text


def unprotect(text: str) -> str:
    """The inverse of :func:`protect`: drop one leading ``'`` put there by it."""
    return text[1:] if _QUOTED.match(text) else text


def format_time(at: float | None, *, seconds: bool = False) -> str:
    """An epoch time as ISO 8601 UTC (``…Z``), empty for None; microseconds unless
    ``seconds``."""
    if at is None:
        return ""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="seconds" if seconds else "microseconds").replace(
        "+00:00", "Z"
    )


@dataclass(slots=True)
class ExportSummary:
    """What an export wrote: rows by status."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class _BatchCache:
    """Batch records by id, read in bulk, the most recent kept in a bounded LRU."""

    def __init__(self, table: Bulk, size: int = BATCH_CACHE) -> None:
        self.table = table
        self.size = size
        self.items: OrderedDict[int, Batch] = OrderedDict()

    def lookup(self, ids: Iterable[int]) -> dict[int, Batch]:
        """The batches of ``ids`` (one page's worth), fetching those not cached."""
        found: dict[int, Batch] = {}
        missing: list[int] = []
        for bid in set(ids):
            batch = self.items.get(bid)
            if batch is None:
                missing.append(bid)
            else:
                self.items.move_to_end(bid)
                found[bid] = batch
        for bid, batch in self.table.batches(missing).items():
            found[bid] = batch
            self.items[bid] = batch
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return found


def export_row(
    display: str, is_prefix: bool, record: EntryRecord, now: float, batches: dict[int, Batch]
) -> list[str]:
    """One CSV row (in :data:`EXPORT_COLUMNS` order) for an entry."""
    batch = batches.get(record.batch)
    created = batches.get(record.created_batch)
    removal = batches.get(record.removal) if record.removal is not None else None
    status = record.effective_status(now)
    last = record.steps[-1]
    changed = batches.get(last.batch)
    if status is Status.EXPIRED:  # no write happened: at its expiry, by nobody
        change, by, at = Transition.EXPIRED.value, "", format_time(record.expires)
    else:
        change = last.transition.value
        by = protect(changed.by) if changed else ""
        at = format_time(changed.at) if changed and changed.at else ""
    return [
        display,
        "prefix" if is_prefix else "number",
        status.value,
        protect(batch.reason) if batch else "",
        protect(batch.source) if batch else "",
        protect(record.external_id),
        protect(created.by) if created else "",
        format_time(created.at) if created and created.at else "",
        by,
        at,
        protect(removal.by) if removal else "",
        format_time(removal.at) if removal and removal.at else "",
        protect(removal.reason) if removal else "",
        format_time(record.expires, seconds=True) if record.expires is not None else "",
        change,
    ]


Page = list[tuple[str, bool, EntryRecord]]


def _pages(table: Bulk, info: ListInfo) -> Iterator[tuple[Page, int]]:
    """The list's entries a page at a time, with how many buckets are done: prefixes
    first, then bucket by bucket (pages of about :data:`PAGE_ENTRIES` entries)."""
    r = table.r
    page: Page = []
    with store.converted():
        for hfield, raw in r.hscan_iter(table.keys.prefixes(info.id), count=1000):
            page.append(("+" + str(hfield) + "*", True, EntryRecord.decode(str(raw))))
            if len(page) >= PAGE_ENTRIES:
                yield page, 0
                page = []
        stored = sum(int(n) for n in r.hvals(table.keys.counts(info.id)))
    if page:
        yield page, 0
    buckets = table.buckets
    per_page = max(1, min(MAX_BUCKETS_PER_READ, PAGE_ENTRIES * buckets // max(stored, 1)))
    for first in range(0, buckets, per_page):
        numbers = range(first, min(first + per_page, buckets))

        def read(numbers: range = numbers) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for bucket in numbers:
                pipe.hgetall(table.keys.exact(info.id, bucket))
            result: list[Any] = pipe.execute()
            return result

        page = []
        for bucket, data in zip(numbers, store.call(read), strict=True):
            for hfield, raw in data.items():
                digits = str(int(hfield) * buckets + bucket)
                page.append(("+" + digits, False, EntryRecord.decode(str(raw))))
        yield page, numbers.stop


def export_list(
    table: Bulk,
    info: ListInfo,
    out: IO[str],
    *,
    statuses: frozenset[Status] | None = None,
    now: float,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write every entry of ``info`` (or those whose status, as enforced at ``now``, is
    in ``statuses``) to ``out`` as CSV with a header row. ``progress(done, total)`` is
    called as the scan advances, in buckets of the list's storage."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    cache = _BatchCache(table)
    summary = ExportSummary()
    total = table.buckets
    for page, done in _pages(table, info):
        chosen = [
            item for item in page if statuses is None or item[2].effective_status(now) in statuses
        ]
        ids: list[int] = []
        for _, _, record in chosen:
            ids.append(record.batch)
            ids.append(record.last_batch)
            if record.created is not None:
                ids.append(record.created)
            if record.removal is not None:
                ids.append(record.removal)
        batches = cache.lookup(ids)
        for display, is_prefix, record in chosen:
            row = export_row(display, is_prefix, record, now, batches)
            writer.writerow(row)
            summary.rows += 1
            summary.by_status[row[2]] = summary.by_status.get(row[2], 0) + 1
        if progress is not None:
            progress(done, total)
    return summary
