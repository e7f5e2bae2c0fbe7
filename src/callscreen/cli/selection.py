"""The filters ``approve``, ``unapprove``, ``remove`` and ``restore`` take instead of
entries (those of ``entries``, plus batch, source and creation time), ``--dry-run``,
and the rendering of a change by filter (:mod:`callscreen.services.bulkchanges`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from callscreen.asterisk.cascade import CascadeReport
from callscreen.cli import fail
from callscreen.cli.common import call, console, emit_json, interactive, outcome_line
from callscreen.cli.exits import EXIT_REFUSED, EXIT_USAGE
from callscreen.core.errors import NeedsConfirmation
from callscreen.core.model import Status
from callscreen.services.bulkchanges import BulkResult, Selection, selection_of
from callscreen.services.facade import Services

StatusFilter = Annotated[
    Status | None,
    typer.Option(
        "--status", help="Only entries of this status (as `entries`).", show_default=False
    ),
]
SearchFilter = Annotated[
    str,
    typer.Option("--search", help="Only entries starting with these digits (+3361, 061)."),
]
BatchFilter = Annotated[
    int | None,
    typer.Option(
        "--batch",
        min=1,
        help="Only entries created or last set by this change (its batch number).",
        show_default=False,
    ),
]
SourceFilter = Annotated[
    str,
    typer.Option("--source", help="Only entries whose last change came from this source."),
]
CreatedBefore = Annotated[
    str | None,
    typer.Option(
        "--created-before",
        help="Only entries created before this date (2026-01-01, UTC) or this long ago (90d).",
        show_default=False,
    ),
]
CreatedAfter = Annotated[
    str | None,
    typer.Option(
        "--created-after",
        help="Only entries created from this date (2026-01-01, UTC) or this long ago (30d).",
        show_default=False,
    ),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="With filters: print how many entries match; change nothing."),
]


def selection(
    entries: list[str] | None,
    *,
    status: Status | None,
    search: str,
    batch: int | None,
    source: str,
    created_before: str | None,
    created_after: str | None,
    dry_run: bool,
    now: float,
) -> Selection | None:
    """The filters given (None: entries were named instead); a usage error for both, or
    for ``--dry-run`` without filters."""
    chosen = selection_of(
        status=status,
        search=search,
        batch=batch,
        source=source,
        created_before=created_before,
        created_after=created_after,
        now=now,
    )
    if chosen is not None and entries:
        raise fail("give entries or filters, not both", EXIT_USAGE)
    if chosen is None and dry_run:
        raise fail("--dry-run goes with filters (--status, --search, ...)", EXIT_USAGE)
    return chosen


async def settle_all(services: Services, result: BulkResult) -> CascadeReport | None:
    """The cascades of every page of a change, waited for as one command's, merged."""
    merged: CascadeReport | None = None
    for change in result.changes:
        if change.cascade_job is None:
            continue
        report = await services.cascades.wait(change.cascade_job, services.ctx.settings)
        if report is None:
            continue
        if merged is None:
            merged = report
            continue
        merged = dataclasses.replace(
            merged,
            entries=merged.entries + report.entries,
            cancelled=merged.cancelled + report.cancelled,
            left_due=merged.left_due + report.left_due,
            hung_up=merged.hung_up + report.hung_up,
            notes=tuple(dict.fromkeys(merged.notes + report.notes)),
        )
    return merged


_WOULD = {"approve": "approve", "unapprove": "unapprove", "remove": "remove", "restore": "restore"}
_DONE = {"approve": "approved", "restore": "restored"}


def render_bulk(
    result: BulkResult, cascade: CascadeReport | None, filters: Selection, json_out: bool
) -> None:
    if json_out:
        data = result.to_json()
        data["cascade"] = cascade.to_json() if cascade is not None else None
        emit_json(data)
        return
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(result.by_status.items()))
    what = f"{result.matched} entr{'y' if result.matched == 1 else 'ies'}"
    where = f"{result.list_name} ({filters.describe()})"
    if result.dry_run:
        console.print(f"would {_WOULD[result.op]} {what} of {where}: {statuses or 'none'}")
        return
    if not result.matched:
        console.print(f"{where}: no entry matches; nothing to do")
        return
    changes = len(result.changes)
    batches = [str(c.batch) for c in result.changes if c.batch is not None]
    line = f"{result.list_name}: {outcome_line(result.outcomes)} of {what} matching"
    line += f" ({filters.describe()}), in {changes} change{'' if changes == 1 else 's'}"
    if batches:
        line += f" (batch {', '.join(batches[:10])}{', ...' if len(batches) > 10 else ''})"
    console.print(line)
    if cascade is not None:
        console.print(cascade.line(_DONE.get(result.op, result.op)))
        for note in cascade.notes:
            console.print(f"note: {note}")


def run_bulk(
    ctx: typer.Context,
    op: str,
    list_name: str,
    chosen: Selection,
    *,
    by: str,
    json_out: bool,
    reason: str = "",
    permanent: bool = False,
    confirm_country: bool = False,
    hangup_live: bool | None = None,
    dry_run: bool = False,
) -> None:
    """Change (or count) the entries ``chosen`` selects; a permanent approval of a
    whole country code asks at a terminal, as for named entries."""

    async def work(s: Services) -> tuple[BulkResult, CascadeReport | None]:
        async def change(confirm: bool) -> BulkResult:
            return await s.bulk.change(
                list_name,
                op,
                chosen,
                reason=reason,
                permanent=permanent,
                confirm_broad=confirm,
                hangup_live=hangup_live,
                dry_run=dry_run,
            )

        try:
            result = await change(confirm_country)
        except NeedsConfirmation as exc:
            if not interactive():
                raise fail(f"{exc} with --confirm-country", EXIT_REFUSED) from None
            if not typer.confirm(f"{exc}. Approve permanently?"):
                raise fail("nothing approved") from None
            result = await change(True)
        return result, await settle_all(s, result)

    result, cascade = call(ctx, work, by=by)
    render_bulk(result, cascade, chosen, json_out)
