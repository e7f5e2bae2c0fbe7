"""The attempt log read across its shards, and its move from the one-tag layout.

The gateway's writer (:mod:`callscreen.gateway.attemptlog`) spreads the log over
:data:`~callscreen.schema.keys.LOG_SHARDS` shards, each under a hash tag of its own
(:mod:`callscreen.schema.keys`). :class:`LogReader` is the one place that knows how to
read them back as one log; the reports (:mod:`callscreen.reports.report`) go through it.
It builds commands and merges replies and does no I/O itself, so the same reader serves
a synchronous pipeline or an asynchronous one. Every command it builds stays within one
slot (one shard, or ``{cs}``), so each also runs on Redis Cluster.

- day counters: one ``HGETALL`` per day and shard, summed;
- the days' blocked/labeled numbers: one ``ZUNION`` per shard, bucket and kind over the
  days and campaigns (a number's sets all live in its shard, so the sums are exact);
- the lost/never-contacted split: ``reportmarks.lua`` per shard (first-contact mark and
  decider of each number), then ``reportentries.lua`` under ``{cs}`` (the deciding
  entry's record): two steps, each in one slot;
- the records: each shard's two streams (allowed and unscreened calls, bounded by count;
  blocked and labeled ones, kept by age), merged by call time (:func:`merge_newest_first`).

:func:`migrate_attempt_log` moves the log of the layout before shards (``{cs}:log``,
``{cs}:log:*``, ``{cs}:fc:*``) into the shards. It is idempotent and safe to run again
after an interruption; run it with the gateways stopped (a gateway that started on the
new layout first is fine for the counters and marks, which merge, but its stream records
must come after the old ones, so the old stream is then appended with new ids).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from callscreen.schema import scripts
from callscreen.schema.attempts import (
    INDEX_CODE,
    INDEX_OUTCOME,
    KEPT_RESULTS,
    STREAM_FIELD,
    AttemptRecord,
    Outcome,
    e164_digits,
)
from callscreen.schema.keys import (
    DAY_LISTED_BUCKETS,
    FIRST_CONTACT_BUCKETS,
    LOG_SHARDS,
    Keys,
    log_shard,
)
from callscreen.services import store

if TYPE_CHECKING:
    from callscreen.services.table import Table

NUMBERS_PER_CALL = 2000  # numbers resolved by one script call: a few milliseconds of Redis

Command = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Fate:
    """What the log and the lists say about one blocked/labeled number."""

    mark: str | None  # first-contact mark, epoch ms
    decider: str | None  # "list TAB entry" of the entry that last blocked or labeled it
    record: str | None  # that entry's record in its list, None when gone


class LogReader:
    """Reads the sharded attempt log as one: commands to run, and their replies merged."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    # -- day counters ------------------------------------------------------------------------

    def counter_reads(self, days: Sequence[str]) -> list[Command]:
        """``HGETALL`` of each day's counters in each shard, day by day."""
        keys = self.keys
        return [("HGETALL", keys.day_counters(day, s)) for day in days for s in range(LOG_SHARDS)]

    @staticmethod
    def sum_counters(days: Sequence[str], replies: Sequence[Any]) -> list[dict[str, int]]:
        """The replies of :meth:`counter_reads`, summed over the shards: one dict a day."""
        out: list[dict[str, int]] = []
        for i in range(len(days)):
            total: dict[str, int] = {}
            for reply in replies[i * LOG_SHARDS : (i + 1) * LOG_SHARDS]:
                for name, value in (reply or {}).items():
                    total[name] = total.get(name, 0) + int(value)
            out.append(total)
        return out

    # -- blocked and labeled numbers -----------------------------------------------------------

    def listed_reads(
        self, sets: Sequence[tuple[str, str, bool]]
    ) -> tuple[list[Command], list[bool]]:
        """``ZUNION ... WITHSCORES`` of the days' blocked (labeled) numbers of each
        ``(day, campaign, labeled)`` in ``sets``: one per shard, bucket and kind; and
        for each command whether it reads labeled numbers."""
        keys = self.keys
        commands: list[Command] = []
        kinds: list[bool] = []
        for labeled in (False, True):
            chosen = [(day, camp) for day, camp, kind in sets if kind is labeled]
            if not chosen:
                continue
            for shard in range(LOG_SHARDS):
                for bucket in range(DAY_LISTED_BUCKETS):
                    names = [
                        keys.day_listed(day, camp, labeled, bucket, shard) for day, camp in chosen
                    ]
                    commands.append(("ZUNION", len(names), *names, "WITHSCORES"))
                    kinds.append(labeled)
        return commands, kinds

    # -- the lost/never-contacted split ----------------------------------------------------------

    def mark_calls(self, numbers: Sequence[str]) -> list[tuple[str, list[str | int], list[str]]]:
        """Step 1: ``(declared key, arguments, numbers)`` of each ``reportmarks.lua``
        call: the numbers (E.164 digits) grouped by shard, in chunks."""
        by_shard: dict[int, list[str]] = {}
        for digits in numbers:
            by_shard.setdefault(log_shard(digits), []).append(digits)
        calls: list[tuple[str, list[str | int], list[str]]] = []
        for shard, found in sorted(by_shard.items()):
            for start in range(0, len(found), NUMBERS_PER_CALL):
                chunk = found[start : start + NUMBERS_PER_CALL]
                args: list[str | int] = [self.keys.log_base(shard)]
                for digits in chunk:
                    number = int(digits)
                    args += [number % FIRST_CONTACT_BUCKETS, number // FIRST_CONTACT_BUCKETS]
                calls.append((self.keys.attempt_log(shard), args, chunk))
        return calls

    def entry_calls(
        self, deciders: Sequence[tuple[str, str, str]], buckets: int
    ) -> list[tuple[str, list[str | int], list[str]]]:
        """Step 2: the ``reportentries.lua`` calls for ``(digits, list, entry)`` triples
        (``entry`` is ``+digits`` for the number itself, else a prefix like ``+339*``)."""
        calls: list[tuple[str, list[str | int], list[str]]] = []
        for start in range(0, len(deciders), NUMBERS_PER_CALL):
            chunk = deciders[start : start + NUMBERS_PER_CALL]
            args: list[str | int] = [self.keys.base]
            for digits, list_name, entry in chunk:
                if entry == "+" + digits:
                    number = int(digits)
                    args += [list_name, "e", number % buckets, number // buckets]
                else:
                    args += [list_name, "p", "".join(ch for ch in entry if ch.isdigit()), ""]
            calls.append((self.keys.meta, args, [digits for digits, _, _ in chunk]))
        return calls

    # -- the stream ------------------------------------------------------------------------------

    def streams(self) -> tuple[str, ...]:
        return self.keys.attempt_logs()


# -- one number's attempts, through its index -------------------------------------------------

INDEX_CHUNK = 500  # index entries read by one numberlog.lua call
SINCE_SLACK_S = 60.0


@dataclass(slots=True)
class NumberAttempts:
    """A number's attempts read through its index: the records (newest first) and,
    when asked, its totals by outcome over every record the log still keeps."""

    records: list[AttemptRecord]
    totals: dict[Outcome, int]
    more: bool  # older records matching the filter may remain


async def number_attempts(
    table: Table,
    digits: str,
    limit: int,
    *,
    keep: Callable[[AttemptRecord], bool] | None = None,
    since: float | None = None,
    totals: bool = False,
    codes: str = "",
) -> NumberAttempts:
    """The newest ``limit`` attempts of the number whose E.164 digits are ``digits``
    that ``keep`` accepts (all when None), down to ``since`` (epoch seconds), read from
    its attempt index in its shard (``numberlog.lua``, a few hundred entries a call):
    no scan of the log. ``totals`` counts every kept record by outcome too; ``codes``
    (:data:`~callscreen.schema.attempts.INDEX_CODE` values, e.g. ``"B"``) skips the
    other outcomes' records in Redis."""
    keys = table.keys
    shard = log_shard(digits)
    number = int(digits)
    names = [
        keys.attempt_index(number),
        keys.kept_index(number),
        keys.attempt_log(shard),
        keys.kept_log(shard),
    ]
    found: list[AttemptRecord] = []
    counted: dict[Outcome, int] = {}
    pos = [0, 0]
    more = False
    first = True
    want = min(INDEX_CHUNK, limit + 1) if limit > 0 else 0  # one more: are there more?
    while True:
        flag = "1" if first and totals else ""
        args = [*pos, want, flag, codes]
        reply = await store.run_script(table.r, scripts.NUMBERLOG, names, args)
        pos = [int(reply[0]), int(reply[1])]
        going_on, flat_totals, flat = int(reply[2]), reply[3], reply[4]
        if first:
            for k in range(0, len(flat_totals), 2):
                counted[INDEX_OUTCOME[str(flat_totals[k])]] = int(flat_totals[k + 1])
            first = False
        stop = False
        for k in range(0, len(flat), 2):
            rec = AttemptRecord.unpack(str(flat[k]), str(flat[k + 1]))
            if since is not None and rec.time < since:
                # the indexes are in the order the records were written, which may
                # differ from their call times by the writers' batching: stop a minute past
                if rec.time < since - SINCE_SLACK_S:
                    stop = True
                    break
                continue
            if keep is None or keep(rec):
                if len(found) == limit:
                    more = True
                    stop = True
                    break
                found.append(rec)
        if stop or not going_on or want == 0:
            break
        want = INDEX_CHUNK  # filtered out: read on in bigger steps
    # the two indexes are merged by stream id in the script; calls of one millisecond
    # in both streams are put in call-time order here, as the log's reader does
    found.sort(key=lambda rec: (round(rec.time * 1000), stream_id(rec.id)), reverse=True)
    return NumberAttempts(found, counted, more)


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def record_order(item: tuple[str, dict[str, str]]) -> tuple[int, int, int]:
    """The order of a stream entry among the shards': its call time (the gateway's clock,
    in the record), then its stream id. One batch's records reach their shards' streams
    in shard order, so stream ids alone would shuffle the calls of a batch."""
    value = item[1].get(STREAM_FIELD, "")
    head = value[: value.find("\t")] if "\t" in value else value
    ms, seq = stream_id(item[0])
    return (int(head) if head.isdigit() else ms), ms, seq


def merge_newest_first(
    shards: Iterable[Iterator[tuple[str, dict[str, str]]]],
) -> Iterator[tuple[str, dict[str, str]]]:
    """Stream entries of several shards, each newest first, merged newest first (by
    :func:`record_order`; a shard's entries are in that order but for writers whose
    batches interleave)."""
    return heapq.merge(*shards, key=record_order, reverse=True)


def newest_id(ids: Iterable[str]) -> str:
    """The newest of several stream ids (``0-0`` when none)."""
    best = "0-0"
    for entry_id in ids:
        if stream_id(entry_id) > stream_id(best):
            best = entry_id
    return best


# -- the move from the one-tag layout ------------------------------------------------------------

MIGRATE_CHUNK = 1000


@dataclass(slots=True)
class LogMigration:
    """What :func:`migrate_attempt_log` moved."""

    records: int = 0
    counter_days: int = 0
    listed_sets: int = 0
    mark_hashes: int = 0
    decider_hashes: int = 0
    dropped_keys: int = 0  # writer progress marks, no longer needed

    def to_json(self) -> dict[str, int]:
        return {
            "records": self.records,
            "counter_days": self.counter_days,
            "listed_sets": self.listed_sets,
            "mark_hashes": self.mark_hashes,
            "decider_hashes": self.decider_hashes,
            "dropped_keys": self.dropped_keys,
        }


def migrate_attempt_log(r: redis.Redis, keys: Keys) -> LogMigration:
    """Move the attempt log of the one-tag layout into its shards (see the module's
    docstring); ``r`` decodes responses. Each old key moves in one ``MULTI`` with its
    deletion, so an interrupted run leaves nothing counted twice. A single Redis (or
    a Sentinel primary): the old keys and the shards are on one server."""
    done = LogMigration()
    with store.converted():
        _migrate_stream(r, keys, done)
        for pattern in keys.old_log_patterns:
            for name in list(r.scan_iter(match=pattern, count=1000)):
                _migrate_key(r, keys, str(name), done)
        r.hset(keys.meta, "log_shards", str(LOG_SHARDS))
    return done


def count_old_attempt_log(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    """What :func:`migrate_attempt_log` would move: the old stream's records and the
    old layout's other log keys (read only)."""
    with store.converted():
        old = keys.old_attempt_log
        length: Any = r.xlen(old) if r.type(old) == "stream" else 0
        records = int(length)
        others = sum(
            1 for pattern in keys.old_log_patterns for _ in r.scan_iter(match=pattern, count=1000)
        )
    return records, others


def _migrate_key(r: redis.Redis, keys: Keys, name: str, done: LogMigration) -> None:
    rest = name[len(keys.base) + 1 :]  # "log:c:DAY", "log:b:DAY:C:K", "log:d:B", "fc:B", ...
    parts = rest.split(":")
    pipe = r.pipeline(transaction=True)
    if parts[:2] == ["log", "c"] and len(parts) == 3:
        fields = r.hgetall(name)
        target = keys.day_counters(parts[2], 0)  # old counts: summed with the shards'
        for field, value in fields.items():  # type: ignore[union-attr]
            pipe.hincrby(target, field, int(value))
        _keep_ttl(r, pipe, name, target)
        done.counter_days += 1
    elif parts[:2] in (["log", "b"], ["log", "l"]) and len(parts) >= 5:
        # campaign names may hold ':': the day is first, the bucket last
        day, campaign = parts[2], ":".join(parts[3:-1])
        labeled = parts[1] == "l"
        members = r.zrange(name, 0, -1, withscores=True)
        targets: set[str] = set()
        for member, score in members:  # type: ignore[union-attr]
            number = int(member)
            bucket = number % DAY_LISTED_BUCKETS
            target = keys.day_listed(day, campaign, labeled, bucket, log_shard(number))
            pipe.zincrby(target, score, member)
            targets.add(target)
        for target in targets:
            _keep_ttl(r, pipe, name, target)
        done.listed_sets += 1
    elif parts[:2] == ["log", "d"] and len(parts) == 3:
        target = keys.decider(int(parts[2]))
        for field, value in r.hgetall(name).items():  # type: ignore[union-attr]
            pipe.hsetnx(target, field, value)  # a decider written since is newer
        done.decider_hashes += 1
    elif parts[0] == "fc" and len(parts) == 2:
        target = keys.first_contact(int(parts[1]))
        for field, value in r.hgetall(name).items():  # type: ignore[union-attr]
            pipe.hset(target, field, value)  # the old mark is the earlier contact
        done.mark_hashes += 1
    elif parts[:2] == ["log", "w"]:
        done.dropped_keys += 1
    else:
        return  # not the log's: leave it alone
    pipe.delete(name)
    pipe.execute()  # type: ignore[no-untyped-call]


def _keep_ttl(r: redis.Redis, pipe: Any, source: str, target: str) -> None:
    ttl = int(r.pttl(source))  # type: ignore[arg-type]
    if ttl > 0:
        pipe.pexpire(target, ttl)


def _migrate_stream(r: redis.Redis, keys: Keys, done: LogMigration) -> None:
    """The old stream's records, in order, into the shard of each record's number
    (records without one: shard 0), with their ids when the shard's stream is older."""
    old = keys.old_attempt_log
    if r.type(old) != "stream":
        return
    while True:
        chunk = r.xrange(old, count=MIGRATE_CHUNK)
        if not chunk:
            break
        pipe = r.pipeline(transaction=True)
        last: dict[str, tuple[int, int]] = {}
        for entry_id, data in chunk:  # type: ignore[union-attr]
            value = data.get(STREAM_FIELD, "")
            rec = AttemptRecord.unpack(entry_id, value)
            digits = e164_digits(rec.number)
            shard = 0 if digits is None else log_shard(digits)
            stream = keys.kept_log(shard) if rec.result in KEPT_RESULTS else keys.attempt_log(shard)
            if stream not in last:
                newest = r.xrevrange(stream, count=1)
                last[stream] = stream_id(newest[0][0]) if newest else (0, 0)  # type: ignore[index]
            keep = stream_id(entry_id) > last[stream]
            pipe.xadd(stream, {STREAM_FIELD: value}, id=entry_id if keep else "*")
            # once a record took a new id, the later ones of its stream must too
            last[stream] = stream_id(entry_id) if keep else (1 << 63, 0)
            pipe.xdel(old, entry_id)
        pipe.execute()  # type: ignore[no-untyped-call]
        done.records += len(chunk)  # type: ignore[arg-type]
    r.delete(old)


# -- version 3: blocked records kept apart, and each number's attempt index ----------------------


@dataclass(slots=True)
class IndexMigration:
    """What :func:`index_attempt_log` did."""

    moved: int = 0  # blocked/labeled records moved to the stream kept by age
    indexed: int = 0  # records put in their number's attempt index
    numbers: int = 0  # attempt indexes written

    def to_json(self) -> dict[str, int]:
        return {"moved": self.moved, "indexed": self.indexed, "numbers": self.numbers}


def _kept_record(value: str) -> bool:
    return AttemptRecord.unpack("0-0", value).result in KEPT_RESULTS


def count_unindexed_attempt_log(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    """What :func:`index_attempt_log` would do: blocked/labeled records to move and
    records to index (read only)."""
    moved = indexed = 0
    with store.converted():
        for shard in range(LOG_SHARDS):
            for name in (keys.attempt_log(shard), keys.kept_log(shard)):
                for _, data in _scan_stream(r, name):
                    value = data.get(STREAM_FIELD, "")
                    if name == keys.attempt_log(shard) and _kept_record(value):
                        moved += 1
                    if e164_digits(AttemptRecord.unpack("0-0", value).number) is not None:
                        indexed += 1
    return moved, indexed


def _scan_stream(r: redis.Redis, name: str) -> Iterator[tuple[str, dict[str, str]]]:
    start = "-"
    while True:
        chunk: Any = r.xrange(name, min=start, count=MIGRATE_CHUNK)
        if not chunk:
            return
        yield from chunk
        start = "(" + chunk[-1][0]


def index_attempt_log(r: redis.Redis, keys: Keys, kept_days: int) -> IndexMigration:
    """Version 3 of the layout, shard by shard: the records of blocked and labeled calls
    move from ``{LT}:log`` to ``{LT}:log:k`` (ids kept when the kept stream is older),
    then each number's attempt index ``{LT}:log:n:DIGITS`` is built again from both
    streams, expiring ``kept_days`` from now (0: never). Run it with the gateways
    stopped; safe to run again (moved records are gone from the old stream, and the
    indexes are rebuilt whole). ``r`` decodes responses."""
    done = IndexMigration()
    with store.converted():
        for shard in range(LOG_SHARDS):
            _move_kept(r, keys, shard, done)
            _build_indexes(r, keys, shard, kept_days, done)
    return done


def _move_kept(r: redis.Redis, keys: Keys, shard: int, done: IndexMigration) -> None:
    old, kept = keys.attempt_log(shard), keys.kept_log(shard)
    newest: Any = r.xrevrange(kept, count=1)
    last = stream_id(newest[0][0]) if newest else (0, 0)
    start = "-"
    while True:
        chunk: Any = r.xrange(old, min=start, count=MIGRATE_CHUNK)
        if not chunk:
            return
        start = "(" + chunk[-1][0]
        pipe = r.pipeline(transaction=True)
        moved = 0
        for entry_id, data in chunk:
            value = data.get(STREAM_FIELD, "")
            if not _kept_record(value):
                continue
            keep = stream_id(entry_id) > last
            pipe.xadd(kept, {STREAM_FIELD: value}, id=entry_id if keep else "*")
            last = stream_id(entry_id) if keep else (1 << 63, 0)
            pipe.xdel(old, entry_id)
            moved += 1
        if moved:
            pipe.execute()  # type: ignore[no-untyped-call]
            done.moved += moved


def _build_indexes(
    r: redis.Redis, keys: Keys, shard: int, kept_days: int, done: IndexMigration
) -> None:
    base = keys.log_base(shard)
    for pattern in (":log:n:*", ":log:nk:*"):
        for name in list(r.scan_iter(match=base + pattern, count=1000)):
            r.delete(name)
    seen: set[str] = set()
    for stream, index_of in (
        (keys.attempt_log(shard), keys.attempt_index),
        (keys.kept_log(shard), keys.kept_index),
    ):
        expiring: set[str] = set()
        pipe = r.pipeline(transaction=False)
        queued = 0
        for entry_id, data in _scan_stream(r, stream):
            rec = AttemptRecord.unpack(entry_id, data.get(STREAM_FIELD, ""))
            digits = e164_digits(rec.number)
            if digits is None:
                continue
            index = index_of(int(digits))
            pipe.lpush(index, INDEX_CODE[rec.outcome.value] + entry_id)
            if kept_days and index not in expiring:
                expiring.add(index)
                pipe.expire(index, kept_days * 86400)
            seen.add(digits)
            done.indexed += 1
            queued += 1
            if queued >= MIGRATE_CHUNK:
                pipe.execute()  # type: ignore[no-untyped-call]
                pipe = r.pipeline(transaction=False)
                queued = 0
        pipe.execute()  # type: ignore[no-untyped-call]
    done.numbers += len(seen)
