"""The audit trail: who changed what, when and why.

Each change is one record in a capped Redis stream: ``{cs}:hist:L`` for the changes
to list ``L`` and its entries, ``{cs}:hist`` for lists created, renamed or deleted
and for campaign assignments. A record names at most :data:`ENTRIES_PER_EVENT`
entries; a bigger change (an import, ``approve --all-pending``) gives its count and
its batch id, and every entry it wrote points at that batch, so the history of one
entry still finds it. Streams are trimmed by age only, never by count: each write
drops the records older than ``history_retention_days`` (``XADD MINID ~``, whole
stream nodes at a time, so a few older records may linger); 0 keeps them for ever.
Every writer of the trail computes that bound with :func:`trim_floor`.

A record's stream id is the service clock's time of the change (``ms-*``), so the
trail's times agree with the batches'; when the clock is behind the stream's last
record (another writer, a clock step back), or on Redis 6 (no ``ms-*`` ids), Redis
picks the id (``*``).

:func:`export` reads every stream at once, deleted lists' included, merged in time
order from a :class:`Cursor` on, in pages (memory bounded by the number of streams
times the page, never by the trail's length).

The entry records themselves carry the batch (who, when, why) of the change that
last set them and of their removal, atomically with the change; the stream is the
longer memory.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, StoreError
from callscreen.core.times import iso_ms
from callscreen.services import store
from callscreen.services.table import Table

ENTRIES_PER_EVENT = 100
_PAGE = 500


def trim_floor(settings: Settings, now: float) -> str | None:
    """The ``MINID`` for a write to the trail at ``now`` (epoch seconds): records
    older than the retention may go. None: no trimming (retention 0, for ever)."""
    days = settings.history_retention_days
    if days <= 0:
        return None
    return str(max(0, int((now - days * 86400) * 1000)))


def trim_args(settings: Settings, now: float) -> list[str]:
    """``MINID ~ <floor>`` for a raw XADD to the trail, or nothing (kept for ever)."""
    floor = trim_floor(settings, now)
    return [] if floor is None else ["MINID", "~", floor]


@dataclass(frozen=True, slots=True)
class Event:
    """One change in the audit trail."""

    id: str  # stream id, "ms-seq"
    at: float  # epoch seconds
    op: str  # create, update, delete, add, remove, restore, approve, ..., assign
    by: str
    via: str = ""  # where the change came from: "cli:USER@HOST", "gateway:...", ...
    list_name: str = ""
    reason: str = ""
    count: int = 0  # how many entries the change wrote
    entries: tuple[str, ...] = ()  # the first ENTRIES_PER_EVENT of them
    batch: int | None = None
    detail: str = ""  # e.g. "action: block -> label", "permanent"

    def to_json(self) -> dict[str, Any]:
        # spelled out rather than dataclasses.asdict: an export writes millions
        return {
            "id": self.id,
            "at": iso_ms(self.at),
            "op": self.op,
            "by": self.by,
            "via": self.via,
            "list_name": self.list_name,
            "reason": self.reason,
            "count": self.count,
            "entries": list(self.entries),
            "batch": self.batch,
            "detail": self.detail,
        }


async def record(
    table: Table,
    list_id: int | None,
    op: str,
    *,
    by: str,
    via: str = "",
    list_name: str = "",
    reason: str = "",
    count: int = 0,
    entries: Sequence[str] = (),
    batch: int | None = None,
    detail: str = "",
) -> str:
    """Append one change to the list's trail (``list_id`` None: the admin trail)."""
    key = table.keys.history(list_id) if list_id is not None else table.keys.admin_history
    fields: dict[str, str] = {"op": op, "by": by}
    if via:
        fields["via"] = via
    if list_name:
        fields["list"] = list_name
    if reason:
        fields["r"] = reason
    if count:
        fields["n"] = str(count)
    if entries:
        fields["e"] = " ".join(entries[:ENTRIES_PER_EVENT])
    if batch is not None:
        fields["b"] = str(batch)
    if detail:
        fields["d"] = detail
    now = table.clock()
    args = trim_args(table.settings, now)
    stamp = f"{int(now * 1000)}-*" if table.stream_time_ids else "*"
    try:
        event_id = await store.wait(
            table.r.execute_command("XADD", key, *args, stamp, *_flat(fields))
        )
    except StoreError as exc:
        if stamp == "*":
            raise
        if "Invalid stream ID" in str(exc):
            table.stream_time_ids = False  # Redis before 7.0 has no "ms-*" ids
        elif "equal or smaller" not in str(exc):
            raise
        event_id = await store.wait(
            table.r.execute_command("XADD", key, *args, "*", *_flat(fields))
        )
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


async def read(
    table: Table,
    list_id: int | None,
    *,
    entry: str | None = None,
    batches: Collection[int] = (),
    limit: int = 50,
    before: str | None = None,
) -> list[Event]:
    """The most recent changes first, at most ``limit`` (``before``: older than that
    event id, for paging).

    With ``entry`` (as written: ``+33123456789`` or ``+33*``) only the changes that
    name it, or that wrote one of ``batches`` (the batches the entry points at).
    """
    key = table.keys.history(list_id) if list_id is not None else table.keys.admin_history
    wanted = {str(b) for b in batches}
    out: list[Event] = []
    upper = "(" + before if before else "+"
    while len(out) < limit:
        count = _PAGE if entry is not None else limit - len(out)
        page = await store.wait(table.r.xrevrange(key, max=upper, min="-", count=count))
        if not page:
            break
        for event_id, fields in page:
            event = _decode(str(event_id), fields)
            if entry is None or entry in event.entries or fields.get("b") in wanted:
                out.append(event)
                if len(out) >= limit:
                    break
        if len(page) < count:
            break
        upper = "(" + str(page[-1][0])
    return out


def _decode(event_id: str, fields: dict[str, str]) -> Event:
    return Event(
        id=event_id,
        at=int(event_id.split("-", 1)[0]) / 1000,
        op=fields.get("op", ""),
        by=fields.get("by", ""),
        via=fields.get("via", ""),
        list_name=fields.get("list", ""),
        reason=fields.get("r", ""),
        count=int(fields.get("n", 0)),
        entries=tuple(fields["e"].split(" ")) if fields.get("e") else (),
        batch=int(fields["b"]) if fields.get("b") else None,
        detail=fields.get("d", ""),
    )


# -- export: every stream, merged in time order -----------------------------------------

_CURSOR = re.compile(r"(\d{1,20})-(\d{1,20})@(\d{1,20})")
EXPORT_PAGE = 500
EXPORT_BUFFER = 100_000  # events held at once across every stream's page, at most


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A place in the whole trail: ``MS-SEQ@L``, the stream id of an event and the list
    whose trail holds it (``L`` = 0: the global trail ``{cs}:hist``). The merged trail
    is ordered by (ms, seq, list), so a cursor names one event and everything after it
    exactly, across every stream."""

    ms: int
    seq: int
    list_id: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}@{self.list_id}"

    @property
    def stream_id(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor as :meth:`__str__` writes it (:class:`InvalidInput` otherwise)."""
        found = _CURSOR.fullmatch(text.strip())
        if found is None:
            raise InvalidInput(
                f"not a history cursor: {text!r} (MS-SEQ@LIST, as the export writes it)"
            )
        return cls(int(found[1]), int(found[2]), int(found[3]))


@dataclass(frozen=True, slots=True)
class TrailEvent:
    """One event of the whole trail: its list (None: the global trail), the event, and
    the cursor that resumes after it."""

    list_id: int | None
    event: Event
    cursor: Cursor

    def to_json(self) -> dict[str, Any]:
        """One JSON line of the export: ``cursor`` and ``list_id`` first, then the
        event as ``history --json`` shows it."""
        return {"cursor": str(self.cursor), "list_id": self.list_id, **self.event.to_json()}


class _Stream:
    """One stream read forward in pages, from ``start`` (an XRANGE bound) to ``end``."""

    def __init__(
        self, table: Table, list_id: int, name: str, start: str, end: str, page: int
    ) -> None:
        self.table = table
        self.list_id = list_id
        self.name = name
        self.key = table.keys.history(list_id) if list_id else table.keys.admin_history
        self.start = start
        self.end = end
        self.page = page
        self.buffer: deque[tuple[Cursor, Event]] = deque()
        self.done = False

    async def head(self) -> tuple[Cursor, Event] | None:
        if not self.buffer and not self.done:
            rows = await store.wait(
                self.table.r.xrange(self.key, min=self.start, max=self.end, count=self.page)
            )
            if len(rows) < self.page:
                self.done = True
            if rows:
                self.start = "(" + str(rows[-1][0])
            for event_id, fields in rows:
                event = _decode(str(event_id), fields)
                if not event.list_name and self.name:
                    event = replace(event, list_name=self.name)
                ms, seq = (int(part) for part in event.id.split("-", 1))
                self.buffer.append((Cursor(ms, seq, self.list_id), event))
        return self.buffer[0] if self.buffer else None


async def trail_streams(table: Table) -> list[tuple[int, str]]:
    """Every stream of the trail as (list id, list name): the global trail (0, "")
    and each list ever created that has a trail, live or deleted (named by its list
    or its tombstone)."""
    keys = table.keys
    last = int(await store.wait(table.r.get(keys.list_seq)) or 0)
    out: list[tuple[int, str]] = [(0, "")]
    for start in range(1, last + 1, 1000):
        ids = range(start, min(last, start + 999) + 1)
        pipe = table.r.pipeline(transaction=False)
        for list_id in ids:
            pipe.exists(keys.history(list_id))
            pipe.hget(keys.list(list_id), "name")
            pipe.hget(keys.tombstone(list_id), "name")
        rows = await store.wait(pipe.execute())
        for n, list_id in enumerate(ids):
            exists, live, dead = rows[3 * n : 3 * n + 3]
            if exists:
                out.append((list_id, live or dead or ""))
    return out


async def export(
    table: Table, after: Cursor | None, until_ms: int | None = None
) -> AsyncIterator[TrailEvent]:
    """Every event of every stream of the trail past ``after`` (all of them: None), up
    to the events of ``until_ms`` included (None: to the end), oldest first, merged by
    (ms, seq, list).

    Each stream is read in pages of at most :data:`EXPORT_PAGE` events, fewer when
    there are many streams, so that at most about :data:`EXPORT_BUFFER` events are held
    at once whatever the trail's length.
    """
    streams = await trail_streams(table)
    page = max(10, min(EXPORT_PAGE, EXPORT_BUFFER // len(streams)))
    end = "+" if until_ms is None else str(until_ms)
    readers = []
    for list_id, name in streams:
        if after is None:
            start = "-"
        elif list_id <= after.list_id:  # the cursor's own event is done in this stream
            start = "(" + after.stream_id
        else:  # ... but not yet in the streams ordered after it at the same id
            start = after.stream_id
        readers.append(_Stream(table, list_id, name, start, end, page))
    heap: list[tuple[Cursor, int]] = []
    for index, reader in enumerate(readers):
        head = await reader.head()
        if head is not None:
            heap.append((head[0], index))
    heapq.heapify(heap)
    while heap:
        cursor, index = heapq.heappop(heap)
        reader = readers[index]
        _, event = reader.buffer.popleft()
        yield TrailEvent(reader.list_id or None, event, cursor)
        head = await reader.head()
        if head is not None:
            heapq.heappush(heap, (head[0], index))
