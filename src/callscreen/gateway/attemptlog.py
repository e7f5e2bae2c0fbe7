"""The attempt log: every screening decision becomes one record, written off the call path.

On the call path, :meth:`CallLog.record` only appends ``(time, request, decision,
elapsed)`` to a bounded in-memory queue: no Redis round trip, no formatting, O(1).
A writer task takes the queue in batches (up to ``batch_max`` records, at least every
``flush_interval_s``) and applies each batch in **one round trip**: one ``EVALSHA``
of ``logwrite.lua`` per attempt-log shard the batch touches
(:data:`~callscreen.schema.keys.LOG_SHARDS` shards, each under a hash tag of its own,
``{LT}`` below: see :mod:`callscreen.schema.keys`),
sent together (pipelined on one connection to a single Redis; on Redis Cluster, to the
primary of each shard's slot, found from the ``MOVED`` replies). Each carries every
command of the batch for the numbers of its shard:

- ``XADD`` of each logged record of an allowed or unscreened call to the stream
  ``{LT}:log``, trimmed to ``max_records`` / shards (``MAXLEN ~``: whole stream nodes
  are dropped, so a shard's stream holds up to ``stream-node-max-entries`` (100)
  records more) and, when ``max_age_s`` is set, to that age (``XTRIM MINID ~``: the
  shards a batch writes to, and one more in turn, so an idle shard is trimmed within
  ``LOG_SHARDS`` batches);
- ``XADD`` of each record of a blocked or labeled call (fail-closed blocks included) to
  the stream ``{LT}:log:k``: evidence of a call callscreen stopped or marked, trimmed
  by age only (``blocked_days``, 0 = kept for ever), never by ``max_records``;
- ``LPUSH`` of each record's outcome code and stream id to its number's attempt index
  ``{LT}:log:n:DIGITS`` (newest first), whose oldest entries are dropped with their
  records and which expires when its longest-lived record is expected to go (see
  ``logwrite.lua``): a number's attempts are read without scanning the log, about
  20 bytes a logged call and 90 a number (``bench/bench_calllog_bytes.py``);
- ``HINCRBY`` of the day counters ``{LT}:log:c:DAY`` — outcome × direction × list ×
  campaign, days in the configured timezone. Every call is counted, logged or not,
  and the counters do not expire with the records (``counter_days``, 0 = kept);
- ``ZINCRBY`` of the day's blocked (labeled) numbers per campaign,
  ``{LT}:log:b:DAY:C:K`` (``l``), and ``HSET`` of the entry that decided in
  ``{LT}:log:d:B``: for the top numbers and the lost/never-contacted split of the
  reports. Integer members in small bucketed sorted sets (listpacks): about 13 bytes
  a number a day and campaign, kept ``blocked_days``;
- ``HSETNX`` of the first-contact mark ``{LT}:fc:B`` of each number that got an
  allowed (or unscreened) call: the epoch milliseconds of its first contact, about
  15 bytes a number.

Each script is atomic and remembers, per shard, the last batch each writer applied, so
a batch sent again after a lost reply (or a ``MOVED`` one) is not counted twice: the
counters stay exact.

When Redis is down the batch is retried with a growing pause (0.1 s to 2 s) while
the queue fills, up to ``queue_max`` records. Past that, a record is **dropped**
from the log: counted in :attr:`CallLog.dropped` (and in the day counters as
``~dropped`` once Redis is back), while its counters and first-contact mark are
still kept in a bounded in-memory aggregate (``~uncounted`` when even that is full),
so report totals stay exact through an outage the process survives. Nothing ever
blocks or fails the call.

Which results are logged as records: blocked, labeled, unscreened and fail-policy
answers always; allowed calls unless ``log_allowed`` is off. Counters and marks
are kept for every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.config import Settings
from callscreen.core.errors import StoreError
from callscreen.core.model import Direction, Result
from callscreen.schema import scripts
from callscreen.schema.attempts import (
    CONTACT_RESULTS,
    DROPPED_FIELD,
    INDEX_CODE,
    LISTED_RESULTS,
    MAX_CALLERID_NAME,
    MAX_CAMPAIGN,
    MAX_NUMBER,
    MAX_REASON,
    MAX_UNIQUEID,
    UNCOUNTED_FIELD,
    DayClock,
    LogSettings,
    Outcome,
    clean,
    counter_field,
    decider_location,
    decider_value,
    e164_digits,
    first_contact_location,
    outcome_of,
    pack_fields,
)
from callscreen.schema.keys import DAY_LISTED_BUCKETS, LOG_SHARDS, Keys, log_shard

log = logging.getLogger("callscreen.calllog")

LOGWRITE = scripts.LOGWRITE

OVERFLOW_KEYS = 10_000  # aggregated counters and marks kept while the queue is full
SLOT_S = 900  # overflow time slots: every timezone offset is a multiple of 15 minutes
WRITER_TTL_S = 7 * 86400  # how long a writer's last-batch mark outlives its last flush
MAX_IN_FLIGHT = 100_000  # LoggedScreener's start times of calls being screened


@dataclass(frozen=True, slots=True)
class LogStats:
    """The writer's figures, for metrics and ``status``."""

    queued: int  # waiting in memory (the batch in flight included)
    written: int  # calls whose batch Redis applied
    dropped: int  # records that could not be kept for the log (queue full, or exit)
    uncounted: int  # of those, calls not even counted (aggregate full)
    flush_failures: int  # batches that had to be sent again
    refused: int  # commands Redis refused inside applied batches (keys of a wrong type)
    last_error: str


# -- the writer ------------------------------------------------------------------------------

_Item = tuple[float, ScreenRequest, Decision, float]
_OverflowKey = tuple[int, Result, bool, Direction, str, str]


@dataclass(slots=True)
class _Batch:
    seq: int
    args: dict[int, list[str | int]]  # shard -> its script's arguments after seq and TTL
    calls: int  # queued calls it carries (aggregated ones not included)
    pending: set[int] = field(default_factory=set)  # shards not applied yet


def moved_to(message: str) -> tuple[str, int] | None:
    """The address of a Redis Cluster ``MOVED slot host:port`` error, else None."""
    at = message.find("MOVED ")
    if at < 0:
        return None
    parts = message[at:].split()
    if len(parts) < 3:
        return None
    host, _, port = parts[2].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


@dataclass(slots=True)
class _Overflow:
    """What is kept of calls that found the queue full: counters and marks only."""

    counts: dict[_OverflowKey, int] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    dropped: dict[int, int] = field(default_factory=dict)  # time slot -> records dropped
    uncounted: dict[int, int] = field(default_factory=dict)  # time slot -> calls not counted

    def __bool__(self) -> bool:
        return bool(self.dropped or self.uncounted)


class CallLog:
    """The attempt log writer of one gateway process.

    ``CallLog(settings, client)`` over a :class:`~callscreen.callpath.leanredis.LeanRedis` of
    its own (not the screener's: a batch must not queue in front of lookups), or
    :meth:`from_settings`. :meth:`start` in the running loop, :meth:`record` for each
    decision, :meth:`stop` at shutdown (it writes what is queued, within a time limit).
    """

    def __init__(
        self,
        settings: LogSettings,
        client: LeanRedis,
        *,
        own_client: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        # the log routes each shard to its Cluster node itself (_route): its client must
        # not move its one connection from node to node on every other shard's MOVED
        client.follow_moved = False
        self.own_client = own_client
        self.clock = clock
        self.keys = Keys(settings.key_tag)
        self.node = settings.node_name
        self.writer_id = f"{self.node}.{os.getpid()}.{secrets.token_hex(4)}"
        self._writer_keys = [self.keys.log_writer(self.writer_id, s) for s in range(LOG_SHARDS)]
        self._streams = [
            (self.keys.attempt_log(s), self.keys.kept_log(s)) for s in range(LOG_SHARDS)
        ]
        # Redis Cluster: the client of each shard whose slot lives on another node
        self._routes: dict[int, LeanRedis] = {}
        self._nodes: dict[tuple[str, int], LeanRedis] = {}
        self._days = DayClock(settings.timezone)
        self._queue: deque[_Item] = deque()
        self._limit = settings.queue_max
        self._batch_max = settings.batch_max
        self._overflow = _Overflow()
        self._inflight: _Batch | None = None
        self._seq = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0
        self.dropped = 0
        self.uncounted = 0
        self.flush_failures = 0
        self.refused = 0
        self.last_error = ""

    @classmethod
    def from_settings(cls, settings: Settings, log_settings: LogSettings | None = None) -> CallLog:
        """A call log with its own Redis connection, from the gateway's settings."""
        ls = log_settings or LogSettings.from_settings(settings)
        client = LeanRedis.from_settings(settings, command_timeout=ls.flush_timeout_s)
        return cls(ls, client, own_client=True)

    # -- the call path ---------------------------------------------------------------------

    def record(self, request: ScreenRequest, decision: Decision, elapsed_s: float) -> None:
        """Queue one decision for the log. O(1), never blocks, never raises; call it
        from the event loop's thread."""
        queue = self._queue
        if len(queue) < self._limit:
            queue.append((self.clock(), request, decision, elapsed_s))
            if len(queue) >= self._batch_max:
                self._wake.set()
            return
        self._keep_counts(self.clock(), request, decision)

    def _keep_counts(self, at: float, request: ScreenRequest, decision: Decision) -> None:
        """The queue is full: the record is dropped, its counters and mark are kept."""
        self.dropped += 1
        over = self._overflow
        slot = int(at) // SLOT_S
        over.dropped[slot] = over.dropped.get(slot, 0) + 1
        key = (
            slot,
            decision.result,
            decision.failed,
            request.direction,
            decision.list_name,
            request.campaign,
        )
        if key in over.counts or len(over.counts) < OVERFLOW_KEYS:
            over.counts[key] = over.counts.get(key, 0) + 1
        else:
            self.uncounted += 1
            over.uncounted[slot] = over.uncounted.get(slot, 0) + 1
        if decision.result in CONTACT_RESULTS:
            digits = e164_digits(decision.number)
            if digits is not None:
                ms = int(at * 1000)
                old = over.marks.get(digits)
                room = len(over.marks) < OVERFLOW_KEYS
                if (old is None and room) or (old is not None and ms < old):
                    over.marks[digits] = ms

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task in the running event loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="callscreen-calllog"
            )

    async def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop the writer.

        Records still queued after that are counted as dropped. Closes the Redis
        client if the log owns it.
        """
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait((task,), timeout=timeout)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                log.error("the call log writer failed", exc_info=task.exception())
        left = len(self._queue) + (self._inflight.calls if self._inflight else 0)
        if left:
            log.warning("call log: %d records could not be written before exit", left)
            self.dropped += left
            self._queue.clear()
            self._inflight = None
        for node in self._nodes.values():
            await node.close()
        self._nodes.clear()
        self._routes.clear()
        if self.own_client:
            await self.client.close()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is written; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue or self._inflight is not None or self._overflow:
            if loop.time() >= deadline or self._task is None or self._task.done():
                return False
            self._wake.set()
            await asyncio.sleep(0.002)
        return True

    def stats(self) -> LogStats:
        inflight = self._inflight.calls if self._inflight else 0
        return LogStats(
            queued=len(self._queue) + inflight,
            written=self.written,
            dropped=self.dropped,
            uncounted=self.uncounted,
            flush_failures=self.flush_failures,
            refused=self.refused,
            last_error=self.last_error,
        )

    # -- the writer ------------------------------------------------------------------------

    async def _run(self) -> None:
        pause = 0.0
        while True:
            if self._inflight is None:
                self._inflight = self._next_batch()
            batch = self._inflight
            if batch is None:
                if self._stopping:
                    return
                await self._sleep(self.settings.flush_interval_s, early=True)
                continue
            try:
                await self._apply(batch)
            except StoreError as exc:
                self.flush_failures += 1
                if not self.last_error:
                    log.warning("call log: cannot write to Redis, queueing: %s", exc)
                self.last_error = str(exc)
                pause = min(max(pause * 2, 0.1), 2.0)
                await self._sleep(pause, early=False)
                continue
            except Exception:
                # A bug, not Redis: drop the batch rather than retry it for ever.
                log.exception("call log: a batch of %d records was dropped", batch.calls)
                self.dropped += batch.calls
                self._inflight = None
                continue
            if self.last_error:
                log.info("call log: writing to Redis again")
                self.last_error = ""
            pause = 0.0
            self.written += batch.calls
            self._inflight = None
            if len(self._queue) < self._batch_max and not self._stopping:
                await self._sleep(self.settings.flush_interval_s, early=True)

    async def _sleep(self, seconds: float, *, early: bool) -> None:
        """Pause; with ``early``, a full batch or a stop request ends the pause."""
        self._wake.clear()
        if early and (self._stopping or len(self._queue) >= self._batch_max):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                if early:
                    await self._wake.wait()
                else:
                    await asyncio.sleep(seconds)

    async def _apply(self, batch: _Batch) -> None:
        """The Redis calls of a batch: one script per shard, sent together. A shard
        answered ``MOVED`` (Redis Cluster) is routed to the named node and sent again at
        once; any other failure raises :class:`StoreError` after the other shards are
        applied (the batch is sent again, and shards that applied it skip it)."""
        for _attempt in range(3):
            shards = sorted(batch.pending)
            replies = await asyncio.gather(
                *(self._apply_shard(batch, shard) for shard in shards), return_exceptions=True
            )
            failure: BaseException | None = None
            moved = False
            for shard, reply in zip(shards, replies, strict=True):
                if isinstance(reply, BaseException):
                    if isinstance(reply, StoreError):
                        address = moved_to(str(reply))
                        if address is not None:
                            self._route(shard, address)
                            moved = True
                            continue
                    failure = failure or reply
                    continue
                batch.pending.discard(shard)
                refused = int(reply[1]) if isinstance(reply, list) and len(reply) == 2 else 0
                if refused:
                    self.refused += refused
                    log.warning(
                        "call log: Redis refused %d commands of a batch (wrong key types?)",
                        refused,
                    )
            if failure is not None:
                raise failure
            if not moved:
                return
        raise StoreError("call log: Redis Cluster kept moving the log's slots")

    async def _apply_shard(self, batch: _Batch, shard: int) -> Any:
        client = self._routes.get(shard, self.client)
        return await client.evalsha(
            LOGWRITE,
            [self._writer_keys[shard], *self._streams[shard]],
            [batch.seq, WRITER_TTL_S, *batch.args[shard]],
            timeout=self.settings.flush_timeout_s,
        )

    def _route(self, shard: int, address: tuple[str, int]) -> None:
        """Send ``shard``'s batches to the Cluster node at ``address`` from now on."""
        if address == self._default_address():
            self._routes.pop(shard, None)
            return
        node = self._nodes.get(address)
        if node is None:
            base = self.client
            target = dataclasses.replace(base.target, host=address[0], port=address[1], path=None)
            node = LeanRedis(
                target,
                connect_timeout=base.connect_timeout,
                command_timeout=base.command_timeout,
                reconnect_backoff=base.reconnect_backoff,
                follow_moved=False,
            )
            self._nodes[address] = node
            log.info("call log: shard %d is on the Cluster node %s:%d", shard, *address)
        self._routes[shard] = node

    def _default_address(self) -> tuple[str, int] | None:
        target = self.client.target
        return None if target.path is not None else (target.host, target.port)

    def _next_batch(self) -> _Batch | None:
        queue = self._queue
        over = self._overflow
        if not queue and not over:
            return None
        items = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
        self._overflow = _Overflow()
        self._seq += 1
        return self._build(self._seq, items, over)

    def _build(self, seq: int, items: list[_Item], over: _Overflow) -> _Batch:
        """One batch, encoded by :func:`encode_batch`."""
        # the age bounds' clock: the writer's for the count-bounded stream; for the kept
        # one (days), the batch's last call time will do, and spares a clock reading
        if self.settings.max_age_s or (self.settings.blocked_days and not items):
            now = self.clock()
        else:
            now = max((item[0] for item in items), default=0.0)
        args, calls = encode_batch(
            self.settings, self.keys, self._days, self.node, now, seq, items, over
        )
        return _Batch(seq, args, calls, set(args))


def encode_batch(
    s: LogSettings,
    keys: Keys,
    days: DayClock,
    node: str,
    now: float,
    seq: int,
    items: Iterable[_Item],
    over: _Overflow,
) -> tuple[dict[int, list[str | int]], int]:
    """The ``logwrite.lua`` arguments of batch ``seq``, by log shard: the packed
    records to append (each after its outcome code, which also names its stream, and
    its number's digits, for the number's attempt index), then the counter,
    blocked-number and first-contact commands, aggregated; and how many queued calls
    the batch carries. A call goes to its number's shard; one without a number (and
    the aggregated counts of an overflow) to the batch's round-robin shard. Pure:
    ``now`` is the writer's clock, for the age bounds. Tested without Redis."""

    spare = seq % LOG_SHARDS
    records: dict[int, list[str | int]] = {}
    counters: dict[tuple[int, str, str], int] = {}  # (shard, day, field)
    listed: dict[tuple[str, str, bool, str], int] = {}  # (day, campaign, labeled, digits)
    deciders: dict[str, str] = {}  # digits -> list TAB entry
    marks: dict[str, int] = dict(over.marks)
    log_allowed = s.log_allowed
    calls = 0
    # Inlined AttemptRecord.from_call + pack: this loop is most of the writer's CPU.
    for at, request, decision, elapsed in items:
        calls += 1
        result = decision.result
        failed = decision.failed
        number = clean(decision.number, MAX_NUMBER)
        campaign = clean(request.campaign, MAX_CAMPAIGN)
        list_name = decision.list_name
        direction = request.direction
        day = days.day(at)
        digits = e164_digits(number)
        shard = spare if digits is None else log_shard(digits)
        outcome = Outcome.UNAVAILABLE if failed and result is Result.BLOCKED else result
        key = (shard, day, f"{outcome.value}\t{direction.value}\t{list_name}\t{campaign}")
        counters[key] = counters.get(key, 0) + 1
        if digits is not None:
            if result in LISTED_RESULTS:
                if list_name and not failed:
                    lkey = (day, campaign, result is Result.LABELED, digits)
                    listed[lkey] = listed.get(lkey, 0) + 1
                    deciders[digits] = decider_value(list_name, decision.match, number)
            elif result in CONTACT_RESULTS:
                ms = int(at * 1000)
                old = marks.get(digits)
                if old is None or ms < old:
                    marks[digits] = ms
        if log_allowed or result is not Result.ALLOWED:
            packed = pack_fields(
                at,
                direction,
                number,
                campaign,
                result,
                failed,
                list_name,
                decision.match,
                clean(decision.reason, MAX_REASON),
                clean(request.uniqueid, MAX_UNIQUEID),
                clean(request.callerid_name, MAX_CALLERID_NAME),
                node,
                max(0, int(elapsed * 1_000_000)),
                ""
                if number and not decision.stripped
                else clean(request.number.strip(), MAX_NUMBER),
            )
            code = INDEX_CODE[outcome]
            shard_records = records.get(shard)
            if shard_records is None:
                records[shard] = [code, digits or "", packed]
            else:
                shard_records += (code, digits or "", packed)

    for (slot, result, failed, direction, list_name, campaign), n in over.counts.items():
        day = days.day(slot * SLOT_S)
        cfield = counter_field(
            outcome_of(result, failed), direction, list_name, clean(campaign, MAX_CAMPAIGN)
        )
        ckey = (spare, day, cfield)
        counters[ckey] = counters.get(ckey, 0) + n
    for slot, n in over.dropped.items():
        ckey = (spare, days.day(slot * SLOT_S), DROPPED_FIELD)
        counters[ckey] = counters.get(ckey, 0) + n
    for slot, n in over.uncounted.items():
        ckey = (spare, days.day(slot * SLOT_S), UNCOUNTED_FIELD)
        counters[ckey] = counters.get(ckey, 0) + n

    commands: dict[int, list[str | int]] = {}

    def add(shard: int, *command: str | int) -> None:
        found = commands.get(shard)
        if found is None:
            found = commands[shard] = []
        found.append(len(command))
        found.extend(command)

    counter_ttl = s.counter_days * 86400
    touched_days: set[tuple[int, str]] = set()
    for (shard, day, cfield), n in counters.items():
        add(shard, "HINCRBY", keys.day_counters(day, shard), cfield, n)
        touched_days.add((shard, day))
    if counter_ttl:
        for shard, day in touched_days:
            add(shard, "EXPIRE", keys.day_counters(day, shard), counter_ttl)
    touched_sets: dict[str, int] = {}
    for (day, campaign, labeled, digits), n in listed.items():
        numeric = int(digits)
        shard = log_shard(numeric)
        hkey = keys.day_listed(day, campaign, labeled, numeric % DAY_LISTED_BUCKETS, shard)
        add(shard, "ZINCRBY", hkey, n, digits)
        touched_sets[hkey] = shard
    if s.blocked_days:
        for hkey, shard in touched_sets.items():
            add(shard, "EXPIRE", hkey, s.blocked_days * 86400)
    for digits, value in deciders.items():
        hkey, hfield = decider_location(keys, digits)
        add(log_shard(digits), "HSET", hkey, hfield, value)
    for digits, ms in marks.items():
        hkey, hfield = first_contact_location(keys, digits)
        add(log_shard(digits), "HSETNX", hkey, hfield, ms)

    min_id = kept_min_id = ""
    if s.max_age_s:
        min_id = f"{max(0, int((now - s.max_age_s) * 1000))}-0"
    if s.blocked_days:
        kept_min_id = f"{max(0, int((now - s.blocked_days * 86400) * 1000))}-0"
    per_shard = -(-s.max_records // LOG_SHARDS)  # ceil: 0 stays 0 (no bound)
    args: dict[int, list[str | int]] = {}
    touched = set(records) | set(commands)
    if min_id or kept_min_id:
        touched.add(spare)  # the age bounds reach every shard, one a batch in turn
    kept_ttl = s.blocked_days * 86400
    age_ttl = int(s.max_age_s)
    for shard in touched:
        shard_records = records.get(shard, [])
        args[shard] = [
            len(shard_records) // 3,
            per_shard,
            min_id,
            kept_min_id,
            keys.log_base(shard),
            kept_ttl,
            age_ttl,
            *shard_records,
            *commands.get(shard, ()),
        ]
    return args, calls


# -- wiring into the gateway -----------------------------------------------------------------


class _Screener(Protocol):
    async def screen(self, request: ScreenRequest) -> Decision: ...

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision: ...


class LoggedScreener:
    """A screener that records every decision it gives in a :class:`CallLog`.

    It wraps :class:`~callscreen.callpath.screener.Screener` for the FastAGI server, which
    needs no change: ``AgiServer(settings, LoggedScreener(screener, calllog))``.
    Decisions the server makes itself (overload, deadline, a screener error) come
    through :meth:`fail_decision` and are recorded too, with the time since the
    screening began when there was one.
    """

    def __init__(self, screener: _Screener, calllog: CallLog) -> None:
        self.screener = screener
        self.calllog = calllog
        self._started: dict[ScreenRequest, float] = {}

    async def screen(self, request: ScreenRequest) -> Decision:
        started = time.perf_counter()
        if len(self._started) >= MAX_IN_FLIGHT:
            self._started.clear()  # calls cancelled without a fail decision (shutdown)
        self._started[request] = started
        decision = await self.screener.screen(request)  # cancelled: fail_decision follows
        self._started.pop(request, None)
        self.calllog.record(request, decision, time.perf_counter() - started)
        return decision

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision:
        decision = self.screener.fail_decision(request, reason)
        started = self._started.pop(request, None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        self.calllog.record(request, decision, elapsed)
        return decision

    @property
    def client(self) -> Any:
        """The wrapped screener's Redis client (the call path's, used by opt-outs)."""
        return getattr(self.screener, "client", None)

    async def close(self) -> None:
        """Close the wrapped screener (its Redis connection); the log is stopped apart."""
        close = getattr(self.screener, "close", None)
        if close is not None:
            await close()
