"""What screened calls came to: the attempt log read back, and campaign reports.

A :class:`Report` covers whole days (in the log's timezone) and is built from what
:mod:`callscreen.gateway.attemptlog` keeps, never from a scan of the table or of the log:

- totals by outcome, direction, list, campaign and day: the day counters
  (``{LT}:log:c:DAY`` of each log shard), one ``HGETALL`` a day and shard — exact,
  whatever the log retention;
- top blocked/labeled numbers: the days' blocked (labeled) numbers of each campaign
  (``{LT}:log:b:DAY:C:K``, ``{LT}:log:l:DAY:C:K``), summed over the range;
- **lost** vs **never contacted**: for each number blocked or labeled in the range,
  its first-contact mark (``{LT}:fc:B``: when it first got an allowed call) against
  the time it was blacklisted: the time the entry which last blocked or labeled it
  (``{LT}:log:d:B``) first became enforced in its list (active or permanent; kept on
  the entry, set once: :attr:`~callscreen.core.model.EntryRecord.first_enforced_batch`,
  then that batch record). A number
  contacted before that is *lost* (a lead the campaign had reached); one with no
  contact before it is *never contacted*. When the entry is gone (its list deleted)
  and the number had been contacted, the order cannot be told: *unknown*.

The log's shards are read through :class:`~callscreen.services.logshards.LogReader`.
Reads are a few script calls over chunks of keys and numbers (``reportmarks.lua`` per
shard, then ``reportentries.lua``: point reads, a few milliseconds of Redis each), so
a report costs in proportion to the days and to the distinct blocked/labeled numbers
per day and campaign, not to the calls. Caveats: contact counts allowed calls in
either direction and any campaign; an entry written before entries kept their
first-enforced time counts from its creation; marks exist only for calls logged since
the log was turned on.

:func:`recent_attempts` and :func:`follow_attempts` read the stream for
``callscreen log``.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, InvalidNumber
from callscreen.core.model import Direction, EntryRecord, Result
from callscreen.core.numbers import parse_entry
from callscreen.core.times import iso_ms
from callscreen.schema.attempts import (
    DROPPED_FIELD,
    INDEX_CODE,
    STREAM_FIELD,
    UNCOUNTED_FIELD,
    AttemptRecord,
    DayClock,
    LogSettings,
    Outcome,
    day_key,
    e164_digits,
    parse_counter_field,
    parse_decider,
)
from callscreen.schema.scripts import REPORT_ENTRIES, REPORT_MARKS, Script
from callscreen.services import store
from callscreen.services.logshards import (
    LogReader,
    newest_id,
    number_attempts,
    record_order,
    stream_id,
)
from callscreen.services.table import Table

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
MAX_REPORT_DAYS = 3660
CHUNK = 5000  # commands per pipeline round trip


class Fate:
    """The lost/never-contacted groups of a blacklisted number."""

    LOST = "lost"
    NEVER_CONTACTED = "never_contacted"
    UNKNOWN = "unknown"


def zero_counts() -> dict[str, int]:
    """Every outcome at zero, in display order."""
    return {outcome.value: 0 for outcome in OUTCOMES}


@dataclass(frozen=True, slots=True)
class TopNumber:
    """A number often blocked (or labeled) in the range."""

    number: str
    result: Result
    attempts: int
    lists: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "result": self.result.value,
            "attempts": self.attempts,
            "lists": list(self.lists),
        }


@dataclass(frozen=True, slots=True)
class NumberFate:
    """A number blocked or labeled in the range: was it contacted before that?"""

    number: str
    fate: str  # a Fate value
    attempts: int  # blocked and labeled calls in the range
    list_name: str  # the list of the entry that blacklisted it first
    entry: str
    blacklisted_at: float | None  # None: the entry is gone
    first_contact: float | None  # None: never got an allowed call

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "fate": self.fate,
            "attempts": self.attempts,
            "list_name": self.list_name,
            "entry": self.entry,
            "blacklisted_at": iso_ms(self.blacklisted_at),
            "first_contact": iso_ms(self.first_contact),
        }


@dataclass(frozen=True)
class Report:
    """A campaign (or whole-gateway) report over whole days ``since``..``until``.

    Count tables map a key (day ``YYYY-MM-DD``, list, direction, campaign; ``""`` for
    no list or no campaign) to counts by :class:`~callscreen.gateway.attemptlog.Outcome` value.
    The number tables hold at most the requested number of rows; the ``*_count``
    fields are exact.
    """

    since: date
    until: date
    timezone: str
    campaign: str | None
    generated_at: float
    totals: dict[str, int]
    by_direction: dict[str, dict[str, int]]
    by_day: dict[str, dict[str, int]]
    by_list: dict[str, dict[str, int]]
    by_campaign: dict[str, dict[str, int]]
    top_blocked: tuple[TopNumber, ...] = ()
    top_labeled: tuple[TopNumber, ...] = ()
    lost: tuple[NumberFate, ...] = ()
    never_contacted: tuple[NumberFate, ...] = ()
    unknown: tuple[NumberFate, ...] = ()
    listed_numbers: int = 0
    lost_count: int = 0
    never_contacted_count: int = 0
    unknown_count: int = 0
    dropped: int = 0  # calls kept out of the log (queue full): counted, not recorded
    uncounted: int = 0  # calls not even counted (see callscreen.gateway.attemptlog)
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "timezone": self.timezone,
            "campaign": self.campaign,
            "generated_at": iso_ms(self.generated_at),
            "total": self.total,
            "totals": self.totals,
            "by_direction": self.by_direction,
            "by_day": self.by_day,
            "by_list": self.by_list,
            "by_campaign": self.by_campaign,
            "top_blocked": [row.to_json() for row in self.top_blocked],
            "top_labeled": [row.to_json() for row in self.top_labeled],
            "listed_numbers": self.listed_numbers,
            "lost_count": self.lost_count,
            "never_contacted_count": self.never_contacted_count,
            "unknown_count": self.unknown_count,
            "lost": [row.to_json() for row in self.lost],
            "never_contacted": [row.to_json() for row in self.never_contacted],
            "unknown": [row.to_json() for row in self.unknown],
            "dropped": self.dropped,
            "uncounted": self.uncounted,
            "notes": list(self.notes),
        }


def report_days(
    log: LogSettings, *, since: date | None, until: date | None, days: int | None, now: float
) -> tuple[date, date]:
    """The range of a report: ``--since``/``--until`` dates, or the last ``days``
    days up to today (in the log's timezone); 7 days by default."""
    today = DayClock(log.timezone).date_of(now)
    end = until or today
    if since is None:
        since = end - timedelta(days=(days or 7) - 1)
    if since > end:
        raise InvalidInput(f"the range starts ({since}) after it ends ({end})")
    if (end - since).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
    return since, end


async def _pipelined(table: Table, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run read commands in pipelines of :data:`CHUNK`, replies in order."""
    out: list[Any] = []
    for start in range(0, len(commands), CHUNK):
        pipe = table.r.pipeline(transaction=False)
        for command in commands[start : start + CHUNK]:
            pipe.execute_command(*command)
        out.extend(await store.wait(pipe.execute()))
    return out


async def _scripted(
    table: Table, script: Script, calls: Sequence[tuple[str, Sequence[str | int], Any]]
) -> list[Any]:
    """One ``EVALSHA`` of ``script`` per ``(declared key, arguments, _)``, pipelined; the
    replies. The declared key says the script's slot (Redis Cluster); the first call
    loads the script where Redis does not know it yet."""
    if not calls:
        return []
    key, args, _ = calls[0]
    first = await store.run_script(table.r, script, [key], args)
    rest = await _pipelined(table, [("EVALSHA", script.sha1, 1, k, *a) for k, a, _ in calls[1:]])
    return [first, *rest]


async def build_report(
    table: Table,
    log: LogSettings,
    since: date,
    until: date,
    *,
    campaign: str | None = None,
    top: int = 20,
    max_numbers: int = 1000,
    now: float | None = None,
) -> Report:
    """The report of days ``since``..``until`` (inclusive, in the log's timezone),
    for one campaign (``""`` is calls with no campaign) or all (None).

    ``top`` bounds the top-number tables, ``max_numbers`` each lost/never-contacted
    table (0: no bound); their counts are always exact.
    """
    if since > until:
        raise InvalidInput(f"the range starts ({since}) after it ends ({until})")
    if (until - since).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
    reader = LogReader(table.keys)
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    day_keys = [day_key(d) for d in days]
    rows = reader.sum_counters(day_keys, await _pipelined(table, reader.counter_reads(day_keys)))

    totals = zero_counts()
    by_direction = {d.value: zero_counts() for d in (Direction.INBOUND, Direction.OUTBOUND)}
    by_day: dict[str, dict[str, int]] = {}
    by_list: dict[str, dict[str, int]] = {}
    by_campaign: dict[str, dict[str, int]] = {}
    dropped = uncounted = 0
    listed_sets: list[tuple[str, str, bool]] = []  # (day key, campaign, labeled) with calls
    for day, row in zip(days, rows, strict=True):
        per_day = by_day.setdefault(day.isoformat(), zero_counts())
        dkey = day_key(day)
        listed_campaigns: set[tuple[str, bool]] = set()
        for name, n in row.items():
            if name == DROPPED_FIELD:
                dropped += n
                continue
            if name == UNCOUNTED_FIELD:
                uncounted += n
                continue
            parsed = parse_counter_field(name)
            if parsed is None:
                continue
            outcome, direction, list_name, camp = parsed
            if campaign is not None and camp != campaign:
                continue
            o = outcome.value
            totals[o] += n
            per_day[o] += n
            for table_, key in (
                (by_direction, direction.value),
                (by_list, list_name),
                (by_campaign, camp),
            ):
                counts = table_.get(key)
                if counts is None:
                    counts = table_[key] = zero_counts()
                counts[o] += n
            if outcome in (Outcome.BLOCKED, Outcome.LABELED):
                listed_campaigns.add((camp, outcome is Outcome.LABELED))
        listed_sets += [(dkey, camp, labeled) for camp, labeled in sorted(listed_campaigns)]

    listed = await _read_listed(table, listed_sets)
    await _resolve(table, listed)
    clock = DayClock(log.timezone)
    start, end = clock.bounds(since)[0], clock.bounds(until)[1]
    top_blocked = await _top_lists(table, _top(listed, False, top), start, end, campaign)
    top_labeled = await _top_lists(table, _top(listed, True, top), start, end, campaign)
    fates = _fates(listed, max_numbers)

    notes = []
    if dropped:
        notes.append(
            f"{dropped} calls were counted but not recorded in the log (its queue was full "
            "while Redis was unreachable); totals include them"
        )
    if uncounted:
        notes.append(f"{uncounted} calls could be neither recorded nor counted")
    today = DayClock(log.timezone).date_of(time.time() if now is None else now)
    if log.blocked_days and (today - since).days >= log.blocked_days:
        notes.append(
            f"top numbers and the lost/never-contacted split only cover the last "
            f"{log.blocked_days} days"
        )
    return Report(
        since=since,
        until=until,
        timezone=log.timezone,
        campaign=campaign,
        generated_at=time.time() if now is None else now,
        totals=totals,
        by_direction=by_direction,
        by_day=by_day,
        by_list=dict(sorted(by_list.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))),
        by_campaign=dict(sorted(by_campaign.items())),
        top_blocked=top_blocked,
        top_labeled=top_labeled,
        lost=fates[Fate.LOST][1],
        never_contacted=fates[Fate.NEVER_CONTACTED][1],
        unknown=fates[Fate.UNKNOWN][1],
        listed_numbers=len(listed),
        lost_count=fates[Fate.LOST][0],
        never_contacted_count=fates[Fate.NEVER_CONTACTED][0],
        unknown_count=fates[Fate.UNKNOWN][0],
        dropped=dropped,
        uncounted=uncounted,
        notes=tuple(notes),
    )


@dataclass(slots=True)
class _Listed:
    """A number blocked or labeled in the range: its attempts and what decided."""

    blocked: int = 0
    labeled: int = 0
    list_name: str = ""
    entry: str = ""
    blacklisted_at: float | None = None
    first_contact: float | None = None


async def _read_listed(table: Table, sets: Sequence[tuple[str, str, bool]]) -> dict[str, _Listed]:
    """The days' blocked and labeled numbers of the range, summed by number: one
    ``ZUNION`` per bucket and kind over the days and campaigns (Redis does the sums,
    a few milliseconds a call; only the distinct numbers come back)."""
    commands, kinds = LogReader(table.keys).listed_reads(sets)
    listed: dict[str, _Listed] = {}
    for labeled, reply in zip(kinds, await _pipelined(table, commands), strict=True):
        it = iter(reply or ())
        for digits, score in zip(it, it, strict=True):
            n = _score(score)
            row = listed.get(digits)
            if row is None:
                row = listed[digits] = _Listed()
            if labeled:
                row.labeled += n
            else:
                row.blocked += n
    return listed


def _score(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return int(float(text))


async def _resolve(table: Table, listed: dict[str, _Listed]) -> None:
    """Fill in each number's first contact, deciding entry and its blacklisting time:
    ``reportmarks.lua`` over each log shard's numbers, then ``reportentries.lua`` over
    the deciders (under ``{cs}``), then the few batch records."""
    reader = LogReader(table.keys)
    calls = reader.mark_calls(list(listed))
    deciders: list[tuple[str, str, str]] = []
    marks = await _scripted(table, REPORT_MARKS, calls)
    for (_key, _args, chunk), reply in zip(calls, marks, strict=True):
        for i, digits in enumerate(chunk):
            mark, decider = reply[2 * i : 2 * i + 2]
            row = listed[digits]
            if mark:
                row.first_contact = int(mark) / 1000
            if decider:
                row.list_name, row.entry = parse_decider(decider, "+" + digits)
                deciders.append((digits, row.list_name, row.entry))
    entry_calls = reader.entry_calls(deciders, await table.buckets())
    batch_of: dict[str, int] = {}
    replies = await _scripted(table, REPORT_ENTRIES, entry_calls)
    for (_key, _args, chunk), reply in zip(entry_calls, replies, strict=True):
        for digits, record in zip(chunk, reply, strict=True):
            if record:
                # since when the entry has been enforced (set once on the entry: a later
                # change of its reason does not move it), not its last change
                try:
                    parsed = EntryRecord.decode(record)
                except (KeyError, ValueError):
                    continue
                first = parsed.first_enforced_batch
                batch_of[digits] = parsed.batch if first is None else first
    batches = await table.batches(list(set(batch_of.values())))
    for digits, batch_id in batch_of.items():
        batch = batches.get(batch_id)
        if batch is not None and batch.at:
            listed[digits].blacklisted_at = batch.at


def _top(listed: dict[str, _Listed], labeled: bool, limit: int) -> tuple[TopNumber, ...]:
    def attempts(row: _Listed) -> int:
        return row.labeled if labeled else row.blocked

    best = heapq.nsmallest(
        max(0, limit),
        ((-attempts(row), digits) for digits, row in listed.items() if attempts(row)),
    )
    result = Result.LABELED if labeled else Result.BLOCKED
    return tuple(
        TopNumber(
            "+" + digits,
            result,
            -negative,
            (listed[digits].list_name,) if listed[digits].list_name else (),
        )
        for negative, digits in best
    )


TOP_LIST_RECORDS = 1000  # a top number's newest calls in the range read for its lists


async def _top_lists(
    table: Table, tops: tuple[TopNumber, ...], start: float, end: float, campaign: str | None
) -> tuple[TopNumber, ...]:
    """Each top number with the lists that blocked (labeled) it in the range: the lists
    named by its records of that result (its newest :data:`TOP_LIST_RECORDS` in the
    range, read through its attempt index), most calls first. Fail-closed blocks name no
    list; a number whose records are gone names none (the last deciding entry, kept
    apart, may be of a list that decided otherwise)."""
    out: list[TopNumber] = []
    for top_row in tops:
        digits = top_row.number[1:]
        result = top_row.result

        def keep(rec: AttemptRecord, result: Result = result) -> bool:
            return (
                rec.result is result
                and not rec.failed
                and bool(rec.list_name)
                and start <= rec.time < end
                and (campaign is None or rec.campaign == campaign)
            )

        code = INDEX_CODE[result.value]
        found = await number_attempts(
            table, digits, TOP_LIST_RECORDS, keep=keep, since=start, codes=code
        )
        counts: dict[str, int] = {}
        for rec in found.records:
            counts[rec.list_name] = counts.get(rec.list_name, 0) + 1
        lists = tuple(sorted(counts, key=lambda name: (-counts[name], name)))
        out.append(replace(top_row, lists=lists))
    return tuple(out)


def _fates(
    listed: dict[str, _Listed], max_numbers: int
) -> dict[str, tuple[int, tuple[NumberFate, ...]]]:
    """Lost / never contacted / unknown: for each group, its exact count and its first
    ``max_numbers`` rows (most attempts first; 0: all)."""
    groups: dict[str, list[tuple[int, str]]] = {
        Fate.LOST: [],
        Fate.NEVER_CONTACTED: [],
        Fate.UNKNOWN: [],
    }
    for digits, row in listed.items():
        contact, at = row.first_contact, row.blacklisted_at
        if contact is None:
            fate = Fate.NEVER_CONTACTED
        elif at is None:
            fate = Fate.UNKNOWN
        elif contact < at:
            fate = Fate.LOST
        else:
            fate = Fate.NEVER_CONTACTED  # its first contact came after its blacklisting
        groups[fate].append((-(row.blocked + row.labeled), digits))
    out = {}
    for fate, rows in groups.items():
        chosen = heapq.nsmallest(max_numbers, rows) if max_numbers else sorted(rows)
        out[fate] = (
            len(rows),
            tuple(
                NumberFate(
                    "+" + digits,
                    fate,
                    -negative,
                    listed[digits].list_name,
                    listed[digits].entry,
                    listed[digits].blacklisted_at,
                    listed[digits].first_contact,
                )
                for negative, digits in chosen
            ),
        )
    return out


# -- the log ---------------------------------------------------------------------------------

LOG_SCAN_CHUNK = 1000
CLOCK_SLACK_MS = 60_000  # stream ids are Redis's clock, record times the gateway's


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which attempts ``callscreen log`` shows. ``number`` is E.164 or a prefix
    (``+33*``); ``outcome`` BLOCKED matches list and fail-closed blocks alike,
    BLOCKED_UNAVAILABLE only the latter."""

    campaign: str | None = None
    number: str | None = None
    outcome: Outcome | None = None
    direction: Direction | None = None
    since: float | None = None
    until: float | None = None

    @classmethod
    def parse_number(cls, raw: str, region: str) -> str:
        """A ``--number`` filter as the log stores it (``+33123456789`` or ``+33*``)."""
        try:
            return parse_entry(raw, region).display
        except InvalidNumber:
            return raw.strip()

    def matches(self, rec: AttemptRecord) -> bool:
        if self.campaign is not None and rec.campaign != self.campaign:
            return False
        if self.direction is not None and rec.direction is not self.direction:
            return False
        if self.outcome is not None:
            if self.outcome is Outcome.UNAVAILABLE:
                if rec.outcome is not Outcome.UNAVAILABLE:
                    return False
            elif rec.result.value != self.outcome.value:
                return False
        if self.number is not None:
            if self.number.endswith("*"):
                if not rec.number.startswith(self.number[:-1]):
                    return False
            elif rec.number != self.number and rec.dialed != self.number:
                return False
        if self.since is not None and rec.time < self.since:
            return False
        return not (self.until is not None and rec.time > self.until)


def _record(entry_id: str, data: dict[str, str]) -> AttemptRecord:
    return AttemptRecord.unpack(entry_id, data.get(STREAM_FIELD, ""))


Order = tuple[int, int, int]


def order_of(record: AttemptRecord) -> Order:
    """Where a record stands among every shard's (:func:`record_order`): call time in
    milliseconds, then stream id. The position to page back from."""
    ms, seq = stream_id(record.id)
    return round(record.time * 1000), ms, seq


async def recent_attempts(
    table: Table, query: LogQuery, limit: int = 50, before: Order | None = None
) -> tuple[list[AttemptRecord], str]:
    """The last ``limit`` attempts matching ``query``, oldest first, and the id of
    the newest record of any shard (to follow from), ``0-0`` for an empty log.
    ``before`` (:func:`order_of` a record) starts past that record, for paging back:
    each shard is read from the records written up to the clock slack after its call.

    Each shard's stream is read newest first, in chunks, down to ``query.since``, and
    the shards merged by id."""
    digits = e164_digits(query.number or "")
    if digits is not None:
        # one number: read through its attempt index, no scan of the log
        return await _number_recent(table, query, digits, limit, before)
    floor = "-"
    if query.since is not None:
        floor = str(max(0, int(query.since * 1000) - CLOCK_SLACK_MS))
    streams = LogReader(table.keys).streams()
    heads: dict[str, str] = {}
    found: list[AttemptRecord] = []
    if limit > 0:
        # Each shard is read newest first, a chunk at a time as the merge needs it; the
        # merge takes the newest head of all shards (by call time, then stream id).
        # Paging back (``before``), a shard is read from the clock slack past that call.
        top = "+" if before is None else str(before[0] + CLOCK_SLACK_MS)
        tops = dict.fromkeys(streams, top)
        buffers: dict[str, deque[tuple[str, dict[str, str]]]] = {s: deque() for s in streams}
        done: set[str] = set()

        async def refill(stream: str) -> None:
            chunk = await store.wait(
                table.r.xrevrange(stream, max=tops[stream], min=floor, count=LOG_SCAN_CHUNK)
            )
            if chunk:
                if before is None:
                    heads.setdefault(stream, chunk[0][0])
                tops[stream] = "(" + chunk[-1][0]
                buffers[stream].extend(chunk)
            if len(chunk) < LOG_SCAN_CHUNK:
                done.add(stream)

        while len(found) < limit:
            best: str | None = None
            for stream in streams:
                if not buffers[stream] and stream not in done:
                    await refill(stream)
                if buffers[stream] and (
                    best is None
                    or record_order(buffers[stream][0]) > record_order(buffers[best][0])
                ):
                    best = stream
            if best is None:
                break
            entry_id, data = buffers[best].popleft()
            if before is not None and record_order((entry_id, data)) >= before:
                continue
            rec = _record(entry_id, data)
            if query.matches(rec):
                found.append(rec)
    for stream in streams:
        if stream not in heads:
            last = await store.wait(table.r.xrevrange(stream, count=1))
            if last:
                heads[stream] = last[0][0]
    found.reverse()
    return found, newest_id(heads.values())


async def _number_recent(
    table: Table, query: LogQuery, digits: str, limit: int, before: Order | None
) -> tuple[list[AttemptRecord], str]:
    """:func:`recent_attempts` of one exact number, through its attempt index."""

    def keep(rec: AttemptRecord) -> bool:
        return query.matches(rec) and (before is None or order_of(rec) < before)

    found = await number_attempts(table, digits, limit, keep=keep, since=query.since)
    streams = LogReader(table.keys).streams()
    lasts = await _pipelined(table, [("XREVRANGE", s, "+", "-", "COUNT", 1) for s in streams])
    heads = [last[0][0] for last in lasts if last]
    found.records.reverse()
    return found.records, newest_id(heads)


async def follow_attempts(
    table: Table,
    query: LogQuery,
    after: str,
    *,
    block_ms: int = 1000,
    stop: Callable[[], bool] | None = None,
) -> AsyncIterator[AttemptRecord]:
    """Attempts matching ``query`` logged after stream id ``after``, as they come
    (blocking reads of up to ``block_ms`` over every shard's stream), until ``stop()``
    says so (forever without it). Records of different shards come in the order read."""
    last = dict.fromkeys(LogReader(table.keys).streams(), after)
    while stop is None or not stop():
        reply = await store.wait(table.r.xread(dict(last), count=500, block=block_ms))
        for name, entries in reply or ():
            for entry_id, data in entries:
                last[name] = entry_id
                rec = _record(entry_id, data)
                if query.matches(rec):
                    yield rec


class ReportService:
    """Reports and log reading for the CLI (and later the HTTP API), over the admin
    side's :class:`~callscreen.services.table.Table`."""

    def __init__(self, settings: Settings, table: Table) -> None:
        self.settings = settings
        self.log = LogSettings.from_settings(settings)
        self.table = table

    async def report(
        self,
        *,
        since: date | None = None,
        until: date | None = None,
        days: int | None = None,
        campaign: str | None = None,
        top: int = 20,
        max_numbers: int = 1000,
    ) -> Report:
        """The report of a range of days (default: the last 7, today included)."""
        now = self.table.clock()
        first, last = report_days(self.log, since=since, until=until, days=days, now=now)
        return await build_report(
            self.table,
            self.log,
            first,
            last,
            campaign=campaign,
            top=top,
            max_numbers=max_numbers,
            now=now,
        )

    def query(
        self,
        *,
        campaign: str | None = None,
        number: str | None = None,
        outcome: Outcome | None = None,
        direction: Direction | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> LogQuery:
        """A log filter; ``number`` as an admin types it (national, E.164, ``+33*``)."""
        if number is not None:
            number = LogQuery.parse_number(number, self.settings.default_region)
        return LogQuery(campaign, number, outcome, direction, since, until)

    async def recent(
        self, query: LogQuery, limit: int = 50, before: Order | None = None
    ) -> tuple[list[AttemptRecord], str]:
        return await recent_attempts(self.table, query, limit, before)

    def follow(
        self, query: LogQuery, after: str, stop: Callable[[], bool] | None = None
    ) -> AsyncIterator[AttemptRecord]:
        return follow_attempts(self.table, query, after, stop=stop)
