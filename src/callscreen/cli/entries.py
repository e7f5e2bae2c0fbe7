"""Entries and their life: ``add``, ``remove``, ``restore``, ``approve``, ``unapprove``,
``entries``, ``purge``."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Annotated

import typer
from rich.table import Table as RichTable

from callscreen.asterisk.cascade import CascadeReport
from callscreen.cli import app, fail
from callscreen.cli.common import (
    ByOption,
    JsonOption,
    call,
    console,
    emit_json,
    interactive,
    outcome_line,
    settled,
)
from callscreen.cli.exits import EXIT_REFUSED, EXIT_USAGE
from callscreen.cli.selection import (
    BatchFilter,
    CreatedAfter,
    CreatedBefore,
    DryRun,
    SearchFilter,
    SourceFilter,
    StatusFilter,
    run_bulk,
    selection,
)
from callscreen.core.errors import NeedsConfirmation
from callscreen.core.model import Status
from callscreen.services.facade import Services
from callscreen.services.rules import DEFAULT_PAGE
from callscreen.services.views import ChangeResult

ListArg = Annotated[
    str, typer.Argument(help="The list's name.", metavar="LIST", show_default=False)
]
HangupLiveOption = Annotated[
    bool | None,
    typer.Option(
        "--hangup-live/--no-hangup-live",
        help="On a block list, also hang up live calls to or from these numbers, via AMI "
        "[default: CALLSCREEN_CASCADE_HANGUP_LIVE, off].",
        show_default=False,
    ),
]
EntriesArg = Annotated[
    list[str],
    typer.Argument(
        help="Numbers (+33123456789, national with --region) or prefixes (+33*).",
        metavar="ENTRY",
        show_default=False,
    ),
]
ChosenArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Numbers (+33123456789) or prefixes (+33*); or filters instead (--status, "
        "--search, --batch, --source, --created-before, --created-after).",
        metavar="[ENTRY]...",
        show_default=False,
    ),
]

_SAID = {
    "added": "added",
    "updated": "updated (already in the list)",
    "restored": "restored (it had been removed)",
    "unchanged": "unchanged (already so)",
    "permanent-unchanged": "permanent, unchanged (a permanent entry's reason, expiry and "
    "external id never change)",
    "skipped": "skipped",
    "removed": "removed",
    "approved": "approved",
    "unapproved": "back to pending (not enforced)",
    "purged": "purged",
}


def render_change(result: ChangeResult, json_out: bool) -> None:
    if json_out:
        emit_json(result.to_json())
        return
    if len(result.entries) <= 20:
        for entry, outcome in result.entries.items():
            console.print(f"{entry}: {_SAID.get(outcome, outcome)}")
    console.print(f"{result.list_name}: {outcome_line(result.outcomes)}")
    for note in result.notes:
        console.print(f"note: {note}")
    render_cascade(result.cascade, result.cascade_job, _VERB.get(result.op, result.op))


def render_cascade(report: CascadeReport | None, job: str | None, verb: str) -> None:
    """What the cascade did, or that it is queued and the gateway has not said yet."""
    if report is not None:
        console.print(report.line(verb))
        for note in report.notes:
            console.print(f"note: {note}")
    elif job is not None:
        console.print(
            f"cascade queued (job {job}): the gateway has not reported yet; its log says "
            "what it cancels"
        )


_VERB = {"add": "enforced", "approve": "approved", "restore": "restored"}


@app.command("add")
def add(
    ctx: typer.Context,
    list_name: ListArg,
    entries: EntriesArg,
    reason: Annotated[str, typer.Option(help="Why these entries are listed.")] = "",
    external_id: Annotated[
        str, typer.Option("--external-id", help="An id in another system (CRM, ticket).")
    ] = "",
    expires: Annotated[
        str | None,
        typer.Option(
            help="Stop matching after a duration (30d, 12h) or a date (2027-01-31: through "
            "that day, UTC).",
            show_default=False,
        ),
    ] = None,
    by: ByOption = "",
    hangup_live: HangupLiveOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add entries, enforced at once. An entry already there is updated (and said so).
    On a block list, calls queued for them (Asterisk call files) are cancelled."""
    result = call(
        ctx,
        lambda s: settled(
            s,
            s.entries.add(
                list_name,
                entries,
                reason=reason,
                external_id=external_id,
                expires=expires,
                hangup_live=hangup_live,
            ),
        ),
        by=by,
    )
    render_change(result, json_out)


@app.command("remove")
def remove(
    ctx: typer.Context,
    list_name: ListArg,
    reason: Annotated[
        str, typer.Option(help="Why they are removed (required).", show_default=False)
    ],
    entries: ChosenArg = None,
    status: StatusFilter = None,
    search: SearchFilter = "",
    batch: BatchFilter = None,
    source: SourceFilter = "",
    created_before: CreatedBefore = None,
    created_after: CreatedAfter = None,
    dry_run: DryRun = False,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Soft-delete entries, named or every pending, active or expired one the filters
    select (--dry-run: count them): they stop matching at once, and are kept with who
    removed them, when and why. Permanent entries cannot be removed."""
    chosen = selection(
        entries, status=status, search=search, batch=batch, source=source,
        created_before=created_before, created_after=created_after, dry_run=dry_run,
        now=time.time(),
    )  # fmt: skip
    if chosen is not None:
        run_bulk(
            ctx, "remove", list_name, chosen, by=by, json_out=json_out, reason=reason,
            dry_run=dry_run,
        )  # fmt: skip
        return
    if not entries:
        raise fail("give the entries to remove, or filters", EXIT_USAGE)
    result = call(ctx, lambda s: s.entries.remove(list_name, entries, reason=reason), by=by)
    render_change(result, json_out)


@app.command("restore")
def restore(
    ctx: typer.Context,
    list_name: ListArg,
    entries: ChosenArg = None,
    reason: Annotated[str, typer.Option(help="Why they come back.")] = "",
    status: StatusFilter = None,
    search: SearchFilter = "",
    batch: BatchFilter = None,
    source: SourceFilter = "",
    created_before: CreatedBefore = None,
    created_after: CreatedAfter = None,
    dry_run: DryRun = False,
    by: ByOption = "",
    hangup_live: HangupLiveOption = None,
    json_out: JsonOption = False,
) -> None:
    """Bring removed entries back (active again), named or every removed one the
    filters select (--dry-run: count them). On a block list, calls queued for them are
    cancelled."""
    chosen = selection(
        entries, status=status, search=search, batch=batch, source=source,
        created_before=created_before, created_after=created_after, dry_run=dry_run,
        now=time.time(),
    )  # fmt: skip
    if chosen is not None:
        run_bulk(
            ctx, "restore", list_name, chosen, by=by, json_out=json_out, reason=reason,
            hangup_live=hangup_live, dry_run=dry_run,
        )  # fmt: skip
        return
    if not entries:
        raise fail("give the entries to restore, or filters", EXIT_USAGE)
    result = call(
        ctx,
        lambda s: settled(
            s, s.entries.restore(list_name, entries, reason=reason, hangup_live=hangup_live)
        ),
        by=by,
    )
    render_change(result, json_out)


@app.command("approve")
def approve(
    ctx: typer.Context,
    list_name: ListArg,
    entries: ChosenArg = None,
    all_pending: Annotated[
        bool, typer.Option("--all-pending", help="Approve every pending entry of the list.")
    ] = False,
    status: StatusFilter = None,
    search: SearchFilter = "",
    batch: BatchFilter = None,
    source: SourceFilter = "",
    created_before: CreatedBefore = None,
    created_after: CreatedAfter = None,
    dry_run: DryRun = False,
    permanent: Annotated[
        bool,
        typer.Option(
            "--permanent", help="Approve permanently: never again unapproved, removed or deleted."
        ),
    ] = False,
    confirm_country: Annotated[
        bool,
        typer.Option(
            "--confirm-country",
            help="Confirm approving permanently a prefix that is a whole country code (+33*).",
        ),
    ] = False,
    by: ByOption = "",
    hangup_live: HangupLiveOption = None,
    json_out: JsonOption = False,
) -> None:
    """Approve pending entries — named, --all-pending, or every one the filters select
    (--dry-run: count them; with --permanent, active ones too): they are enforced from
    now on. On a block list, calls queued for them are cancelled."""
    chosen = selection(
        entries, status=status, search=search, batch=batch, source=source,
        created_before=created_before, created_after=created_after, dry_run=dry_run,
        now=time.time(),
    )  # fmt: skip
    if chosen is not None:
        if all_pending:
            raise fail("--all-pending or filters, not both", EXIT_USAGE)
        run_bulk(
            ctx, "approve", list_name, chosen, by=by, json_out=json_out, permanent=permanent,
            confirm_country=confirm_country, hangup_live=hangup_live, dry_run=dry_run,
        )  # fmt: skip
        return

    async def work(s: Services) -> ChangeResult:
        def approve(confirm_broad: bool) -> Awaitable[ChangeResult]:
            return s.entries.approve(
                list_name,
                entries or [],
                all_pending=all_pending,
                permanent=permanent,
                confirm_broad=confirm_broad,
                hangup_live=hangup_live,
            )

        try:
            return await settled(s, approve(confirm_country))
        except NeedsConfirmation as exc:
            if not interactive():
                raise fail(f"{exc} with --confirm-country", EXIT_REFUSED) from None
            if not typer.confirm(f"{exc}. Approve permanently?"):
                raise fail("nothing approved") from None
            return await settled(s, approve(True))

    render_change(call(ctx, work, by=by), json_out)


@app.command("unapprove")
def unapprove(
    ctx: typer.Context,
    list_name: ListArg,
    entries: ChosenArg = None,
    status: StatusFilter = None,
    search: SearchFilter = "",
    batch: BatchFilter = None,
    source: SourceFilter = "",
    created_before: CreatedBefore = None,
    created_after: CreatedAfter = None,
    dry_run: DryRun = False,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Send active entries back to pending review (no longer enforced), named or every
    active one the filters select (--dry-run: count them). Permanent entries cannot be
    unapproved."""
    chosen = selection(
        entries, status=status, search=search, batch=batch, source=source,
        created_before=created_before, created_after=created_after, dry_run=dry_run,
        now=time.time(),
    )  # fmt: skip
    if chosen is not None:
        run_bulk(ctx, "unapprove", list_name, chosen, by=by, json_out=json_out, dry_run=dry_run)
        return
    if not entries:
        raise fail("give the entries to unapprove, or filters", EXIT_USAGE)
    render_change(call(ctx, lambda s: s.entries.unapprove(list_name, entries), by=by), json_out)


@app.command("entries")
def list_entries(
    ctx: typer.Context,
    list_name: ListArg,
    status: Annotated[Status | None, typer.Option(show_default=False)] = None,
    search: Annotated[
        str, typer.Option(help="Only entries starting with these digits (+3361, 061).")
    ] = "",
    limit: Annotated[int, typer.Option(min=0, help="At most this many entries.")] = DEFAULT_PAGE,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """A list's entries, sorted, with why they are listed, their last change (what,
    who, when), and totals."""
    page = call(
        ctx,
        lambda s: s.entries.list_entries(
            list_name, status=status, search=search, limit=limit, offset=offset
        ),
    )
    if json_out:
        emit_json(page.to_json())
        return
    if page.entries:
        table = RichTable(box=None, pad_edge=False)
        columns = ("entry", "status", "reason", "last change", "by", "at", "expires", "external id")
        for column in columns:
            table.add_column(column)
        for view in page.entries:
            reason, by, at = view.reason, view.updated_by, view.updated_at or ""
            if view.status is Status.DELETED:
                reason = f"removed: {view.removed_reason}"
            table.add_row(
                view.entry,
                view.status,
                reason,
                view.last_change,
                by,
                at,
                view.expires or "",
                view.external_id,
            )
        console.print(table)
    shown = len(page.entries)
    span = f"{page.offset + 1}-{page.offset + shown}" if shown else "none"
    filters = []
    if page.status:
        filters.append(f"status {page.status}")
    if page.search:
        filters.append(f"search {page.search}")
    filtered = f" ({', '.join(filters)})" if filters else ""
    c = page.counts
    console.print(
        f"showing {span} of {page.total}{filtered}; list "
        f"{page.list_name}: {c['active']} active, {c['permanent']} permanent, "
        f"{c['pending']} pending, {c['expired']} expired, {c['deleted']} deleted"
    )


@app.command("purge")
def purge(
    ctx: typer.Context,
    list_name: ListArg,
    before: Annotated[
        str,
        typer.Option(
            help="Purge entries removed before this date (2026-01-01) or this long ago (90d).",
            show_default=False,
        ),
    ],
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Delete for good the entries removed before a date."""
    render_change(call(ctx, lambda s: s.entries.purge(list_name, before), by=by), json_out)
