"""``callscreen health`` (whether this host's gateway can take calls, exit code 0/1)
and ``callscreen migrate`` (upgrade the data in Redis to this release's layout)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json, settings
from callscreen.gateway.health import check_health


@app.command("health")
def health(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.01, help="Seconds allowed to each check.")
    ] = 2.0,
    json_out: JsonOption = False,
) -> None:
    """Check that Redis answers PING (through the gateway's connection settings) and
    that the FastAGI port (CALLSCREEN_LISTEN_HOST/PORT) accepts a connection. Exit 0
    when both do, 1 when either does not."""
    report = asyncio.run(check_health(settings(ctx), timeout))  # the command's one loop
    if json_out:
        emit_json(report.to_json())
    else:
        for check in report.checks:
            state = "ok  " if check.ok else "FAIL"
            console.print(
                f"{state} {check.name:5} {check.target}: {check.detail} ({check.ms:.1f} ms)"
            )
    raise typer.Exit(0 if report.ok else 1)


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; write nothing.")
    ] = False,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Upgrade the data in Redis to this release's schema version. Safe to repeat: it
    goes on where it stopped, and changes nothing once up to date. Every other
    command refuses to run on an older schema."""
    report = call(ctx, lambda s: s.schema.migrate(dry_run=dry_run), by=by, check_schema=False)
    if json_out:
        emit_json(report.to_json())
        return
    if report.stored is None:
        console.print(f"no data yet: it will be written at schema version {report.target}")
        return
    if report.stored == report.target and report.up_to_date:
        console.print(f"schema version {report.target}: up to date, nothing to do")
        return
    verb = "would upgrade" if dry_run else "upgraded"
    console.print(f"{verb} schema version {report.stored} to {report.target}")
    for step in report.steps:
        console.print(f"  {step}")
