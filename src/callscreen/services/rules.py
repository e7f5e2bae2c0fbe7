"""Rules every service applies the same way: reading entries typed by an admin, the
limits of free text, broad permanent approvals, which lists a command may change (not
a national registry's: :func:`writable_list`), and writing a change to the audit
trail with its actor."""

from __future__ import annotations

from collections.abc import Iterable

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from callscreen.core.errors import InvalidInput, InvalidNumber, NeedsConfirmation
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
