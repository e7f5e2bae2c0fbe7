"""Log lines that a hostile peer can cause, rate-limited: the first line of each cause
in an interval is written, the rest are counted and summed up in one line per
interval (``suppressed 85999 similar lines in the last 10 s: protocol_error=85000,
not_allowed=999``). Pure bookkeeping over :mod:`logging`; the clock is a parameter."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["LogLimiter", "clean"]

#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators:
#: what a logged value from outside must not carry into a log line as itself.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def clean(value: object, limit: int = 200) -> str:
    """``value`` as text that is safe inside one log line: control characters escaped
    (``\\n`` becomes ``\\x0a``), backslashes doubled, cut at ``limit`` characters
    (``…`` marks the cut). For values that came from outside: file names, caller
    names, numbers, campaigns, peer input."""
    text = str(value).replace("\\", "\\\\").translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LogLimiter:
    """At most one line per cause per ``interval`` seconds on ``logger``; the others
    are counted and summed up by :meth:`flush` (called by :meth:`log` once the interval
    is over, and by the owner's timer so that the last counts are not lost).

    ``counts`` keeps every cause's total for the metrics."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.counts: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._logged: set[str] = set()
        self._since = clock()

    def log(self, level: int, cause: str, msg: str, *args: object) -> bool:
        """Count one event of ``cause``; write its line if it is the first of its cause
        in this interval. Returns whether it was written (False: suppressed, and the
        owner may want to make sure :meth:`flush` runs later)."""
        self.counts[cause] = self.counts.get(cause, 0) + 1
        if self.clock() - self._since >= self.interval:
            self.flush()
        if cause in self._logged:
            self._suppressed[cause] = self._suppressed.get(cause, 0) + 1
            return False
        self._logged.add(cause)
        self.logger.log(level, msg, *args)
        return True

    @property
    def pending(self) -> bool:
        """Whether suppressed lines wait for their summary."""
        return bool(self._suppressed)

    def flush(self) -> None:
        """Write the summary of the lines suppressed since the last one, and start a
        new interval."""
        now = self.clock()
        if self._suppressed:
            total = sum(self._suppressed.values())
            causes = ", ".join(f"{c}={n}" for c, n in sorted(self._suppressed.items()))
            self.logger.warning(
                "suppressed %d similar lines in the last %.0f s: %s",
                total,
                max(now - self._since, 0.0),
                causes,
            )
        self._suppressed = {}
        self._logged = set()
        self._since = now
