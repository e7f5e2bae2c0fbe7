"""The attempt log: every screening decision becomes one record, written off the call path.

On the call path, :meth:`CallLog.record` only appends ``(time, request, decision,
elapsed)`` to a bounded in-memory queue: no Redis round trip, no formatting, O(1).
A writer task takes the queue in batches (up to ``batch_max`` records, at least every
``flush_interval_s``) and applies each batch in **one round trip**: one ``EVALSHA``
of ``logwrite.lua`` carrying every command of the batch:

- ``XADD`` of each logged record to the stream ``{cs}:log``, trimmed to
  ``max_records`` (``MAXLEN ~``: whole stream nodes are dropped, so the stream holds
  between ``max_records`` and ``max_records`` + ``stream-node-max-entries`` (100)
  records) and, when ``max_age_s`` is set, to that age (``XTRIM MINID ~``);
- ``HINCRBY`` of the day counters ``{cs}:log:c:DAY`` — outcome × direction × list ×
  campaign, days in the configured timezone. Every call is counted, logged or not,
  and the counters do not expire with the records (``counter_days``, 0 = kept);
- ``ZINCRBY`` of the day's blocked (labeled) numbers per campaign,
  ``{cs}:log:b:DAY:C:K`` (``l``), and ``HSET`` of the entry that decided in
  ``{cs}:log:d:B``: for the top numbers and the lost/never-contacted split of the
  reports. Integer members in small bucketed sorted sets (listpacks): about 13 bytes
  a number a day and campaign, kept ``blocked_days``;
- ``HSETNX`` of the first-contact mark ``{cs}:fc:B`` of each number that got an
  allowed (or unscreened) call: the epoch milliseconds of its first contact, about
  15 bytes a number.

The script is atomic and remembers the last batch each writer applied, so a batch
sent again after a lost reply is not counted twice: the counters stay exact.

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
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis, Script
from callscreen.core.config import Settings
from callscreen.core.errors import StoreError
from callscreen.core.model import Direction, Result
from callscreen.schema.attempts import (
    CONTACT_RESULTS,
    DROPPED_FIELD,
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
from callscreen.schema.keys import DAY_LISTED_BUCKETS, Keys

log = logging.getLogger("callscreen.calllog")

LOGWRITE = Script(resources.files("callscreen.schema").joinpath("logwrite.lua").read_text())

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
    args: list[str | int]
    calls: int  # queued calls it carries (aggregated ones not included)


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
        self.own_client = own_client
        self.clock = clock
        self.keys = Keys(settings.key_tag)
        self.node = settings.node_name
        self.writer_id = f"{self.node}.{os.getpid()}.{secrets.token_hex(4)}"
        self._writer_key = self.keys.log_writer(self.writer_id)
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
        """The one Redis call of a batch (swap the client here)."""
        reply = await self.client.evalsha(
            LOGWRITE,
            [self._writer_key, self.keys.attempt_log],
            [batch.seq, WRITER_TTL_S, *batch.args],
            timeout=self.settings.flush_timeout_s,
        )
        refused = int(reply[1]) if isinstance(reply, list) and len(reply) == 2 else 0
        if refused:
            self.refused += refused
            log.warning(
                "call log: Redis refused %d commands of a batch (wrong key types?)", refused
            )

    def _next_batch(self) -> _Batch | None:
        queue = self._queue
        over = self._overflow
        if not queue and not over:
            return None
        items = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
        self._overflow = _Overflow()
        self._seq += 1
        return self._build(self._seq, items, over)

    def _build(self, seq: int, items: Iterable[_Item], over: _Overflow) -> _Batch:
        """The script arguments of one batch: the packed records to append, then the
        counter, blocked-number and first-contact commands, aggregated."""
        s = self.settings
        keys = self.keys
        days = self._days
        node = self.node
        records: list[str | int] = []
        counters: dict[tuple[str, str], int] = {}
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
            outcome = Outcome.UNAVAILABLE if failed and result is Result.BLOCKED else result
            key = (day, f"{outcome.value}\t{direction.value}\t{list_name}\t{campaign}")
            counters[key] = counters.get(key, 0) + 1
            if result in LISTED_RESULTS:
                digits = e164_digits(number) if list_name and not failed else None
                if digits is not None:
                    lkey = (day, campaign, result is Result.LABELED, digits)
                    listed[lkey] = listed.get(lkey, 0) + 1
                    deciders[digits] = decider_value(list_name, decision.match, number)
            elif result in CONTACT_RESULTS:
                digits = e164_digits(number)
                if digits is not None:
                    ms = int(at * 1000)
                    old = marks.get(digits)
                    if old is None or ms < old:
                        marks[digits] = ms
            if log_allowed or result is not Result.ALLOWED:
                records.append(
                    pack_fields(
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
                )

        for (slot, result, failed, direction, list_name, campaign), n in over.counts.items():
            day = days.day(slot * SLOT_S)
            cfield = counter_field(
                outcome_of(result, failed), direction, list_name, clean(campaign, MAX_CAMPAIGN)
            )
            counters[(day, cfield)] = counters.get((day, cfield), 0) + n
        for slot, n in over.dropped.items():
            key = (days.day(slot * SLOT_S), DROPPED_FIELD)
            counters[key] = counters.get(key, 0) + n
        for slot, n in over.uncounted.items():
            key = (days.day(slot * SLOT_S), UNCOUNTED_FIELD)
            counters[key] = counters.get(key, 0) + n

        min_id = ""
        if s.max_age_s:
            min_id = f"{max(0, int((self.clock() - s.max_age_s) * 1000))}-0"
        args: list[str | int] = [len(records), s.max_records, min_id, *records]
        counter_ttl = s.counter_days * 86400
        touched_days: set[str] = set()
        for (day, cfield), n in counters.items():
            args += [4, "HINCRBY", keys.day_counters(day), cfield, n]
            touched_days.add(day)
        if counter_ttl:
            for day in touched_days:
                args += [3, "EXPIRE", keys.day_counters(day), counter_ttl]
        touched_sets: set[str] = set()
        for (day, campaign, labeled, digits), n in listed.items():
            hkey = keys.day_listed(day, campaign, labeled, int(digits) % DAY_LISTED_BUCKETS)
            args += [4, "ZINCRBY", hkey, n, digits]
            touched_sets.add(hkey)
        if s.blocked_days:
            for hkey in touched_sets:
                args += [3, "EXPIRE", hkey, s.blocked_days * 86400]
        for digits, value in deciders.items():
            hkey, hfield = decider_location(keys, digits)
            args += [4, "HSET", hkey, hfield, value]
        for digits, ms in marks.items():
            hkey, hfield = first_contact_location(keys, digits)
            args += [4, "HSETNX", hkey, hfield, ms]
        return _Batch(seq, args, calls)


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
