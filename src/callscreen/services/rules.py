"""Rules every service applies the same way: reading entries typed by an admin, the
limits of free text, broad permanent approvals, which lists a command may change (not
a national registry's: :func:`writable_list`), what a list holding permanent entries
may not become (:func:`keep_permanent`), and writing a change to the audit trail with
its actor."""

from __future__ import annotations

from collections.abc import Iterable

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from callscreen.core.errors import InvalidInput, InvalidNumber, NeedsConfirmation, Refused
from callscreen.core.model import Action, Direction, Scope
from callscreen.core.numbers import EntryKey, parse_entry_fast
from callscreen.services import audit
from callscreen.services.context import Context
from callscreen.services.entries import WriteSummary
from callscreen.services.table import ListInfo, refuse_registry

MAX_REASON = 500
MAX_EXTERNAL_ID = 64
MAX_PAGE = 10_000
DEFAULT_PAGE = 50
DEFAULT_SOURCE = "manual"

COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


def covers_country_code(key: EntryKey) -> bool:
    """Whether a prefix matches a whole country calling code (``+33*``, ``+1*``).

    :func:`~callscreen.core.numbers.parse_entry` refuses prefixes shorter than a country
    code, so these are the broadest prefixes an entry can be.
    """
    return key.is_prefix and key.digits in COUNTRY_CODES


def confirm_broad(keys: Iterable[EntryKey]) -> None:
    """:class:`NeedsConfirmation` if any of ``keys`` covers a whole country code."""
    broad = [key.display for key in keys if covers_country_code(key)]
    if broad:
        raise NeedsConfirmation(
            f"approving {', '.join(broad)} permanently covers a whole country code and "
            "cannot be undone and needs explicit confirmation"
        )


def parse_entries(raws: Iterable[str], region: str) -> list[EntryKey]:
    """Entries as typed by an admin, deduplicated; every bad one is reported."""
    keys: list[EntryKey] = []
    bad: list[str] = []
    for raw in raws:
        try:
            keys.append(parse_entry_fast(raw, region))
        except InvalidNumber as exc:
            bad.append(str(exc))
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InvalidNumber("; ".join(bad[:5]) + more)
    if not keys:
        raise InvalidInput("no entries given")
    return list(dict.fromkeys(keys))


async def writable_list(ctx: Context, name: str) -> ListInfo:
    """The list called ``name``, about to be changed: a national registry's list is
    refused (:class:`~callscreen.core.errors.Refused`), as it changes only through the
    registry service (:mod:`callscreen.services.registry`); reading it is allowed."""
    info = await ctx.table.get_list(name)
    refuse_registry(info)
    return info


def _covers(after: Direction, before: Direction) -> bool:
    return after is Direction.BOTH or after is before


def weakening(before: ListInfo, after: ListInfo | None) -> str:
    """What of a change to a list (``after``; None: deleting it) would stop its entries
    from blocking a call they block today, in words; empty when nothing would.

    Only ``block`` blocks (``label`` lets the call through, marked), so on a block list
    any other action weakens it, as do a narrower direction (``both`` to ``inbound``,
    ``inbound`` to ``outbound``) and a global scope turned to campaigns only. Renaming,
    the description, widening the direction and campaign to global scope keep every
    block. The check does not depend on the campaigns a campaign list is assigned to
    now: its entries would block again as soon as it is assigned. Deleting any list
    weakens it (its entries, whatever they do, go with it).
    """
    if after is None:
        return "deleting it"
    if before.action is not Action.BLOCK:
        return ""
    if after.action is not Action.BLOCK:
        return f"changing its action to {after.action.value}"
    if not _covers(after.direction, before.direction):
        return f"narrowing its direction from {before.direction.value} to {after.direction.value}"
    if before.scope is Scope.GLOBAL and after.scope is Scope.CAMPAIGN:
        return "turning it from global to campaign-only"
    return ""


def unassigning(info: ListInfo, campaign: str) -> str:
    """What taking ``info`` out of ``campaign``'s lists would weaken, in words: a
    campaign-only block list then stops blocking that campaign's calls (a global list
    applies to every call whether assigned or not)."""
    if info.scope is Scope.CAMPAIGN and info.action is Action.BLOCK:
        return f"removing it from campaign {campaign!r}"
    return ""


def keep_permanent(info: ListInfo, change: str, permanent: int) -> None:
    """Permanent means permanent at the list level: :class:`Refused` when ``change``
    (from :func:`weakening` or :func:`unassigning`) is not empty and the list holds
    ``permanent`` (> 0) permanently approved entries, naming how many are in the way.

    The callers read ``permanent`` from the list's counts inside the transaction that
    makes the change (:class:`~callscreen.services.table.Table` watches them), so an
    entry approved permanently meanwhile makes the change retry, and then refuse.
    """
    if change and permanent > 0:
        what = "entry" if permanent == 1 else "entries"
        raise Refused(
            f"list {info.name!r} holds {permanent} permanently approved {what}: {change} "
            "is refused (a permanent entry keeps blocking every call it blocks today)"
        )


def list_guard(before: ListInfo, after: ListInfo | None, permanent: int) -> None:
    """:func:`keep_permanent` for a change of a list's settings or its deletion."""
    keep_permanent(before, weakening(before, after), permanent)


def assignment_guard(info: ListInfo, campaign: str, permanent: int) -> None:
    """:func:`keep_permanent` for taking a list out of a campaign."""
    keep_permanent(info, unassigning(info, campaign), permanent)


async def record_change(
    ctx: Context,
    info: ListInfo,
    op: str,
    summary: WriteSummary,
    *,
    reason: str = "",
    batch: int | None = None,
    detail: str = "",
) -> None:
    """One audit event for a change to entries, if it changed any."""
    if summary.changed:
        await audit.record(
            ctx.table,
            info.id,
            op,
            by=ctx.actor.name,
            via=ctx.actor.via,
            list_name=info.name,
            reason=reason,
            count=summary.changed,
            entries=summary.sample,
            batch=batch,
            detail=detail,
        )


async def record(
    ctx: Context,
    list_id: int | None,
    op: str,
    *,
    list_name: str = "",
    reason: str = "",
    detail: str = "",
) -> None:
    """One audit event for a change to a list as a whole or to campaigns."""
    await audit.record(
        ctx.table,
        list_id,
        op,
        by=ctx.actor.name,
        via=ctx.actor.via,
        list_name=list_name,
        reason=reason,
        detail=detail,
    )
