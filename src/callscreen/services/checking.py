"""The check service: what a call would get, through the screening core itself (one
Redis round trip, as on a real call), with every matching entry and why the winner
won."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.precedence import Match, contenders, rank, specificity
from callscreen.callpath.screener import Screener
from callscreen.core.errors import InvalidInput, TooLarge
from callscreen.core.model import Direction, Scope, Status
from callscreen.services.context import Context
from callscreen.services.views import CheckResult, MatchView, Verdict

#: The most numbers one check takes (``POST /check``: a lead file goes in slices).
MAX_CHECK = 10_000


class CheckService:
    """Checks numbers as the gateway would."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def lists_applied(self, direction: Direction, campaign: str = "") -> list[str]:
        """The lists a call in ``direction`` for ``campaign`` is screened against."""
        table = self.ctx.table
        assigned = {info.id for info in await table.campaign_lists(campaign)} if campaign else set()
        return [
            info.name
            for info in await table.all_lists()
            if (info.scope is Scope.GLOBAL or info.id in assigned)
            and info.direction in (Direction.BOTH, direction)
        ]

    async def decide_many(
        self,
        numbers: Sequence[str],
        direction: Direction,
        campaign: str = "",
        *,
        screener: Screener | None = None,
    ) -> list[Decision]:
        """What a call to each of ``numbers`` would get now, in order: the gateway's own
        reading of the number and precedence (:meth:`Screener.decide_many
        <callscreen.callpath.screener.Screener.decide_many>`), the lookups a few dozen
        numbers to a call of the gateway's lookup script, pipelined. ``screener``: a
        long-lived one (the API's); else one is made for this call. How a dialer scrubs
        a lead file: at most :data:`MAX_CHECK` numbers a call."""
        if direction is Direction.BOTH:
            raise InvalidInput("a call is inbound or outbound")
        if len(numbers) > MAX_CHECK:
            raise TooLarge(f"at most {MAX_CHECK} numbers a check ({len(numbers)} given)")
        if screener is not None:
            return await screener.decide_many(numbers, direction, campaign)
        client = LeanRedis.from_settings(self.ctx.settings)
        try:
            own = Screener(self.ctx.settings, client, clock=self.ctx.clock)
            return await own.decide_many(numbers, direction, campaign)
        finally:
            await client.close()

    async def scrub(
        self,
        numbers: Iterable[str],
        direction: Direction,
        campaign: str = "",
        *,
        size: int = MAX_CHECK,
    ) -> AsyncGenerator[list[Verdict], None]:
        """What a call to each of ``numbers`` would get now, however many: a slice of
        ``size`` numbers read from ``numbers`` at a time, each slice's verdicts yielded in
        order before the next is read, all on one connection (how ``callscreen scrub``
        goes through a lead file of any length in bounded memory). Each slice is
        :meth:`decide_many`'s work; a Redis failure raises and ends the scrub."""
        if direction is Direction.BOTH:
            raise InvalidInput("a call is inbound or outbound")
        client = LeanRedis.from_settings(self.ctx.settings)
        try:
            screener = Screener(self.ctx.settings, client, clock=self.ctx.clock)
            part: list[str] = []
            for raw in numbers:
                part.append(raw)
                if len(part) >= size:
                    yield await self._verdicts(screener, part, direction, campaign)
                    part = []
            if part:
                yield await self._verdicts(screener, part, direction, campaign)
        finally:
            await client.close()

    @staticmethod
    async def _verdicts(
        screener: Screener, numbers: list[str], direction: Direction, campaign: str
    ) -> list[Verdict]:
        decisions = await screener.decide_many(numbers, direction, campaign)
        return [Verdict.of(raw, d) for raw, d in zip(numbers, decisions, strict=True)]

    async def check(
        self, number: str, direction: Direction = Direction.INBOUND, campaign: str = ""
    ) -> CheckResult:
        """What a call would get, with every matching entry, enforced or not."""
        if direction is Direction.BOTH:
            raise InvalidInput("a call is inbound or outbound")
        settings = self.ctx.settings
        client = LeanRedis.from_settings(settings)
        try:
            screener = Screener(settings, client, clock=self.ctx.clock)
            decision = await screener.decide(
                ScreenRequest(number, direction, campaign), include_inactive=True
            )
        finally:
            await client.close()
        applied = await self.lists_applied(direction, campaign)
        return check_result(number, direction, campaign, decision, applied)


def check_result(
    number: str,
    direction: Direction,
    campaign: str,
    decision: Decision,
    applied: Sequence[str],
) -> CheckResult:
    """The view of ``decision`` for ``number``."""
    winner = next(
        (
            m
            for m in decision.matches
            if m.enforced and m.list_name == decision.list_name and m.display == decision.match
        ),
        None,
    )
    views = tuple(
        MatchView(
            list_name=m.list_name,
            action=m.action,
            entry=m.display,
            kind="registry" if m.registry else "prefix" if m.is_prefix else "number",
            status=m.status,
            enforced=m.enforced,
            decides=m is winner,
            reason=m.reason,
            source=m.source,
        )
        for m in sorted(decision.matches, key=rank)
    )
    return CheckResult(
        input=number,
        direction=direction,
        campaign=campaign,
        result=decision.result.value,
        label=decision.label,
        number=decision.number,
        list_name=decision.list_name,
        match=decision.match,
        reason=decision.reason,
        explanation=explain(decision, applied),
        lists_applied=tuple(applied),
        matches=views,
    )


# -- explanations ----------------------------------------------------------------------

_STATUS_WORDS = {
    Status.PENDING: "pending review",
    Status.DELETED: "removed",
    Status.EXPIRED: "expired",
}


def _kind(match: Match) -> str:
    if match.registry:
        return "national registry listing"
    return f"prefix of {len(match.digits)} digits" if match.is_prefix else "exact number"


def explain(decision: Decision, lists_applied: Sequence[str] = ()) -> str:
    """Why a decision came out as it did, in words (precedence rules included)."""
    matches = decision.matches
    if not decision.number:
        return decision.reason or "no number to screen"
    if not matches and decision.reason:
        return decision.reason
    ignored = [m for m in matches if not m.enforced]
    ignored_text = ""
    if ignored:
        parts = [
            f"{m.display} in {m.list_name!r} ({_STATUS_WORDS.get(m.status, m.status)})"
            for m in ignored
        ]
        ignored_text = "; not enforced: " + ", ".join(parts)
    enforced = sorted(contenders(matches), key=rank)
    exempted = [m for m in matches if m.enforced and m not in enforced]
    if exempted:  # registry listings an allow entry of the company's own lists overrides
        names = ", ".join(sorted({repr(m.list_name) for m in exempted}))
        ignored_text += (
            f"; the registry listing in {names} is overridden by an allow entry of the "
            "company's own lists (established business relationship)"
        )
    if not enforced:
        if not matches:
            scope = (
                f"the {len(lists_applied)} lists that apply"
                if lists_applied
                else "any list that applies"
            )
            return f"no entry in {scope} matches {decision.number}: the call is allowed"
        return f"no enforced entry matches {decision.number}: the call is allowed" + ignored_text
    winner = enforced[0]
    head = f"{winner.display} ({_kind(winner)}) in {winner.list_name!r} ({winner.action}) decides"
    if len(enforced) == 1:
        return f"{head}: it is the only enforced match" + ignored_text
    runner = enforced[1]
    if specificity(winner) != specificity(runner):
        if not winner.is_prefix:
            why = f"an exact number beats any prefix ({runner.display} in {runner.list_name!r})"
        else:
            why = f"a longer prefix beats a shorter one ({runner.display} in {runner.list_name!r})"
    elif winner.action != runner.action:
        why = (
            f"at equal specificity block beats label beats allow ({runner.action} by "
            f"{runner.display} in {runner.list_name!r})"
        )
    else:
        why = (
            f"the same {runner.action} entry is also in {runner.list_name!r}; at a full tie "
            "the list whose name sorts first decides"
        )
    return f"{head}: {why}" + ignored_text
