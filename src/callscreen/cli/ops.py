"""``callscreen health``: whether this host's gateway can take calls (exit code 0/1)."""

from __future__ import annotations

from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import JsonOption, console, emit_json, settings
from callscreen.gateway.health import run_health


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
    report = run_health(settings(ctx), timeout)
    if json_out:
        emit_json(report.to_json())
    else:
        for check in report.checks:
            state = "ok  " if check.ok else "FAIL"
            console.print(
                f"{state} {check.name:5} {check.target}: {check.detail} ({check.ms:.1f} ms)"
            )
    raise typer.Exit(0 if report.ok else 1)
