"""``callscreen log`` (recent attempts, ``--follow``) and ``callscreen report``."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import JsonOption, call, console
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction
from callscreen.core.times import parse_before
from callscreen.reports.render import (
    attempt_cells,
    attempt_json,
    attempts_table,
    report_csv,
    report_html,
    report_json,
    report_renderable,
    report_text,
)
from callscreen.reports.report import ReportService
from callscreen.schema.attempts import Outcome
from callscreen.services.facade import Services


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


def reports(services: Services) -> ReportService:
    """The reports reader over the command's context."""
    return ReportService(services.ctx.settings, services.ctx.table)


def _outcome(text: str | None) -> Outcome | None:
    if text is None:
        return None
    try:
        return Outcome(text.strip().upper())
    except ValueError:
        choices = ", ".join(o.value for o in Outcome)
        raise InvalidInput(f"--result must be one of {choices}: {text!r}") from None


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} must be a date like 2027-01-31: {text!r}") from None


@app.command("log")
def log_command(
    ctx: typer.Context,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only this campaign's calls.")
    ] = None,
    number: Annotated[
        str | None,
        typer.Option("--number", help="Only this number (as you would type it), or a prefix +33*."),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option(
            "--result",
            help="Only this result: ALLOWED, BLOCKED, LABELED, UNSCREENED, or "
            "BLOCKED_UNAVAILABLE (fail-closed blocks only).",
        ),
    ] = None,
    direction: Annotated[
        CallDirection | None, typer.Option("--direction", help="Only this direction.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this long ago (15m, 2h, 7d) or this date/time (UTC)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Up to this long ago or this date/time (UTC)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Then print new attempts as they come (Ctrl-C).")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Recent screened calls from the attempt log, oldest first (JSON: one object a line)."""

    async def work(services: Services) -> None:
        svc = reports(services)
        now = services.ctx.clock()
        query = svc.query(
            campaign=campaign,
            number=number,
            outcome=_outcome(result),
            direction=Direction(direction.value) if direction is not None else None,
            since=parse_before(since, now) if since else None,
            until=parse_before(until, now) if until else None,
        )
        records, last_id = await svc.recent(query, limit)
        tz = svc.log.timezone
        if json_out:
            for rec in records:
                typer.echo(attempt_json(rec))
        elif records or not follow:
            console.print(attempts_table(records, tz) if records else "no attempts match")
        if not follow:
            return
        async for rec in svc.follow(query, last_id):
            if json_out:
                typer.echo(attempt_json(rec))
            else:
                console.print(*attempt_cells(rec, tz), sep="  ")

    try:
        call(ctx, work)
    except KeyboardInterrupt:
        return


@app.command("report")
def report_command(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="First day, e.g. 2027-01-01 (log timezone).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day [default: today].")] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="The last N days, today included [default: 7]."),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option("--campaign", help='Only this campaign ("" for calls with no campaign).'),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=0, help="Rows of top numbers.")] = 20,
    numbers: Annotated[
        int,
        typer.Option("--numbers", min=0, help="Rows of lost/never-contacted numbers (0: all)."),
    ] = 1000,
    json_out: JsonOption = False,
) -> None:
    """Totals by result, direction, list, campaign and day; top blocked/labeled numbers;
    blacklisted numbers that had been contacted before (lost) or never were."""
    if since is not None and days is not None:
        raise InvalidInput("give --since or --days, not both")
    report = call(
        ctx,
        lambda s: reports(s).report(
            since=_day(since, "--since"),
            until=_day(until, "--until"),
            days=days,
            campaign=campaign,
            top=top,
            max_numbers=numbers,
        ),
    )
    if json_out:
        fmt = Format.JSON
    if fmt is Format.TABLE and output is None:
        console.print(report_renderable(report))
        return
    if fmt is Format.TABLE:
        text = report_text(report)
    else:
        text = {Format.CSV: report_csv, Format.JSON: report_json, Format.HTML: report_html}[fmt](
            report
        )
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"report written to {output}")
