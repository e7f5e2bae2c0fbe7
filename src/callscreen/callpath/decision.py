"""What a screened call is told: the decision and the dialplan variables it sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

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

#: The dialplan functions the screening answer also writes (MSet sends a name ending
#: in ``)`` to the function's write side): the CDR mark and a labeled caller's name.
CDR_USERFIELD: Final = "CDR(userfield)"
CALLER_NAME: Final = "CALLERID(name)"

#: Asterisk keeps at most 255 bytes of the CDR userfield (``AST_MAX_USER_FIELD``).
MAX_USERFIELD_BYTES: Final = 255

#: What a labeled inbound caller's name becomes: this prefix, then the name (or the
#: number when the call has no name).
LABEL_NAME_PREFIX: Final = "Blacklisted: "

#: The third field of the CDR mark of a fail-policy answer, by cause. The reason
#: itself stays in CALLSCREEN_REASON (it may name a Redis address: never in a CDR).
FAILED_CDR_CAUSE: Final = "screening unavailable"
BAD_REQUEST_CDR_CAUSE: Final = "bad request"

#: What Asterisk writes for a channel with no caller-ID name (``agi_calleridname``).
_NO_NAME = frozenset({"", "unknown"})
_CONTROL_TO_SPACE = dict.fromkeys([*range(32), 127], " ")


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
    (pending ones included when asked for), for ``check`` and the log. ``stripped``
    is what trailed an inbound caller ID's leading number and was not screened
    (``#``, ``:5060``, letters…): the attempt log then keeps the caller ID as given.
    """

    result: Result
    number: str = ""  # E.164 as screened, '' when there was none
    list_name: str = ""
    match: str = ""
    reason: str = ""
    failed: bool = False
    matches: tuple[Match, ...] = field(default=())
    stripped: str = ""  # inbound: what trailed the caller ID's leading number

    @property
    def label(self) -> str:
        if self.result in (Result.BLOCKED, Result.LABELED) and not self.failed:
            return LABEL
        return ""

    def log_fields(self) -> tuple[tuple[str, str], ...]:
        """The decision's ``key=value`` fields in the call's log line."""
        fields = (("result", self.result.value), ("list", self.list_name))
        return (*fields, ("failed", "yes")) if self.failed else fields

    @property
    def cdr_mark(self) -> str:
        """The CDR userfield for this decision, '' for ALLOWED (the field is then left
        as it was): ``callscreen:RESULT:DETAIL``, DETAIL being the deciding list, or
        for a fail-policy answer its cause (``screening unavailable``, ``bad request``),
        or else the reason (``anonymous caller (anonymous policy: label)``). The same
        form as the dialplan's own ``callscreen:BLOCKED:gateway unavailable``; never
        an address; cut to :data:`MAX_USERFIELD_BYTES`."""
        if self.result is Result.ALLOWED:
            return ""
        if self.list_name:
            detail = self.list_name
        elif self.failed:
            bad = self.reason.startswith("bad request")
            detail = BAD_REQUEST_CDR_CAUSE if bad else FAILED_CDR_CAUSE
        else:
            detail = self.reason
        return cut_utf8(f"callscreen:{self.result.value}:{detail}", MAX_USERFIELD_BYTES)

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

    def answer_variables(self, request: ScreenRequest | None) -> dict[str, str]:
        """What a screening answer sets: :meth:`variables`, then the dialplan
        functions the routine would otherwise set after the answer, so that an
        allowed call costs Asterisk the AGI call and one ``GotoIf``:

        - ``CDR(userfield)`` = :attr:`cdr_mark` unless ALLOWED;
        - for a LABELED inbound call, ``CALLERID(name)`` = ``Blacklisted: <name>``,
          the caller's number standing in for a missing name (Asterisk reports a
          missing name as ``unknown``). ``request`` is None when the request could not
          be read (a bad DIRECTION): no name is then set.
        """
        variables = self.variables()
        mark = self.cdr_mark
        if mark:
            variables[CDR_USERFIELD] = mark
        if (
            request is not None
            and self.result is Result.LABELED
            and request.direction is Direction.INBOUND
        ):
            name = request.callerid_name.translate(_CONTROL_TO_SPACE).strip()
            if name.lower() in _NO_NAME:
                name = request.number.strip()
            variables[CALLER_NAME] = LABEL_NAME_PREFIX + name
        return variables


def cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``limit`` bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")
