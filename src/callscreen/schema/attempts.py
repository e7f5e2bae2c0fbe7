"""The attempt log's stored format: one record per screened call, and the encodings
of its day counters, listed numbers, deciders and first-contact marks.

Written by the gateway's writer (:mod:`callscreen.gateway.attemptlog`, which says
what each key holds and how long it is kept) and read by the reports
(:mod:`callscreen.reports.report`).
"""

from __future__ import annotations

import socket
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction, Result
from callscreen.core.times import iso_ms
from callscreen.schema.keys import (
    DAY_LISTED_BUCKETS,
    FIRST_CONTACT_BUCKETS,
    Keys,
    bucket_of,
    log_shard,
)

if TYPE_CHECKING:  # records are made from them; the call path is not imported for it
    from callscreen.callpath.decision import Decision, ScreenRequest


MAX_CALLERID_NAME = 80
MAX_CAMPAIGN = 200
MAX_REASON = 200
MAX_UNIQUEID = 64
MAX_NUMBER = 64
DROPPED_FIELD = "~dropped"
UNCOUNTED_FIELD = "~uncounted"

_DIR_CODE = {Direction.INBOUND: "i", Direction.OUTBOUND: "o", Direction.BOTH: "b"}
_CODE_DIR = {code: direction for direction, code in _DIR_CODE.items()}
_RESULT_CODE = {
    Result.ALLOWED: "A",
    Result.BLOCKED: "B",
    Result.LABELED: "L",
    Result.UNSCREENED: "U",
}
_CODE_RESULT = {code: result for result, code in _RESULT_CODE.items()}
LISTED_RESULTS = (Result.BLOCKED, Result.LABELED)
#: records of these results are evidence: kept in the shard's ``log:k`` stream, by age only
KEPT_RESULTS = LISTED_RESULTS
CONTACT_RESULTS = (Result.ALLOWED, Result.UNSCREENED)


class Outcome(StrEnum):
    """How a call ended up, as the counters and reports count it: the result, with
    fail-closed blocks (screening unavailable) counted apart from list blocks."""

    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    LABELED = "LABELED"
    UNSCREENED = "UNSCREENED"
    UNAVAILABLE = "BLOCKED_UNAVAILABLE"


#: a number's attempt index (``{LT}:log:n:DIGITS``) keeps each attempt as one of these
#: codes and the record's stream id; B, L and F records are in the stream kept by age
#: (keyed by the outcome's value, so that a Result's finds its outcome's code too)
INDEX_CODE: dict[str, str] = {
    Outcome.ALLOWED.value: "A",
    Outcome.UNSCREENED.value: "U",
    Outcome.BLOCKED.value: "B",
    Outcome.LABELED.value: "L",
    Outcome.UNAVAILABLE.value: "F",
}
INDEX_OUTCOME = {code: Outcome(value) for value, code in INDEX_CODE.items()}
KEPT_CODES = frozenset("BLF")


def outcome_of(result: Result, failed: bool) -> Outcome:
    if failed and result is Result.BLOCKED:
        return Outcome.UNAVAILABLE
    return Outcome(result.value)


# -- text and key encodings (shared with callscreen.reports.report) --------------------------------


def clean(text: str, limit: int) -> str:
    """``text`` without control, format, surrogate or line/paragraph-separator
    characters, cut to ``limit`` characters: safe for logs, terminals and CSV."""
    if text.isprintable() and len(text) <= limit:
        return text
    kept = "".join(
        ch for ch in text if unicodedata.category(ch)[0] != "C" and ch not in "\u2028\u2029"
    )
    return kept[:limit]


def counter_field(outcome: Outcome, direction: Direction, list_name: str, campaign: str) -> str:
    """The day-counter field of one combination (names hold no control characters)."""
    return f"{outcome.value}\t{direction.value}\t{list_name}\t{campaign}"


def parse_counter_field(text: str) -> tuple[Outcome, Direction, str, str] | None:
    """``(outcome, direction, list, campaign)``, or None for a special field."""
    parts = text.split("\t", 3)
    if len(parts) != 4:
        return None
    try:
        return Outcome(parts[0]), Direction(parts[1]), parts[2], parts[3]
    except ValueError:
        return None


def decider_value(list_name: str, match: str, number: str) -> str:
    """What ``{cs}:log:d:B`` keeps of the entry that blocked or labeled a number:
    ``list TAB entry``, the entry empty when it is the number itself."""
    return f"{list_name}\t{'' if match == number else match}"


def parse_decider(value: str, number: str) -> tuple[str, str]:
    """``(list, entry)`` of a :func:`decider_value`."""
    list_name, _, entry = value.partition("\t")
    return list_name, entry or number


def listed_location(
    keys: Keys, day: str, campaign: str, labeled: bool, digits: str
) -> tuple[str, str]:
    """The sorted set and member counting a number's blocked (labeled) calls of a day."""
    number = int(digits)
    return keys.day_listed(
        day, campaign, labeled, number % DAY_LISTED_BUCKETS, log_shard(number)
    ), digits


def e164_digits(number: str) -> str | None:
    """The digits of an E.164 number (``+`` and 7 to 15 digits), else None."""
    digits = number[1:]
    if number[:1] == "+" and 7 <= len(digits) <= 15 and digits.isdigit() and digits.isascii():
        return digits
    return None


def first_contact_location(keys: Keys, digits: str) -> tuple[str, str]:
    """The hash and field of a number's first-contact mark."""
    bucket, fieldno = bucket_of(int(digits), FIRST_CONTACT_BUCKETS)
    return keys.first_contact(bucket), str(fieldno)


def decider_location(keys: Keys, digits: str) -> tuple[str, str]:
    """The hash and field of the entry that last blocked or labeled a number."""
    bucket, fieldno = bucket_of(int(digits), FIRST_CONTACT_BUCKETS)
    return keys.decider(bucket), str(fieldno)


class DayClock:
    """Maps epoch seconds to the day key (``YYYYMMDD``) in one timezone, fast for
    times that fall in the same day as the previous one."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self._start = 1.0
        self._end = 0.0
        self._key = ""

    def day(self, t: float) -> str:
        if self._start <= t < self._end:
            return self._key
        local = datetime.fromtimestamp(t, self.tz).date()
        start, end = self.bounds(local)
        key = day_key(local)
        if start <= t < end:
            self._start, self._end, self._key = start, end, key
        return key

    def date_of(self, t: float) -> date:
        return datetime.fromtimestamp(t, self.tz).date()

    def bounds(self, day: date) -> tuple[float, float]:
        """The epoch seconds at which ``day`` starts and the next day starts."""
        after = day + timedelta(days=1)
        start = datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp()
        return start, datetime(after.year, after.month, after.day, tzinfo=self.tz).timestamp()


def day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


STREAM_FIELD = "v1"
_V1_FIELDS = (
    "time_ms", "direction", "number", "campaign", "result", "failed", "list", "entry",
    "reason", "uniqueid", "callerid_name", "node", "elapsed_us", "dialed",
)  # fmt: skip


def pack_fields(
    at: float,
    direction: Direction,
    number: str,
    campaign: str,
    result: Result,
    failed: bool,
    list_name: str,
    match: str,
    reason: str,
    uniqueid: str,
    callerid_name: str,
    node: str,
    elapsed_us: int,
    dialed: str,
) -> str:
    """The ``v1`` stream value of a record (see :meth:`AttemptRecord.pack`). An exact
    entry equal to the number is stored empty."""
    return "\t".join(
        (
            str(int(at * 1000)),
            _DIR_CODE[direction],
            number,
            campaign,
            _RESULT_CODE[result],
            "1" if failed else "",
            list_name,
            "" if match == number else match,
            reason,
            uniqueid,
            callerid_name,
            node,
            str(elapsed_us),
            dialed,
        )
    )


# -- settings and records --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How the attempt log is kept (see the module docstring for each limit)."""

    enabled: bool = True
    log_allowed: bool = True
    max_records: int = 1_000_000  # stream length bound; 0 = no count bound
    max_age_s: float = 0.0  # stream age bound; 0 = no age bound
    timezone: str = "UTC"
    counter_days: int = 0  # day counters expire this long after their last write; 0 = never
    # records of blocked/labeled calls, and the days' blocked/labeled numbers, are kept
    # this long (by age only, never by count); 0 = for ever
    blocked_days: int = 1830
    queue_max: int = 100_000
    batch_max: int = 256
    flush_interval_s: float = 0.05
    flush_timeout_s: float = 5.0
    key_tag: str = "cs"
    node: str = ""  # empty: the host name

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown timezone {self.timezone!r}") from exc
        counts = (self.max_records, self.counter_days, self.blocked_days)
        if min(counts) < 0 or self.max_age_s < 0:
            raise InvalidInput("log retention limits must not be negative")
        if self.queue_max < 1 or self.batch_max < 1:
            raise InvalidInput("log queue_max and batch_max must be at least 1")
        if self.flush_interval_s <= 0 or self.flush_timeout_s <= 0:
            raise InvalidInput("log flush interval and timeout must be positive")

    @property
    def node_name(self) -> str:
        return clean(self.node or socket.gethostname(), 64)

    @classmethod
    def from_settings(cls, settings: Settings) -> LogSettings:
        """Built from the ``calllog_*`` fields of the settings."""
        return cls(
            enabled=settings.calllog_enabled,
            log_allowed=settings.calllog_allowed,
            max_records=settings.calllog_max_records,
            max_age_s=settings.calllog_max_age_days * 86400,
            timezone=settings.calllog_timezone,
            counter_days=settings.calllog_counter_days,
            blocked_days=settings.calllog_blocked_days,
            queue_max=settings.calllog_queue_max,
            batch_max=settings.calllog_batch_max,
            flush_interval_s=settings.calllog_flush_interval_ms / 1000,
            key_tag=settings.key_tag,
            node=settings.node_name,
        )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One screened call, as logged.

    ``number`` is the E.164 number as screened (empty when there was none: anonymous
    callers, screening unavailable); ``dialed`` then holds what the dialplan gave, as
    it does when an inbound caller ID had text after its leading number that was not
    screened (``+33123456789#``, ``…:5060``, letters).
    Text that came from outside (caller-ID name, campaign, unique id) is cleaned of
    control characters and cut to a bounded length. ``id`` is the stream id of a
    record read back from Redis.
    """

    time: float
    direction: Direction
    number: str
    campaign: str
    result: Result
    failed: bool = False
    list_name: str = ""
    match: str = ""
    reason: str = ""
    uniqueid: str = ""
    callerid_name: str = ""
    node: str = ""
    elapsed_us: int = 0
    dialed: str = ""
    id: str = ""

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.result, self.failed)

    @classmethod
    def from_call(
        cls,
        at: float,
        request: ScreenRequest,
        decision: Decision,
        elapsed_s: float,
        node: str,
    ) -> AttemptRecord:
        number = clean(decision.number, MAX_NUMBER)
        return cls(
            time=at,
            direction=request.direction,
            number=number,
            campaign=clean(request.campaign, MAX_CAMPAIGN),
            result=decision.result,
            failed=decision.failed,
            list_name=decision.list_name,
            match=decision.match,
            reason=clean(decision.reason, MAX_REASON),
            uniqueid=clean(request.uniqueid, MAX_UNIQUEID),
            callerid_name=clean(request.callerid_name, MAX_CALLERID_NAME),
            node=node,
            elapsed_us=max(0, int(elapsed_s * 1_000_000)),
            dialed=""
            if number and not decision.stripped
            else clean(request.number.strip(), MAX_NUMBER),
        )

    def pack(self) -> str:
        """The record as stored: one stream field, ``v1``, whose value is the fields
        below joined by TAB (none of them can hold one: they are cleaned of control
        characters, and list names refuse them). One value a record keeps the stream
        small and the writer cheap; ``v1`` names the layout should it ever change."""
        return pack_fields(
            self.time,
            self.direction,
            self.number,
            self.campaign,
            self.result,
            self.failed,
            self.list_name,
            self.match,
            self.reason,
            self.uniqueid,
            self.callerid_name,
            self.node,
            self.elapsed_us,
            self.dialed,
        )

    @classmethod
    def unpack(cls, entry_id: str, value: str) -> AttemptRecord:
        """A record read back from the stream (the ``v1`` value of :meth:`pack`)."""
        parts = value.split("\t")
        parts += [""] * (len(_V1_FIELDS) - len(parts))
        (t, d, number, campaign, r, f, list_name, match, reason, uniqueid, cname, node, us,
         dialed) = parts[: len(_V1_FIELDS)]  # fmt: skip
        if not match and list_name:
            match = number
        return cls(
            time=int(t or 0) / 1000,
            direction=_CODE_DIR.get(d, Direction.BOTH),
            number=number,
            campaign=campaign,
            result=_CODE_RESULT.get(r, Result.UNSCREENED),
            failed=f == "1",
            list_name=list_name,
            match=match,
            reason=reason,
            uniqueid=uniqueid,
            callerid_name=cname,
            node=node,
            elapsed_us=int(us or 0),
            dialed=dialed,
            id=entry_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": iso_ms(self.time),
            "epoch_ms": int(self.time * 1000),
            "direction": self.direction.value,
            "number": self.number,
            "dialed": self.dialed,
            "campaign": self.campaign,
            "result": self.result.value,
            "outcome": self.outcome.value,
            "failed": self.failed,
            "list_name": self.list_name,
            "match": self.match,
            "reason": self.reason,
            "uniqueid": self.uniqueid,
            "callerid_name": self.callerid_name,
            "node": self.node,
            "elapsed_us": self.elapsed_us,
        }
