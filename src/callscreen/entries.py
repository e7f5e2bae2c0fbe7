"""Entries of a list: exact numbers and prefixes, with their compact records."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from callscreen import store
from callscreen.keys import bucket_of
from callscreen.model import EntryRecord, Status
from callscreen.numbers import EntryKey
from callscreen.table import Batch, ListInfo, Table

UPSERT_LUA = resources.files("callscreen").joinpath("upsert.lua").read_text()
CHUNK = 1000


def entry_location(table: Table, list_id: int, key: EntryKey) -> tuple[str, str]:
    """The hash key and field that hold ``key`` in list ``list_id``."""
    if key.is_prefix:
        return table.keys.prefixes(list_id), key.digits
    bucket, field = bucket_of(int(key.digits), table.buckets)
    return table.keys.exact(list_id, bucket), str(field)


@dataclass(frozen=True, slots=True)
class WriteSummary:
    """How many entries a change added, updated or restored."""

    counts: Counter[str]

    def __getitem__(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)


def add_entries(
    table: Table,
    info: ListInfo,
    keys: Iterable[EntryKey],
    batch: Batch,
    *,
    status: Status = Status.ACTIVE,
    expires: int | None = None,
    external_id: str = "",
) -> WriteSummary:
    """Add entries to a list (an existing one is updated; a permanent one stays so)."""
    script = table.r.register_script(UPSERT_LUA)
    record = EntryRecord(status, batch.id, expires, None, external_id).encode()
    counts: Counter[str] = Counter()
    chunk: list[str] = []

    def flush() -> None:
        if chunk:
            outcomes = store.call(lambda: script(keys=[table.keys.counts(info.id)], args=["add", *chunk]))
            counts.update(outcomes)
            chunk.clear()

    for key in dict.fromkeys(keys):
        hkey, field = entry_location(table, info.id, key)
        chunk += [hkey, field, record]
        if len(chunk) >= CHUNK * 3:
            flush()
    flush()
    return WriteSummary(counts)


def status_counts(table: Table, info: ListInfo, now: float | None = None) -> dict[str, int]:
    """Entry counts of a list by stored status."""
    raw = store.call(lambda: table.r.hgetall(table.keys.counts(info.id)))
    names = {"p": "pending", "a": "active", "P": "permanent", "d": "deleted"}
    del now
    return {names[code]: int(count) for code, count in raw.items() if code in names and int(count)}


def read_records(table: Table, info: ListInfo, keys: Sequence[EntryKey]) -> list[EntryRecord | None]:
    """The stored records of ``keys`` in a list (None where absent)."""

    def read() -> list[object]:
        pipe = table.r.pipeline(transaction=False)
        for key in keys:
            hkey, field = entry_location(table, info.id, key)
            pipe.hget(hkey, field)
        return pipe.execute()

    raws = store.call(read)
    return [EntryRecord.decode(str(raw)) if raw else None for raw in raws]


def now_s() -> int:
    return int(time.time())
