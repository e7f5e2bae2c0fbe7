"""``callscreen check`` (what a call would get, and why) and ``callscreen serve``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from callscreen.cli import app
from callscreen.cli.common import JsonOption, call, console, emit_json, settings
from callscreen.core.model import Direction
from callscreen.services.facade import Services
from callscreen.services.views import CheckResult


@app.command("check")
def check(
    ctx: typer.Context,
    number: Annotated[
        str,
        typer.Argument(
            help="The number, as the dialplan would pass it.", metavar="NUMBER", show_default=False
        ),
    ],
    direction: Annotated[
        Direction,
        typer.Option(help="inbound, outbound, or both (inbound's decision, then outbound's)."),
    ] = Direction.INBOUND,
    campaign: Annotated[str, typer.Option(help="The call's campaign, if any.")] = "",
    json_out: JsonOption = False,
) -> None:
    """What a call would get: every entry that matches in every list that applies
    (pending, removed and expired ones shown as not enforced), which one decides and why.
    With ``--direction both``: an inbound call's answer, then an outbound call's (``--json``:
    a list of the two)."""
    if direction is Direction.BOTH:

        async def work(s: Services) -> list[CheckResult]:
            return [
                await s.checks.check(number, one, campaign)
                for one in (Direction.INBOUND, Direction.OUTBOUND)
            ]

        results = call(ctx, work)
        if json_out:
            emit_json([result.to_json() for result in results])
            return
        for i, result in enumerate(results):
            if i:
                console.print()
            _render(result)
        return
    result = call(ctx, lambda s: s.checks.check(number, direction, campaign))
    if json_out:
        emit_json(result.to_json())
        return
    _render(result)


def _render(result: CheckResult) -> None:
    head = f"{result.result}  {result.number or result.input}"
    if result.list_name:
        head += f"  list {result.list_name}, entry {result.match}"
    if result.reason:
        head += f"  ({result.reason})"
    console.print(head)
    console.print(f"why: {result.explanation}")
    applied = ", ".join(result.lists_applied) or "none"
    console.print(
        f"lists that apply ({result.direction}"
        f"{', campaign ' + result.campaign if result.campaign else ''}): {applied}"
    )
    if result.matches:
        table = RichTable(box=None, pad_edge=False)
        for column in ("", "list", "action", "entry", "status", "reason"):
            table.add_column(column)
        for m in result.matches:
            status = m.status if m.enforced else f"{m.status} (not enforced)"
            table.add_row(
                "*" if m.decides else "", m.list_name, m.action, m.entry, status, m.reason
            )
        console.print(table)


@app.command("serve")
def serve(
    ctx: typer.Context,
    local_redis: Annotated[
        bool,
        typer.Option(
            "--local-redis", help="Start a private Redis for the gateway (no setup needed)."
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Gateway processes on the one port (SO_REUSEPORT), supervised; "
            "limits such as max_connections hold per worker.",
        ),
    ] = 1,
) -> None:
    """Run the FastAGI gateway until stopped (Ctrl-C, SIGTERM)."""
    if workers > 1:
        from callscreen.gateway.workers import run_workers

        raise typer.Exit(run_workers(settings(ctx), workers, local_redis=local_redis))
    from callscreen.gateway.serve import run

    code = run(settings(ctx), local_redis=local_redis)
    raise typer.Exit(code)
