"""``callscreen history``: the audit trail, and its export for archiving."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Annotated

import typer

from callscreen.cli import app, fail
from callscreen.cli.common import JsonOption, call, console, emit_json
from callscreen.cli.exits import EXIT_USAGE
from callscreen.services.audit import Cursor, Event
from callscreen.services.facade import Services
from callscreen.services.history import EXPORT_SETTLE_S
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
    export: Annotated[
        str | None,
        typer.Option(
            help="Append the whole trail (every list, deleted ones too, and the global "
            "trail), oldest first, to this file as JSON lines ('-': standard output).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            help="With --export: only the events after this cursor (MS-SEQ@LIST, as each "
            "exported line's `cursor` gives it).",
            metavar="CURSOR",
            show_default=False,
        ),
    ] = None,
    cursor_file: Annotated[
        Path | None,
        typer.Option(
            help="With --export: resume from the cursor kept in this file (unless --after), "
            "and keep the new one there once the events are written.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --export: leave the events of the last SECONDS to the next run "
            "(writers on hosts whose clocks lag may still add older ones).",
            metavar="SECONDS",
        ),
    ] = EXPORT_SETTLE_S,
    json_out: JsonOption = False,
) -> None:
    """The changes to a list (or one entry of it), most recent first.

    A deleted list's history is kept: its name gives the latest deleted list of that
    name (unless a list has that name again), `--id` an older one.

    `--export FILE` archives the whole trail instead, resumable with `--after` or
    `--cursor-file` (docs/operations.md has a daily cron line)."""
    if export is not None:
        if list_name is not None or list_id is not None:
            raise fail("--export takes the whole trail: no LIST, ENTRY or --id", EXIT_USAGE)
        export_trail(ctx, export, after, cursor_file, settle, json_out)
        return
    if after is not None or cursor_file is not None:
        raise fail("--after and --cursor-file go with --export", EXIT_USAGE)

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
        line = f"{data['at']}  {actor_of(event.by, data.get('via'))}  {what}"
        if event.detail:
            line += f" ({event.detail})"
        if event.reason:
            line += f": {event.reason}"
        console.print(line)
        if event.entries and len(event.entries) <= 10:
            console.print("    " + " ".join(event.entries))


def actor_of(by: str, via: object) -> str:
    """Who made a change as the text history shows it: the actor, and beside it where
    the command ran when it is known (``alice (os: root@pbx1)``), so that a false
    ``--by`` is visible."""
    if not isinstance(via, str) or not via:
        return by
    shown = f"os: {via[4:]}" if via.startswith("cli:") else via
    return f"{by} ({shown})"


def export_trail(
    ctx: typer.Context,
    target: str,
    after: str | None,
    cursor_file: Path | None,
    settle: float,
    json_out: bool,
) -> None:
    """Append the trail past the cursor to ``target`` as JSON lines; keep the new
    cursor in ``cursor_file``; say how many events and the cursor to resume from."""
    if after is None and cursor_file is not None and cursor_file.exists():
        after = cursor_file.read_text(encoding="utf-8").strip() or None

    async def work(s: Services) -> tuple[int, str | None]:
        count, last = 0, after
        events = s.history.export(after, settle_s=settle)
        with contextlib.ExitStack() as stack:
            out: IO[str] = sys.stdout
            if target != "-":
                out = stack.enter_context(open(target, "a", encoding="utf-8"))
            async for event in events:
                out.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                count += 1
                last = str(event.cursor)
            out.flush()
            if target != "-":
                os.fsync(out.fileno())  # written for good before the cursor moves on
        return count, last

    if after is not None:
        Cursor.parse(after)  # refused before the file is touched

    count, last = call(ctx, work)
    if cursor_file is not None and last is not None:
        part = cursor_file.with_name(cursor_file.name + ".part")
        part.write_text(last + "\n", encoding="utf-8")
        part.replace(cursor_file)  # the old cursor stays until the new one is whole
    summary = {"exported": count, "cursor": last}
    if json_out and target != "-":
        emit_json(summary)
        return
    what = f"exported {count} event{'' if count == 1 else 's'}"
    if target != "-":
        what += f" to {target}"
    if settle > 0:
        what += f" (the last {settle:g} s are left to the next run; --settle 0 takes them)"
    line = what + (f"; resume with --after {last}" if last else "")
    if target == "-":
        typer.echo(line, err=True)
    else:
        console.print(line, soft_wrap=True)
