"""What a screened call is told: the decision and the dialplan variables it sets."""

from __future__ import annotations

from dataclasses import dataclass, field

from callscreen.callpath.precedence import Match
from callscreen.core.model import LABEL, Direction, Result

VARIABLES = (
    "CALLSCREEN_RESULT",
    "CALLSCREEN_LABEL",
    "CALLSCREEN_LIST",
    "CALLSCREEN_MATCH",
    "CALLSCREEN_REASON",
    "CALLSCREEN_NUMBER",
)


@dataclass(frozen=True, slots=True)
class ScreenRequest:
    """One question: this number, in this direction, for this campaign."""

    number: str  # raw, as the dialplan gave it
    direction: Direction
    campaign: str = ""
    uniqueid: str = ""
    callerid_name: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a :class:`ScreenRequest`.

    ``failed`` marks answers given by the fail policy (screening unavailable); they
    are counted apart from list decisions. ``matches`` holds every entry that matched
    (pending ones included when asked for), for ``check`` and the log.
    """

    result: Result
    number: str = ""  # E.164 as screened, '' when there was none
    list_name: str = ""
    match: str = ""
    reason: str = ""
    failed: bool = False
    matches: tuple[Match, ...] = field(default=())

    @property
    def label(self) -> str:
        if self.result in (Result.BLOCKED, Result.LABELED) and not self.failed:
            return LABEL
        return ""

    def log_fields(self) -> tuple[tuple[str, str], ...]:
        """The decision's ``key=value`` fields in the call's log line."""
        fields = (("result", self.result.value), ("list", self.list_name))
        return (*fields, ("failed", "yes")) if self.failed else fields

    def variables(self) -> dict[str, str]:
        """Every ``CALLSCREEN_*`` variable, empty ones included, in a fixed order."""
        values = (
            self.result.value,
            self.label,
            self.list_name,
            self.match,
            self.reason,
            self.number,
        )
        return dict(zip(VARIABLES, values, strict=True))
