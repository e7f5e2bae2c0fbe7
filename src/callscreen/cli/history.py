"""``callscreen history``: the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from callscreen.cli import app, fail
from callscreen.cli.common import JsonOption, call, console, emit_json
from callscreen.cli.exits import EXIT_USAGE
from callscreen.services.audit import Event
from callscreen.services.facade import Services
from callscreen.services.table import Tombstone


@app.command("history")
def history(
    ctx: typer.Context,
    list_name: Annotated[
        str | None,
        typer.Argument(
            help="The list (none: lists and campaigns).", metavar="LIST", show_default=False
        ),
    ] = None,
    entry: Annotated[
        str | None,
        typer.Argument(help="Only changes to this entry.", metavar="ENTRY", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many changes.")] = 50,
    list_id: Annotated[
        int | None,
        typer.Option(
            "--id",
            min=1,
            help="The list of that name with this id (a deleted one: its delete record "
            "names its id).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """The changes to a list (or one entry of it), most recent first.

    A deleted list's history is kept: its name gives the latest deleted list of that
    name (unless a list has that name again), `--id` an older one."""

    async def work(s: Services) -> tuple[Tombstone | None, list[Event]]:
        events = await s.history.history(list_name, entry, limit=limit, list_id=list_id)
        tomb = None if list_name is None else await s.history.tombstone(list_name, list_id)
        return tomb, events

    if list_id is not None and list_name is None:
        raise fail("--id needs a LIST", EXIT_USAGE)
    tomb, events = call(ctx, work)
    if json_out:
        emit_json([event.to_json() for event in events])
        return
    if tomb is not None:
        line = f"list {tomb.list_name} (id {tomb.list_id}) deleted {tomb.to_json()['at']}"
        line += f" by {tomb.by}, {tomb.count} entries ({tomb.detail})"
        console.print(line + (f": {tomb.reason}" if tomb.reason else ""))
    if not events:
        console.print("no changes recorded")
        return
    for event in events:
        data = event.to_json()
        what = event.op
        if event.count:
            what += f" {event.count} entr{'y' if event.count == 1 else 'ies'}"
        if event.list_name and list_name is None:
            what += f" list {event.list_name}"
        line = f"{data['at']}  {event.by}  {what}"
        if event.detail:
            line += f" ({event.detail})"
        if event.reason:
            line += f": {event.reason}"
        console.print(line)
        if event.entries and len(event.entries) <= 10:
            console.print("    " + " ".join(event.entries))
