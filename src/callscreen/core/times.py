"""Times as admins write and read them. Pure functions, no I/O.

Stored times are epoch seconds. Shown times are ISO 8601 in UTC, with milliseconds
in JSON (``2027-01-31T00:00:00.000Z``, :func:`iso_ms`). Input is either a duration
(``90s``, ``15m``, ``12h``, ``30d``, ``2w``) or a date or date-time in ISO 8601 (``2027-01-31``,
``2027-01-31T18:00``, ``2027-01-31T18:00:00+01:00``); a time without an offset is UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

from callscreen.core.errors import InvalidInput

_DURATION = re.compile(r"(\d{1,9})\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso(ts: float | None) -> str | None:
    """``2027-01-31T00:00:00Z`` for an epoch time (None for None), to the second: for
    times written into text (a reason, a note)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts: float | None) -> str | None:
    """``2027-01-31T00:00:00.000Z`` for an epoch time (None for None): every time in
    the JSON of the services, the CLI and the HTTP API (ISO 8601, UTC, milliseconds)."""
    if ts is None:
        return None
    whole = int(ts)
    ms = int((ts - whole) * 1000)  # truncated, as the stored milliseconds are
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def duration(text: str) -> int | None:
    """Seconds of ``30d``-style text, or None if it is not a duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_datetime(text: str, what: str) -> datetime:
    """The moment an ISO 8601 date or date-time names (``2027-01-31``,
    ``2027-01-31T18:00``, ``…Z``, ``…+01:00``, with or without fractions of a second);
    a time without an offset is UTC. The one date parser: admins' options and the
    times of an imported file (old and new formats alike) go through it."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what} is not a date or date-time: {value[:40]!r} (e.g. 2027-01-31 or "
            "2027-01-31T18:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _datetime(text: str, what: str) -> tuple[datetime, bool]:
    """The moment ``text`` names, and whether it was a bare date; a duration's
    spelling is suggested when it is neither."""
    try:
        return parse_datetime(text, what), len(text.strip()) == 10
    except InvalidInput:
        raise InvalidInput(
            f"{what} must be a duration like 30d or a date like 2027-01-31: {text!r}"
        ) from None


def parse_expiry(text: str, now: float) -> int:
    """When an entry given ``--expires TEXT`` at ``now`` stops matching (epoch seconds).

    A duration counts from now. A bare date keeps the entry through that whole day
    (UTC): ``2027-01-31`` expires at ``2027-02-01T00:00:00Z``. A date-time is exact.
    Expiries are whole seconds, rounded up: an entry never stops matching before the
    time asked (``1s`` given at ``…:00.9`` runs to ``…:02``, not ``…:01``).
    """
    seconds = duration(text)
    if seconds is not None:
        return math.ceil(now + seconds)
    moment, bare = _datetime(text, "--expires")
    if bare:
        moment += timedelta(days=1)
    return math.ceil(moment.timestamp())


def parse_before(text: str, now: float) -> float:
    """The cutoff of ``--before TEXT`` at ``now``: a duration means that long ago; a
    bare date means the start of that day (UTC)."""
    seconds = duration(text)
    if seconds is not None:
        return now - seconds
    moment, _bare = _datetime(text, "--before")
    return moment.timestamp()
