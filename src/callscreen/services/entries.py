"""Entries of a list: exact numbers and prefixes, with their compact records.

Every write goes through one Lua script (``entries.lua``), so that each change is
atomic and the list's bookkeeping stays exact:

- ``{cs}:cnt:L`` counts the entries by *stored* status: ``p`` pending, ``a`` active,
  ``P`` permanent, ``d`` deleted (soft-deleted). Every write adjusts it in the same
  script call; nothing else may write entry records.
- ``{cs}:x:L`` indexes the active entries that carry an expiry (score: the expiry,
  epoch seconds; member: where the entry lives, ``BUCKET:FIELD`` for an exact number
  and ``p:DIGITS`` for a prefix — see :func:`expiry_member`). An expired entry is
  still stored as ``a``: expiry is enforced at lookup time, so *expired* = members
  of the index with a score at or before now, and *active* = ``a`` minus expired. No
  job has to run for an entry to stop matching. The rule for every writer: after
  writing a record, ``ZADD`` the member if the new record is ``a`` with an expiry,
  else ``ZREM`` it if the old one was.
- ``{cs}:st:L:p`` and ``{cs}:st:L:d`` index the pending and the removed entries (same
  members, score: the entry's place in storage order,
  :func:`~callscreen.schema.keys.storage_score`), so that a page of one of those
  statuses (:func:`page_entries` with ``stored_status``, the
  console's "For review") reads that index, not the whole list. ``record.lua``'s
  ``rec_index`` keeps them, called by both writers on every write.

- ``{cs}:nd:L:S`` and ``{cs}:nx:L:S:LOW`` index, for each stored status S, the numbers
  of the exact entries stored with it in digit order (a directory of chunks of at most
  :data:`~callscreen.schema.keys.NUMBER_CHUNK` numbers), so that a search by the start
  of a number (:func:`page_entries` with ``starting``, :func:`search_numbers`) reads
  the matching numbers only. ``record.lua``'s ``rec_numbers``, called by ``rec_index``,
  keeps them on every write; :func:`build_number_index` builds them (the migration).

Writers outside this module (the importer) use :func:`upsert_records` and
:func:`entry_location`; they never write records themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from callscreen.core.errors import NotFound, Refused
from callscreen.core.model import EntryRecord, Status
from callscreen.core.numbers import EntryKey
from callscreen.schema.keys import (
    INDEXED_STATUSES,
    NUMBER_CHUNK,
    ORDER_SPAN,
    Keys,
    storage_score,
)
from callscreen.schema.scripts import ENTRIES, SEARCH
from callscreen.services import store
from callscreen.services.table import Batch, ListInfo, Table

ENTRIES_LUA = ENTRIES.source
CHUNK = 1000  # entries per script call: bounds how long one call holds Redis
SAMPLE = 100  # changed entries a summary keeps by name (for the audit trail)
OUTCOMES = 10_000  # entries a summary gives with their outcome (an API bulk add names each)
SCAN_COUNT = 1000

STATUS_CODES = {"p": Status.PENDING, "a": Status.ACTIVE, "P": Status.PERMANENT, "d": Status.DELETED}

# what the script reports when it refuses a whole change
_WHY = {
    "missing": "not in the list",
    "permanent": "permanently approved (cannot be unapproved, removed or deleted)",
    "deleted": "removed (restore it first)",
}


def entry_location(keys: Keys, buckets: int, list_id: int, key: EntryKey) -> tuple[str, str]:
    """The hash key and field that hold ``key`` in list ``list_id`` (``buckets``: the
    table's :meth:`~callscreen.services.table.Table.buckets`)."""
    if key.is_prefix:
        return keys.prefixes(list_id), key.digits
    number = int(key.digits)
    return keys.exact(list_id, number % buckets), str(number // buckets)


def expiry_member(buckets: int, key: EntryKey) -> str:
    """The entry's member in the list's expiry index: ``BUCKET:FIELD`` or ``p:DIGITS``."""
    if key.is_prefix:
        return "p:" + key.digits
    number = int(key.digits)
    return f"{number % buckets}:{number // buckets}"


def _groups(keys: Keys, buckets: int, info: ListInfo, key: EntryKey) -> list[str]:
    """The script's first three arguments for one entry: hash key, field, member."""
    hkey, hfield = entry_location(keys, buckets, info.id, key)
    return [hkey, hfield, expiry_member(buckets, key)]


@dataclass(slots=True)
class WriteSummary:
    """What a change did: how many entries had each outcome (``added``, ``updated``,
    ``restored``, ``unchanged``, ``permanent-unchanged``, ``skipped``, ``removed``,
    ``approved``, ``unapproved``, ``purged``), and the first :data:`SAMPLE` changed
    entries."""

    counts: Counter[str] = field(default_factory=Counter)
    sample: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # entry -> outcome, small changes

    def __getitem__(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def changed(self) -> int:
        """How many entries the change wrote."""
        return sum(n for outcome, n in self.counts.items() if outcome not in _NO_CHANGE)

    def merge(self, other: WriteSummary) -> None:
        """Add ``other``'s outcomes to these."""
        self.counts.update(other.counts)
        room = OUTCOMES - len(self.outcomes)
        self.outcomes.update(list(other.outcomes.items())[: max(room, 0)])
        self.sample.extend(other.sample[: max(SAMPLE - len(self.sample), 0)])

    def note(self, entry: str, outcome: str) -> None:
        self.counts[outcome] += 1
        if len(self.outcomes) < OUTCOMES:
            self.outcomes[entry] = outcome
        if outcome not in _NO_CHANGE and len(self.sample) < SAMPLE:
            self.sample.append(entry)


#: the outcome of an add (upsert) for a permanent entry: frozen, nothing written
PERMANENT_UNCHANGED = "permanent-unchanged"
#: outcomes that wrote nothing
NO_CHANGE = frozenset({"unchanged", "skipped", PERMANENT_UNCHANGED})
_NO_CHANGE = NO_CHANGE


class _Writer:
    """Runs the entries script over chunks of one list's entries."""

    def __init__(self, table: Table, info: ListInfo, buckets: int) -> None:
        self.table = table
        self.info = info
        self.buckets = buckets
        self.keys = [table.keys.counts(info.id), table.keys.expiring(info.id)]

    def groups(self, key: EntryKey) -> list[str]:
        return _groups(self.table.keys, self.buckets, self.info, key)

    async def run(self, op: str, batch: str, flags: str, groups: list[str]) -> list[str]:
        args = [op, self.table.keys.base, batch, flags, *groups]
        reply: Any = await store.run_script(self.table.r, ENTRIES, self.keys, args)
        return [item.decode() if isinstance(item, bytes) else str(item) for item in reply]


def _refusal(
    info: ListInfo, reply: Sequence[str], names: dict[str, str] | None = None
) -> Exception:
    """The error for a ``refused`` reply (entries named by ``names``, member ->
    entry): Refused if a rule forbids the change, NotFound if entries are missing."""
    pairs = list(zip(reply[1::2], reply[2::2], strict=True))
    by_why: dict[str, list[str]] = {}
    for member, why in pairs:
        entry = names.get(member, member) if names else member
        by_why.setdefault(why, []).append(entry)
    parts = []
    for why, entries in by_why.items():
        shown = ", ".join(entries[:10])
        if len(entries) > 10:
            shown += f" and {len(entries) - 10} more"
        parts.append(f"{shown}: {_WHY.get(why, why)}")
    message = f"nothing changed in list {info.name!r}; " + "; ".join(parts)
    if set(by_why) == {"missing"}:
        return NotFound(message)
    return Refused(message)


async def upsert_records(
    table: Table,
    info: ListInfo,
    items: Iterable[tuple[EntryKey, EntryRecord]],
    *,
    restore_deleted: bool = True,
    never_demote: bool = False,
    keep_unset: bool = False,
) -> WriteSummary:
    """Write entries with their records, chunk by chunk (constant memory).

    - a new entry is ``added`` as given (a permanent one without expiry);
    - a soft-deleted one is ``restored`` with the new record if ``restore_deleted``,
      else ``skipped`` and left as it is;
    - a permanent one is frozen: nothing of it is written (status, reason, expiry,
      external id), and its outcome is ``permanent-unchanged``;
    - an existing entry keeps its creation batch (the record's ``created``, stored
      only when it is not the entry's batch), whatever the new record says;
    - with ``never_demote`` the status never goes down (pending < active < permanent):
      importing a pending copy of an active entry keeps it active;
    - with ``keep_unset`` an empty expiry or external id keeps the stored one, and a
      record whose batch has no reason keeps the stored batch;
    - if nothing would change (same status, expiry, external id, and a batch with the
      same reason and source), the entry is ``unchanged`` and not written, so that
      writing the same data twice is idempotent.

    Keys repeated within one chunk are written once (the last record wins); callers
    streaming huge inputs should merge duplicates themselves if order matters.
    """
    writer = _Writer(table, info, await table.buckets())
    flags = ("r" if restore_deleted else "") + ("m" if never_demote else "")
    flags += "k" if keep_unset else ""
    summary = WriteSummary()
    chunk: dict[EntryKey, EntryRecord] = {}

    async def flush() -> None:
        if not chunk:
            return
        groups: list[str] = []
        for key, record in chunk.items():
            groups += [*writer.groups(key), record.encode()]
        reply = await writer.run("upsert", "", flags, groups)
        for key, outcome in zip(chunk, reply[1:], strict=True):
            summary.note(key.display, outcome)
        chunk.clear()

    for key, record in items:
        chunk.pop(key, None)
        chunk[key] = record
        if len(chunk) >= CHUNK:
            await flush()
    await flush()
    return summary


async def add_entries(
    table: Table,
    info: ListInfo,
    keys: Iterable[EntryKey],
    batch: Batch,
    *,
    status: Status = Status.ACTIVE,
    expires: int | None = None,
    external_id: str = "",
) -> WriteSummary:
    """Add entries as an admin does: new ones are added with ``status``, existing ones
    updated (a permanent one is left as it is: ``permanent-unchanged``; a removed one is
    restored); an expiry, external
    id or reason not given keeps the stored one (for the reason: the entry keeps
    pointing at its old batch)."""
    record = EntryRecord(status, batch.id, expires, None, external_id)
    return await upsert_records(
        table, info, ((key, record) for key in keys), restore_deleted=True, keep_unset=True
    )


async def transition(
    table: Table,
    info: ListInfo,
    op: str,
    keys: Sequence[EntryKey],
    *,
    batch: Batch | None = None,
    permanent: bool = False,
    lenient: bool = False,
) -> WriteSummary:
    """Move entries between statuses: ``remove`` (soft delete, ``batch`` is the
    removal), ``restore``, ``approve`` (``permanent`` for permanently; it clears the
    expiry), ``unapprove``. ``batch`` is the change's record (who, when, why): every
    entry changed gets an item of its trail pointing at it (without one, none is
    written — the services always give one).

    All or nothing: if any entry is missing, permanent (remove, unapprove) or removed
    (approve, unapprove), nothing is changed and :class:`Refused` (or
    :class:`NotFound` when entries are only missing) says which and why. With
    ``lenient`` those entries are ``skipped`` instead. Entries already in the target
    state are ``unchanged``.
    """
    if op not in ("remove", "restore", "approve", "unapprove"):
        raise ValueError(f"unknown transition {op!r}")
    unique = list(dict.fromkeys(keys))
    writer = _Writer(table, info, await table.buckets())
    flags = ("P" if permanent else "") + ("l" if lenient else "")
    batch_id = str(batch.id) if batch is not None else ""
    if len(unique) > CHUNK and not lenient:
        await precheck(table, info, op, unique)
    summary = WriteSummary()
    for start in range(0, len(unique), CHUNK):
        part = unique[start : start + CHUNK]
        groups: list[str] = []
        names: dict[str, str] = {}
        for key in part:
            group = writer.groups(key)
            names[group[2]] = key.display
            groups += group
        reply = await writer.run(op, batch_id, flags, groups)
        if reply[0] == "refused":
            raise _refusal(info, reply, names)
        for key, outcome in zip(part, reply[1:], strict=True):
            summary.note(key.display, outcome)
    return summary


async def mark_never_enforced(
    table: Table, info: ListInfo, keys: Sequence[EntryKey]
) -> WriteSummary:
    """Schema 3 (:mod:`callscreen.services.migrations`): mark pending entries written
    before entries kept a trail as never enforced yet (``marked``); any other entry, or
    one changed meanwhile, is ``skipped``. Idempotent."""
    writer = _Writer(table, info, await table.buckets())
    summary = WriteSummary()
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        groups = [item for key in part for item in writer.groups(key)]
        reply = await writer.run("mark", "", "l", groups)
        for key, outcome in zip(part, reply[1:], strict=True):
            summary.note(key.display, outcome)
    return summary


async def precheck(table: Table, info: ListInfo, op: str, keys: Sequence[EntryKey]) -> None:
    """Raise what :func:`transition` would refuse, without writing anything."""
    refused: list[str] = ["refused"]
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        for key, record in zip(part, await read_records(table, info, part), strict=True):
            why = ""
            if record is None:
                why = "missing"
            elif record.status is Status.PERMANENT and op in ("remove", "unapprove"):
                why = "permanent"
            elif record.status is Status.DELETED and op in ("approve", "unapprove"):
                why = "deleted"
            if why:
                refused += [key.display, why]
    if len(refused) > 1:
        raise _refusal(info, refused)


async def purge_records(
    table: Table, info: ListInfo, items: Iterable[tuple[EntryKey, int | None]]
) -> WriteSummary:
    """Hard-delete soft-deleted entries, each only if it still carries the removal
    batch given with it (an entry restored and removed again meanwhile is kept)."""
    writer = _Writer(table, info, await table.buckets())
    summary = WriteSummary()
    chunk: list[tuple[EntryKey, int | None]] = []

    async def flush() -> None:
        if not chunk:
            return
        groups: list[str] = []
        for key, removal in chunk:
            groups += [*writer.groups(key), "" if removal is None else str(removal)]
        reply = await writer.run("purge", "", "", groups)
        for (key, _removal), outcome in zip(chunk, reply[1:], strict=True):
            summary.note(key.display, outcome)
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            await flush()
    await flush()
    return summary


async def read_records(
    table: Table, info: ListInfo, keys: Sequence[EntryKey]
) -> list[EntryRecord | None]:
    """The stored records of ``keys`` in a list (None where absent)."""
    buckets = await table.buckets()
    pipe = table.r.pipeline(transaction=False)
    for key in keys:
        hkey, hfield = entry_location(table.keys, buckets, info.id, key)
        pipe.hget(hkey, hfield)
    raws = await store.wait(pipe.execute()) if keys else []
    return [EntryRecord.decode(str(raw)) if raw else None for raw in raws]


async def scan_entries(
    table: Table, info: ListInfo, *, prefixes_only: bool = False, exact_only: bool = False
) -> AsyncIterator[tuple[EntryKey, EntryRecord]]:
    """Every entry of a list with its record, in no particular order: prefixes first,
    then exact numbers.

    An admin-side scan (HSCAN of the prefixes, SCAN over the list's bucket keys and
    HGETALL of each): it costs time in the size of the list, and is never used by
    screening. Entries changed during the scan may be seen in either state.
    """
    buckets = await table.buckets()
    r = table.r
    with store.converted():
        if not exact_only:
            async for hfield, raw in r.hscan_iter(table.keys.prefixes(info.id), count=SCAN_COUNT):
                yield EntryKey(str(hfield), True), EntryRecord.decode(str(raw))
        if prefixes_only:
            return
        pending: list[str] = []
        async for hkey in r.scan_iter(match=table.keys.exact_pattern(info.id), count=SCAN_COUNT):
            pending.append(str(hkey))
            if len(pending) >= 100:
                for item in await _read_buckets(r, pending, buckets):
                    yield item
                pending = []
        for item in await _read_buckets(r, pending, buckets):
            yield item


async def _read_buckets(
    r: Any, hkeys: list[str], buckets: int
) -> list[tuple[EntryKey, EntryRecord]]:
    if not hkeys:
        return []
    pipe = r.pipeline(transaction=False)
    for hkey in hkeys:
        pipe.hgetall(hkey)
    out = []
    for hkey, data in zip(hkeys, await pipe.execute(), strict=True):
        bucket = int(hkey.rsplit(":", 1)[1])
        for hfield, raw in data.items():
            number = int(hfield) * buckets + bucket
            out.append((EntryKey(str(number), False), EntryRecord.decode(str(raw))))
    return out


def member_key(buckets: int, member: str) -> EntryKey:
    """The entry whose member (in the expiry or a status index) is ``member``."""
    if member.startswith("p:"):
        return EntryKey(member[2:], True)
    bucket, hfield = member.split(":")
    return EntryKey(str(int(hfield) * buckets + int(bucket)), False)


def indexed_code(status: Status | None) -> str | None:
    """The stored status code whose index holds exactly the entries of ``status`` (None:
    that status has no index; a listing of it scans the list)."""
    code = {Status.PENDING: "p", Status.DELETED: "d"}.get(status) if status else None
    return code if code in INDEXED_STATUSES else None


async def scan_status(
    table: Table, info: ListInfo, code: str
) -> AsyncIterator[tuple[EntryKey, EntryRecord]]:
    """Every entry of a list stored with status ``code`` (one of
    :data:`~callscreen.schema.keys.INDEXED_STATUSES`), in storage order: its status
    index and one read per entry, not a scan of the list."""
    buckets = await table.buckets()
    index = table.keys.status_index(info.id, code)
    low = "-inf"
    while True:
        members = await store.wait(table.r.zrangebyscore(index, low, "+inf", start=0, num=CHUNK))
        if not members:
            return
        keys = [member_key(buckets, str(m)) for m in members]
        for key, record in zip(keys, await read_records(table, info, keys), strict=True):
            if record is not None and record.status is STATUS_CODES[code]:
                yield key, record
        if len(members) < CHUNK:
            return
        low = f"({storage_score(buckets, str(members[-1]))}"


async def status_counts(table: Table, info: ListInfo, now: float | None = None) -> dict[str, int]:
    """Entry counts of a list by status, every status named (``expired`` included).

    ``active`` counts only the active entries that have not expired yet.
    """
    return (await all_status_counts(table, [info], now))[0]


def counts_from(raw: dict[str, str], expired: int) -> dict[str, int]:
    """Named counts from the stored ``p/a/P/d`` counts and the number expired."""
    stored = {code: int(raw.get(code, 0)) for code in STATUS_CODES}
    expired = min(expired, stored["a"])  # a stale index never makes a count negative
    return {
        Status.PENDING.value: stored["p"],
        Status.ACTIVE.value: stored["a"] - expired,
        Status.PERMANENT.value: stored["P"],
        Status.DELETED.value: stored["d"],
        Status.EXPIRED.value: expired,
    }


async def all_status_counts(
    table: Table, infos: Sequence[ListInfo], now: float | None = None
) -> list[dict[str, int]]:
    """:func:`status_counts` of many lists in one round trip."""
    if not infos:
        return []
    at = table.clock() if now is None else now
    pipe = table.r.pipeline(transaction=False)
    for info in infos:
        pipe.hgetall(table.keys.counts(info.id))
        pipe.zcount(table.keys.expiring(info.id), "-inf", at)
    raws = await store.wait(pipe.execute())
    return [counts_from(raws[i], int(raws[i + 1])) for i in range(0, len(raws), 2)]


#: Where a page of entries ends: ``(loc, after)``, ``loc`` -1 for the prefixes (then
#: ``after`` the last prefix's digits) or an exact-entry bucket (then ``after`` the last
#: field read in it; None: the bucket is still to be read from its start).
Position = tuple[int, str | None]

PAGE_FIRST_BUCKETS = 4  # buckets read in the first round trip of a page; doubles after
PAGE_MAX_BUCKETS = 4096  # buckets one page may read: a filtered page may come back short
#: a list this small is read whole for a page (its buckets are mostly empty: walking
#: them would give short pages); the order and the positions are the same
PAGE_SMALL_LIST = 20_000


#: what a page's caller may do with a chunk's records before ``keep`` sees them (read
#: the batches a filter on source or date needs, in one round trip)
Prepare = Callable[[Sequence[EntryRecord]], Awaitable[None]]
#: an entry with the position a page that ends on it goes on from
_Placed = tuple[EntryKey, EntryRecord, Position]


async def page_entries(
    table: Table,
    info: ListInfo,
    *,
    after: Position | None,
    limit: int,
    keep: Callable[[EntryKey, EntryRecord], bool] | None = None,
    max_buckets: int = PAGE_MAX_BUCKETS,
    starting: str = "",
    statuses: frozenset[Status] | None = None,
    now: float | None = None,
    prepare: Prepare | None = None,
    first_read: int = PAGE_FIRST_BUCKETS,
    stored_status: str | None = None,
) -> tuple[list[tuple[EntryKey, EntryRecord]], Position | None]:
    """Up to ``limit`` entries (those ``keep`` accepts) in storage order — prefixes by
    digits, then exact numbers bucket by bucket, by field within a bucket — from past
    ``after``, and the position to go on from (None: the list is done).

    The order is fixed by where entries are stored, so a position stays right while
    entries are added or removed: no index is needed and a page costs a few hash
    reads, not a scan of the list. With ``keep`` rejecting most entries a page stops
    after ``max_buckets`` buckets, possibly short of ``limit``, with a position to go
    on from. The first round trip reads ``first_read`` buckets, each next one twice
    as many (up to :data:`PAGE_MAX_STEP`): a caller that knows how sparse its entries
    are sizes the first read to fill the page at once.

    ``starting`` (digits) keeps the entries that start with them and ``statuses`` those
    with these statuses at ``now``. A search (``starting`` given) reads another order:
    the matching prefixes by digits, then the matching exact numbers in number order
    (digit by digit), from the list's number index (:func:`search_numbers`, filtered in
    Redis by ``search.lua``), with positions ``(NUMBER_ORDER, digits)``; a page costs
    the numbers it reads, not the list's size, and reads at most
    :data:`SEARCH_PAGE_READ` of them (a rare status among many matches: a short page
    with a position to go on from). ``prepare`` is awaited with the records those
    leave, a chunk at a time, before ``keep`` sees them.

    ``stored_status`` (a code of :data:`~callscreen.schema.keys.INDEXED_STATUSES`), or
    ``statuses`` that are exactly one status with an index (:func:`indexed_code`:
    pending, removed), reads only the entries stored with that status, from their
    index, in the same order and with the same positions: a page costs its own
    entries, whatever the list's size. ``starting``, ``prepare`` and ``keep`` still
    filter them, in Python (a rare ``starting`` among many such entries makes the page
    stop after :data:`PAGE_MAX_INDEXED` of them, possibly short, with a position)."""
    at = table.clock() if now is None else now
    pick = _Picker(limit, keep, prepare, starting, statuses, at)
    if starting:
        return await _page_search(table, info, after, pick, starting, statuses, at)
    if stored_status is None and statuses is not None and len(statuses) == 1:
        stored_status = indexed_code(next(iter(statuses)))
    if stored_status is not None:
        return await _page_indexed(table, info, stored_status, after, pick)
    loc, last = after if after is not None else (-1, None)
    buckets = await table.buckets()
    stored = await store.wait(table.r.hgetall(table.keys.counts(info.id)))
    if sum(int(n) for n in stored.values()) <= PAGE_SMALL_LIST:
        return await _page_small(table, info, (loc, last), pick)
    if loc == -1:
        raw: dict[str, str] = await store.wait(table.r.hgetall(table.keys.prefixes(info.id)))
        ended = await pick.take(
            [
                (EntryKey(digits, True), EntryRecord.decode(raw[digits]), (-1, digits))
                for digits in sorted(raw)
                if last is None or digits > last
            ]
        )
        if ended is not None:
            return pick.out, ended
        loc, last = 0, None
    after_field = int(last) if last is not None else -1
    read, step = 0, max(1, first_read)
    while loc < buckets and read < max_buckets:
        chunk = range(loc, min(loc + step, buckets, loc + max_buckets - read))
        pipe = table.r.pipeline(transaction=False)
        for bucket in chunk:
            pipe.hgetall(table.keys.exact(info.id, bucket))
        fetched: list[Any] = await store.wait(pipe.execute())
        placed: list[_Placed] = []
        for bucket, data in zip(chunk, fetched, strict=True):
            floor = after_field if bucket == loc else -1
            for hfield in sorted(int(f) for f in data):
                if hfield > floor:
                    key = EntryKey(str(hfield * buckets + bucket), False)
                    record = EntryRecord.decode(data[str(hfield)])
                    placed.append((key, record, (bucket, str(hfield))))
        ended = await pick.take(placed)
        if ended is not None:
            return pick.out, ended
        read += len(chunk)
        loc, after_field = chunk.stop, -1
        step = min(step * 2, max(PAGE_MAX_STEP, first_read))
    return pick.out, ((loc, None) if loc < buckets else None)


PAGE_MAX_STEP = 256  # buckets one round trip of a page reads at most (unless told more)


class _Picker:
    """A page being filled: the entries kept (the filters on number and status, then
    ``prepare``, then ``keep``) up to ``limit``."""

    def __init__(
        self,
        limit: int,
        keep: Callable[[EntryKey, EntryRecord], bool] | None,
        prepare: Prepare | None,
        starting: str,
        statuses: frozenset[Status] | None,
        now: float,
    ) -> None:
        self.limit = limit
        self.keep = keep
        self.prepare = prepare
        self.first = _also(None, starting, statuses, now) if starting or statuses else None
        self.out: list[tuple[EntryKey, EntryRecord]] = []

    async def take(self, placed: Sequence[_Placed]) -> Position | None:
        """Add the entries kept, in order; the position of the last one added if the
        page is full with it."""
        first, keep = self.first, self.keep
        if first is not None:
            placed = [p for p in placed if first(p[0], p[1])]
        if self.prepare is not None and placed:
            await self.prepare([record for _key, record, _where in placed])
        for key, record, where in placed:
            if keep is None or keep(key, record):
                self.out.append((key, record))
                if len(self.out) >= self.limit:
                    return where
        return None


def _also(
    keep: Callable[[EntryKey, EntryRecord], bool] | None,
    starting: str,
    statuses: frozenset[Status] | None,
    now: float,
) -> Callable[[EntryKey, EntryRecord], bool]:
    """``keep`` and the entries starting with ``starting`` whose status is in ``statuses``."""

    def kept(key: EntryKey, record: EntryRecord) -> bool:
        if starting and not key.digits.startswith(starting):
            return False
        if statuses is not None and record.effective_status(now) not in statuses:
            return False
        return keep is None or keep(key, record)

    return kept


#: numbers of the number index one script call of a search reads at most (and the
#: record of each): a few milliseconds of Redis, so the call path, which shares Redis,
#: never waits long behind a search
SEARCH_CHUNK = 2048
#: numbers one page of a search reads at most: a search that keeps few of the numbers
#: it reads (a rare status among many numbers that match) comes back short, with a
#: position to go on from, rather than read on for seconds
SEARCH_PAGE_READ = 32_768
#: the ``loc`` of a search's position: ``after`` is the last number read (its digits;
#: None: from the first), in number order (see :func:`page_entries`)
NUMBER_ORDER = -2


def status_codes(statuses: frozenset[Status] | None) -> str:
    """The stored codes ``search.lua`` keeps for ``statuses`` (``x``: active, expired)."""
    if statuses is None:
        return ""
    codes = {Status.EXPIRED: "x"} | {status: code for code, status in STATUS_CODES.items()}
    return "".join(sorted(codes[s] for s in statuses))


@dataclass(frozen=True, slots=True)
class Found:
    """What one call of :func:`search_numbers` found: the entries kept (none when only
    counting), the last number read (None: none; a search goes on after it), whether
    the numbers starting with the digits are done, how many it read and how many
    entries it kept."""

    items: list[tuple[EntryKey, EntryRecord]]
    last: str | None
    done: bool
    read: int
    kept: int


def index_filters(statuses: frozenset[Status] | None) -> dict[str, str]:
    """The number indexes a search of ``statuses`` (None: any) reads, by stored status,
    each with the filter ``search.lua`` applies to its records ("": every entry of
    that index; for ``a``, ``a`` or ``x``: the active entries not yet expired, or the
    expired ones)."""
    if statuses is None:
        return dict.fromkeys(STATUS_CODES, "")
    wanted = {code: "" for code, status in STATUS_CODES.items() if status in statuses}
    if (Status.ACTIVE in statuses) != (Status.EXPIRED in statuses):
        wanted["a"] = "a" if Status.ACTIVE in statuses else "x"
    return wanted


async def _search_index(
    table: Table,
    info: ListInfo,
    code: str,
    keep: str,
    starting: str,
    after: str | None,
    limit: int,
    budget: int,
    now: float,
) -> Found:
    """One call of ``search.lua`` over the number index of status ``code``."""
    buckets = await table.buckets()
    reply = await store.run_script(
        table.r,
        SEARCH,
        [table.keys.meta],
        [table.keys.base, info.id, buckets, code, starting, after or "", max(1, budget),
         limit, keep, now],
    )  # fmt: skip
    items = [
        (EntryKey(_text(reply[i]), False), EntryRecord.decode(_text(reply[i + 1])))
        for i in range(4, len(reply), 2)
    ]
    last = _text(reply[0]) or after
    return Found(items, last, int(reply[1]) == 1, int(reply[2]), int(reply[3]))


async def search_numbers(
    table: Table,
    info: ListInfo,
    starting: str,
    *,
    statuses: frozenset[Status] | None = None,
    now: float | None = None,
    after: str | None = None,
    limit: int,
    budget: int = SEARCH_CHUNK,
) -> Found:
    """The exact entries whose number starts with ``starting`` (digits) and whose status
    is in ``statuses`` (None: any), in number order past ``after`` (a number starting
    with ``starting``; None: from the first): up to ``limit`` of them, reading up to
    ``budget`` numbers of each status's number index (``{cs}:nd:L:S``,
    ``{cs}:nx:L:S:LOW``) that ``statuses`` needs, one call of ``search.lua`` each: only
    the numbers that start with ``starting`` and have such a status are read, and only
    the entries kept cross the wire (an expired entry is in the active index: a search
    of active or of expired entries alone reads both kinds). The indexes' entries are
    merged in number order, up to the lowest number any index not done stopped at, so
    that nothing is skipped. A whole number is a direct read instead
    (:func:`read_records`)."""
    if not starting.isdigit() or limit <= 0:
        return Found([], after, True, 0, 0)
    if after is not None and not after.startswith(starting):
        after = None
    at = table.clock() if now is None else now
    found = [
        await _search_index(table, info, code, keep, starting, after, limit, budget, at)
        for code, keep in index_filters(statuses).items()
    ]
    # every index has been read up to its last number (all of it when done): entries
    # past the lowest of those may still lie unread in another index
    frontier = min((f.last for f in found if not f.done and f.last is not None), default=None)
    merged = sorted(
        (item for f in found for item in f.items if frontier is None or item[0].digits <= frontier),
        key=lambda item: item[0].digits,
    )
    read = sum(f.read for f in found)
    if len(merged) >= limit:
        page = merged[:limit]
        return Found(page, page[-1][0].digits, False, read, len(page))
    done = frontier is None and all(f.done for f in found)
    return Found(merged, after if frontier is None and done else frontier, done, read, len(merged))


async def count_numbers(
    table: Table, info: ListInfo, starting: str, statuses: frozenset[Status] | None, now: float
) -> int:
    """How many exact entries start with ``starting`` with a status in ``statuses``: the
    numbers that start with it read from the number index of each status needed,
    counted in Redis, :data:`COUNT_CHUNK` numbers a call (a record is read only to
    tell active from expired)."""
    if not starting.isdigit():
        return 0
    total = 0
    for code, keep in index_filters(statuses).items():
        last: str | None = None
        while True:
            found = await _search_index(
                table, info, code, keep, starting, last, 0, COUNT_CHUNK, now
            )
            total += found.kept
            if found.done:
                break
            last = found.last
    return total


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _page_search(
    table: Table,
    info: ListInfo,
    after: Position | None,
    pick: _Picker,
    starting: str,
    statuses: frozenset[Status] | None,
    now: float,
) -> tuple[list[tuple[EntryKey, EntryRecord]], Position | None]:
    """:func:`page_entries` of a search: the matching prefixes, then the matching exact
    numbers in number order (:func:`search_numbers`, at most :data:`SEARCH_PAGE_READ`
    of them read)."""
    loc, last = after if after is not None else (-1, None)
    if loc == -1:
        raw: dict[str, str] = await store.wait(table.r.hgetall(table.keys.prefixes(info.id)))
        ended = await pick.take(
            [
                (EntryKey(digits, True), EntryRecord.decode(raw[digits]), (-1, digits))
                for digits in sorted(raw)
                if digits.startswith(starting) and (last is None or digits > last)
            ]
        )
        if ended is not None:
            return pick.out, ended
        last = None
    elif loc != NUMBER_ORDER:
        last = None  # a position in storage order (a page of an earlier release): start over
    read = 0
    while True:
        found = await search_numbers(
            table,
            info,
            starting,
            statuses=statuses,
            now=now,
            after=last,
            limit=pick.limit - len(pick.out),
            budget=min(SEARCH_CHUNK, SEARCH_PAGE_READ - read),
        )
        ended = await pick.take(
            [(key, record, (NUMBER_ORDER, key.digits)) for key, record in found.items]
        )
        if ended is not None:
            return pick.out, ended
        if found.done:
            return pick.out, None
        read += found.read
        last = found.last
        if read >= SEARCH_PAGE_READ:
            return pick.out, (NUMBER_ORDER, last)


#: numbers a chunk of the number index gets when it is built whole (by
#: :func:`build_number_index`): room left for adds before a chunk splits
BUILD_FILL = NUMBER_CHUNK * 3 // 4


async def build_number_index(table: Table, info: ListInfo, *, dry_run: bool = False) -> int:
    """Build a list's number indexes (``{cs}:nd:L:S``, ``{cs}:nx:L:S:LOW``, one per
    stored status; ``record.lua``'s ``rec_numbers`` keeps them from then on) from a
    scan of its exact entries, replacing any there were: running it again changes
    nothing. Returns how many numbers they hold. Run with no change to the list under
    way (an entry written during the scan may be missed)."""
    codes = {status: code for code, status in STATUS_CODES.items()}
    numbers: dict[str, list[str]] = {code: [] for code in STATUS_CODES}
    async for key, record in scan_entries(table, info, exact_only=True):
        numbers[codes[record.status]].append(key.digits)
    if dry_run:
        return sum(len(n) for n in numbers.values())
    r, keys = table.r, table.keys
    old: list[str] = []
    with store.converted():
        for pattern in keys.number_patterns(info.id):
            old += [k async for k in r.scan_iter(match=pattern, count=1000)]
    pipe = r.pipeline(transaction=False)
    for start in range(0, len(old), 1000):
        pipe.unlink(*old[start : start + 1000])
    for code, found in numbers.items():
        found.sort()
        lows: dict[str, int] = {}
        for start in range(0, len(found), BUILD_FILL):
            part = found[start : start + BUILD_FILL]
            low = "0" if start == 0 else part[0]  # the first chunk's: no digits sort before it
            lows[low] = 0
            pipe.zadd(keys.number_chunk(info.id, code, low), dict.fromkeys(part, 0))
            if len(pipe) >= 1000:
                await store.wait(pipe.execute())
        if lows:
            pipe.zadd(keys.number_dir(info.id, code), lows)
    await store.wait(pipe.execute())
    return sum(len(n) for n in numbers.values())


#: numbers one call of a count reads at most (no entry crosses the wire)
COUNT_CHUNK = 16_384


async def search_all(
    table: Table, info: ListInfo, starting: str, statuses: frozenset[Status] | None, now: float
) -> AsyncIterator[tuple[EntryKey, EntryRecord]]:
    """Every entry starting with ``starting`` whose status is in ``statuses``: the
    matching prefixes, then :func:`search_numbers` to the end of the range (call by
    call, in Redis: it reads the matching numbers only, and only the entries kept cross
    the wire)."""
    keep = _also(None, starting, statuses, now)
    raw: dict[str, str] = await store.wait(table.r.hgetall(table.keys.prefixes(info.id)))
    for digits, value in raw.items():
        key, record = EntryKey(digits, True), EntryRecord.decode(value)
        if keep(key, record):
            yield key, record
    last: str | None = None
    while True:
        found = await search_numbers(
            table, info, starting, statuses=statuses, now=now, after=last, limit=SEARCH_CHUNK
        )
        for item in found.items:
            yield item
        if found.done:
            return
        last = found.last


#: index members one indexed page may read (a search that rejects most of them makes
#: it come back short, with a position to go on from)
PAGE_MAX_INDEXED = 20_000


def position_of(buckets: int, key: EntryKey) -> Position:
    """Where ``key`` is in storage order, as a page's position."""
    if key.is_prefix:
        return -1, key.digits
    number = int(key.digits)
    return number % buckets, str(number // buckets)


def _score_after(buckets: int, after: Position | None) -> str:
    """The ZRANGEBYSCORE lower bound of what comes past ``after`` in a status index."""
    if after is None:
        return "-inf"
    loc, last = after
    if loc == -1:
        return "-inf" if last is None else f"({storage_score(buckets, 'p:' + last)}"
    if last is None:
        return str(loc * (ORDER_SPAN // buckets))
    return f"({storage_score(buckets, f'{loc}:{last}')}"


async def _page_indexed(
    table: Table, info: ListInfo, code: str, after: Position | None, pick: _Picker
) -> tuple[list[tuple[EntryKey, EntryRecord]], Position | None]:
    """:func:`page_entries` of the entries stored with status ``code``, over its index
    (``pick`` filters them further and fills the page)."""
    buckets = await table.buckets()
    index = table.keys.status_index(info.id, code)
    low = _score_after(buckets, after)
    read, step = 0, max(1, pick.limit)
    keys: list[EntryKey] = []
    while read < PAGE_MAX_INDEXED:
        members = await store.wait(table.r.zrangebyscore(index, low, "+inf", start=0, num=step))
        keys = [member_key(buckets, str(m)) for m in members]
        read += len(keys)
        placed: list[_Placed] = [
            (key, record, position_of(buckets, key))
            for key, record in zip(keys, await read_records(table, info, keys), strict=True)
            # not in the index's status: the index is never behind, but be safe
            if record is not None and record.status is STATUS_CODES[code]
        ]
        ended = await pick.take(placed)
        if ended is not None:
            return pick.out, ended
        if len(members) < step:
            return pick.out, None
        low = f"({storage_score(buckets, str(members[-1]))}"
        step = min(step * 2, CHUNK)
    return pick.out, position_of(buckets, keys[-1])


async def _page_small(
    table: Table, info: ListInfo, after: Position, pick: _Picker
) -> tuple[list[tuple[EntryKey, EntryRecord]], Position | None]:
    """:func:`page_entries` of a small list: read whole, in the same order."""
    buckets = await table.buckets()
    loc, last = after

    def position(key: EntryKey) -> tuple[int, str | int]:
        if key.is_prefix:
            return -1, key.digits
        number = int(key.digits)
        return number % buckets, number // buckets

    def past(key: EntryKey) -> bool:
        where, what = position(key)
        if where != loc:
            return where > loc
        if last is None:
            return True
        return what > (last if where == -1 else int(last))  # type: ignore[operator]

    items = sorted(
        [(key, record) async for key, record in scan_entries(table, info) if past(key)],
        key=lambda item: position(item[0]),
    )
    placed: list[_Placed] = []
    for key, record in items:
        where, what = position(key)
        placed.append((key, record, (where, str(what))))
    ended = await pick.take(placed)
    return pick.out, ended
