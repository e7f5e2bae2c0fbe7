"""Stored data across releases: :data:`~callscreen.schema.keys.SCHEMA_VERSION` says
which layout this release reads and writes; ``{cs}:meta`` ``schema`` says which one
the data in Redis has.

- :meth:`SchemaService.check` refuses to run a command on data of an older layout
  (:class:`~callscreen.core.errors.SchemaTooOld`, one line naming the command and
  saying to run ``callscreen migrate``) or of a newer one (written by a newer
  release: :class:`~callscreen.core.errors.Refused`). An empty Redis is fine: the
  first change writes the current version.
- :meth:`SchemaService.migrate` runs the :data:`MIGRATIONS` from the stored version
  up to the current one, each step recording its version when done, so that running
  it again (or after an interruption) goes on where it stopped and changes nothing
  once up to date. ``dry_run`` says what it would do and writes nothing.

A release that changes a stored format bumps ``SCHEMA_VERSION`` and adds its step
here. Version 1 is the first layout with a version; version 2 keeps the attempt log in
shards (:func:`~callscreen.services.logshards.migrate_attempt_log` moves the log of
the one-tag layout; run it with the gateways stopped); version 3 keeps each entry's
transitions and first-enforced time on the entry (:class:`~callscreen.core.model.EntryRecord`;
nothing is rewritten but pending entries, marked as not enforced yet; the gateways may
run); version 4 keeps the records of blocked and labeled calls apart, by age, and
indexes each number's attempts (:func:`~callscreen.services.logshards.index_attempt_log`;
gateways stopped); version 5 adds the lookup index (``{cs}:lk``: which lists apply
to a call, read by the lookup in one command); version 6 indexes each list's pending
and removed entries (``{cs}:st:L:p``, ``{cs}:st:L:d``: paging by status reads them);
version 7 indexes each list's exact numbers in digit order (``{cs}:nd:L``,
``{cs}:nx:L:LOW``: a search by the start of a number reads them); version 8 adds the
holders index (``{cs}:n:B``, ``{cs}:n:p``: which lists hold a number or prefix, so that
a lookup reads one field per number whatever the number of lists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from callscreen.core.errors import Refused, SchemaTooOld
from callscreen.core.model import Status
from callscreen.core.numbers import EntryKey
from callscreen.schema import keys as schema_keys
from callscreen.services import entries, store
from callscreen.services.bulk import Bulk
from callscreen.services.context import Context
from callscreen.services.logshards import (
    count_old_attempt_log,
    count_unindexed_attempt_log,
    index_attempt_log,
    migrate_attempt_log,
)
from callscreen.services.rules import record
from callscreen.services.table import Table


@dataclass(frozen=True, slots=True)
class Migration:
    """The step from ``version - 1`` to ``version``: ``run(table, dry_run)`` does it (or,
    with ``dry_run``, only counts) and says what it did in a line."""

    version: int
    description: str
    run: Callable[[Table, bool], Awaitable[str]]


async def _shard_attempt_log(table: Table, dry_run: bool) -> str:
    """Version 2: the attempt log of the one-tag layout into its shards (bulk work: a
    synchronous connection in a worker thread, as an import's)."""

    def work() -> str:
        bulk = Bulk(table.settings, clock=table.clock)
        try:
            if dry_run:
                records, keys = count_old_attempt_log(bulk.r, bulk.keys)
                return f"{records} log records and {keys} other log keys to move"
            done = migrate_attempt_log(bulk.r, bulk.keys)
            return ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in done.to_json().items())
        finally:
            bulk.close()

    return await asyncio.to_thread(work)


async def _mark_never_enforced(table: Table, dry_run: bool) -> str:
    """Version 3: entries keep a trail of their transitions and the time they were first
    enforced (``record.lua``). Records written before read as they are (their history is
    their creation and last change; enforced since their creation) and older releases
    cannot read the new ones, hence the version. One guess is written: a pending entry
    without a trail has not been enforced yet (it waits for review; its approval will be
    its first enforcement) and is marked so (a few bytes)."""
    pending = 0
    marked = 0
    for info in await table.all_lists():
        keys: list[EntryKey] = []
        async for key, stored in entries.scan_entries(table, info):
            if stored.status is Status.PENDING and not stored.trail:
                keys.append(key)
        pending += len(keys)
        if keys and not dry_run:
            marked += (await entries.mark_never_enforced(table, info, keys))["marked"]
    if dry_run:
        return f"{pending} pending entries without a trail to mark as not enforced yet"
    return f"{marked} pending entries marked as not enforced yet"


async def _index_attempt_log(table: Table, dry_run: bool) -> str:
    """Version 4: blocked and labeled calls' records into the streams kept by age, and
    each number's attempt index built from the records."""

    def work() -> str:
        bulk = Bulk(table.settings, clock=table.clock)
        try:
            if dry_run:
                moved, indexed = count_unindexed_attempt_log(bulk.r, bulk.keys)
                return f"{moved} blocked/labeled records to keep by age, {indexed} to index"
            days = table.settings.calllog_blocked_days
            done = index_attempt_log(bulk.r, bulk.keys, days)
            return ", ".join(f"{n} {what}" for what, n in done.to_json().items())
        finally:
            bulk.close()

    return await asyncio.to_thread(work)


async def _build_lookup_index(table: Table, dry_run: bool) -> str:
    """Version 5: the lookup index (``{cs}:lk``, ``schema/lookuplib.lua``), built from the
    lists and campaigns; from then on every change keeps it. Safe with the previous
    release's gateways running (their lookup reads the lists themselves); this release's
    refuse to start until it is done, and a lookup that finds no index fails (the fail
    policy answers) rather than read no lists."""
    lists = int(await store.wait(table.r.hlen(table.keys.lists)))
    campaigns = int(await store.wait(table.r.scard(table.keys.campaigns)))
    if not dry_run:
        await table.rebuild_lookup_index()
    verb = "to index" if dry_run else "indexed"
    return f"{lists} lists and {campaigns} campaigns {verb}"


async def _build_status_indexes(table: Table, dry_run: bool) -> str:
    """Version 6: each list's pending and removed entries indexed (``record.lua``'s
    ``rec_index`` keeps them from then on), built from a scan of the list. Rebuilding
    replaces an index whole, so running it again changes nothing. Run it with no admin
    changes under way (an entry changed during the scan of its list may be missed)."""
    buckets = await table.buckets()
    indexed = 0
    lists = await table.all_lists()
    for info in lists:
        members: dict[str, dict[str, int]] = {code: {} for code in schema_keys.INDEXED_STATUSES}
        async for key, stored in entries.scan_entries(table, info):
            code = next(c for c, st in entries.STATUS_CODES.items() if st is stored.status)
            if code in members:
                member = entries.expiry_member(buckets, key)
                members[code][member] = schema_keys.storage_score(buckets, member)
        indexed += sum(len(m) for m in members.values())
        if dry_run:
            continue
        pipe = table.r.pipeline(transaction=True)
        for code, scores in members.items():
            index = table.keys.status_index(info.id, code)
            pipe.delete(index)
            items = list(scores.items())
            for start in range(0, len(items), 10_000):
                pipe.zadd(index, dict(items[start : start + 10_000]))
        await store.wait(pipe.execute())
    verb = "to index" if dry_run else "indexed"
    return f"{indexed} pending/removed entries of {len(lists)} lists {verb}"


async def _build_number_indexes(table: Table, dry_run: bool) -> str:
    """Version 7: each list's number index (its exact entries' numbers in digit order,
    for searches by the start of a number; ``record.lua``'s ``rec_numbers`` keeps it
    from then on), built from a scan of the list (:func:`entries.build_number_index`).
    Rebuilding replaces an index whole, so running it again changes nothing. Run it
    with no admin changes under way."""
    indexed = 0
    lists = await table.all_lists()
    for info in lists:
        indexed += await entries.build_number_index(table, info, dry_run=dry_run)
    verb = "to index" if dry_run else "indexed"
    return f"{indexed} numbers of {len(lists)} lists {verb}"


async def _build_holders_index(table: Table, dry_run: bool) -> str:
    """Version 8: the holders index (``{cs}:n:B``, ``{cs}:n:p``, ``lookuplib.lua``: which
    lists hold each number and prefix), built from every list's entries, then the lookup
    index rebuilt (its format "2" and its prefix lengths). Each bucket of the index is
    replaced whole, so running it again changes nothing. Run it with no admin changes
    under way (an entry added during the build may be missed); this release's gateways
    refuse to start until it is done, and its lookup refuses an index of format "1"."""
    buckets = await table.buckets()
    ids = [info.id for info in await table.all_lists()]
    numbers = prefixes = 0
    chunk = 512
    for start in range(0, buckets, chunk):
        span = range(start, min(start + chunk, buckets))
        read = table.r.pipeline(transaction=False)
        for bucket in span:
            for list_id in ids:
                read.hkeys(table.keys.exact(list_id, bucket))
        replies = iter(await store.wait(read.execute()))
        write = table.r.pipeline(transaction=False)
        for bucket in span:
            holders: dict[str, list[str]] = {}
            for list_id in ids:
                for field_name in next(replies):
                    holders.setdefault(field_name, []).append(str(list_id))
            numbers += len(holders)
            write.delete(table.keys.numbers(bucket))
            if holders:
                write.hset(
                    table.keys.numbers(bucket), mapping={f: ",".join(h) for f, h in holders.items()}
                )
        if not dry_run:
            await store.wait(write.execute())
    holders = {}
    for list_id in ids:
        for digits in await store.wait(table.r.hkeys(table.keys.prefixes(list_id))):
            holders.setdefault(digits, []).append(str(list_id))
    prefixes = len(holders)
    if not dry_run:
        pipe = table.r.pipeline(transaction=True)
        pipe.delete(table.keys.prefix_numbers)
        if holders:
            pipe.hset(
                table.keys.prefix_numbers, mapping={d: ",".join(h) for d, h in holders.items()}
            )
        pipe.hdel(table.keys.lookup, "pl", "px")  # computed again by the rebuild
        table.reindex(pipe)
        await store.wait(pipe.execute())
    verb = "to index" if dry_run else "indexed"
    return f"{numbers} numbers, {prefixes} prefixes of {len(ids)} lists {verb}"


MIGRATIONS: list[Migration] = [
    Migration(2, "the attempt log into its shards", _shard_attempt_log),
    Migration(3, "entries keep their transitions", _mark_never_enforced),
    Migration(4, "blocked calls kept by age; each number's attempt index", _index_attempt_log),
    Migration(5, "the lookup index", _build_lookup_index),
    Migration(6, "status indexes", _build_status_indexes),
    Migration(7, "number indexes", _build_number_indexes),
    Migration(8, "the holders index", _build_holders_index),
]


def current_version() -> int:
    return int(schema_keys.SCHEMA_VERSION)


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What ``migrate`` did (or, ``dry_run``, would do): the version before and after,
    one line per step."""

    stored: int | None
    target: int
    dry_run: bool
    steps: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.steps

    def to_json(self) -> dict[str, Any]:
        return {
            "stored_version": self.stored,
            "version": self.target,
            "dry_run": self.dry_run,
            "steps": list(self.steps),
        }


class SchemaService:
    """The stored layout's version: check it, upgrade it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def stored_version(self) -> int | None:
        """The version of the data in Redis; None for an empty Redis (no lists yet)."""
        table = self.ctx.table
        raw = await store.wait(table.r.hget(table.keys.meta, "schema"))
        if raw is not None:
            return int(raw)
        if await store.wait(table.r.hlen(table.keys.lists)):
            return 0  # lists from before the layout carried a version
        return None

    async def check(self, command: str) -> None:
        """Refuse ``command`` unless the data in Redis has this release's layout."""
        stored = await self.stored_version()
        target = current_version()
        if stored is None or stored == target:
            return
        if stored < target:
            raise SchemaTooOld(
                f"callscreen {command}: the data in Redis has schema version {stored}, this "
                f"release needs {target}; run 'callscreen migrate' first"
            )
        raise Refused(
            f"callscreen {command}: the data in Redis has schema version {stored}, newer "
            f"than this release's {target}; upgrade callscreen"
        )

    async def migrate(self, *, dry_run: bool = False) -> MigrationReport:
        """Run the steps from the stored version to this release's (none when up to
        date); each step records its version as soon as it is done."""
        stored = await self.stored_version()
        target = current_version()
        if stored is not None and stored > target:
            await self.check("migrate")
        report = MigrationReport(stored, target, dry_run)
        if stored is None:
            return report  # empty: the first change writes the current version
        table = self.ctx.table
        for step in MIGRATIONS:
            if not stored < step.version <= target:
                continue
            line = await step.run(table, dry_run)
            report.steps.append(f"{step.version}: {step.description}: {line}")
            if not dry_run:
                await store.wait(table.r.hset(table.keys.meta, "schema", step.version))
                await record(self.ctx, None, "migrate", detail=f"schema {step.version}: {line}")
        if not dry_run and stored < target:
            await store.wait(table.r.hset(table.keys.meta, "schema", target))
        return report
