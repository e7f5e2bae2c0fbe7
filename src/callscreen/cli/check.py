"""``callscreen check`` (what a call would get, and why), ``callscreen scrub`` (what each
number of a file would get) and ``callscreen serve``."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.table import Table as RichTable

from callscreen.cli import app
from callscreen.cli.common import JsonOption, call, console, emit_json, settings
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction
from callscreen.reports.render import csv_cell
from callscreen.services.facade import Services
from callscreen.services.views import CheckResult, Verdict


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


def numbers_of(source: BinaryIO) -> Iterator[str]:
    """The numbers of a lead file: the first column of each row (a CSV, or one number a
    line), blank rows skipped, and a first row with no digit in its first column taken
    for a header and skipped. A line that is not UTF-8 text, or a row no CSV reader
    takes, is refused (:class:`InvalidInput`), naming its line."""
    at = 0

    def lines() -> Iterator[str]:
        nonlocal at
        for at, raw in enumerate(source, 1):
            yield raw.decode("utf-8-sig" if at == 1 else "utf-8")

    first = True
    try:
        for row in csv.reader(lines()):
            cell = row[0].strip() if row else ""
            if not cell:
                continue
            if first:
                first = False
                if not any(ch.isdigit() for ch in cell):
                    continue
            yield cell
    except UnicodeDecodeError:
        raise InvalidInput(f"line {at} of the file is not UTF-8 text") from None
    except csv.Error as exc:
        raise InvalidInput(f"line {at} of the file: {exc}") from None


@app.command("scrub")
def scrub(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            help="A lead file: one number a line, or a CSV whose first column is the "
            "number (a header row is skipped); - for standard input.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    direction: Annotated[
        Direction, typer.Option(help="inbound or outbound (the calls a dialer places).")
    ] = Direction.OUTBOUND,
    campaign: Annotated[str, typer.Option(help="The calls' campaign, if any.")] = "",
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Write the CSV here instead of standard output.", metavar="OUT"
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """What a call to each number of a file would get now, as the gateway would answer it
    (the check of ``POST /check``, for files of any length: 10,000 numbers a lookup
    batch). Writes a CSV ``input,result,label,number,list,entry,reason``, a row a number
    in the file's order, and the counts by result on standard error; ``--json``: one
    document as ``POST /check`` answers, instead of the CSV."""
    if direction is Direction.BOTH:
        raise typer.BadParameter("a call is inbound or outbound", param_hint="--direction")
    counts: Counter[str] = Counter()
    kept: list[Verdict] = []
    with contextlib.ExitStack() as stack:
        if file == "-":
            source: BinaryIO = sys.stdin.buffer
        else:
            try:
                source = stack.enter_context(open(file, "rb"))
            except OSError as exc:
                raise typer.BadParameter(f"{file}: {exc.strerror}", param_hint="FILE") from None
        out: TextIO = sys.stdout
        if output is not None and output != "-":
            out = stack.enter_context(open(output, "w", newline="", encoding="utf-8"))
        writer = csv.writer(out, lineterminator="\n")
        if not json_out:
            writer.writerow(Verdict.COLUMNS)

        async def work(s: Services) -> None:
            verdicts = s.checks.scrub(numbers_of(source), direction, campaign)
            async with contextlib.aclosing(verdicts):
                async for part in verdicts:
                    counts.update(v.result for v in part)
                    if json_out:
                        kept.extend(part)
                        continue
                    writer.writerows(
                        [csv_cell(value) for value in v.to_json().values()] for v in part
                    )

        call(ctx, work)
        if json_out:
            document = {
                "direction": direction.value,
                "campaign": campaign,
                "counts": dict(counts),
                "decisions": [v.to_json() for v in kept],
            }
            out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    total = sum(counts.values())
    summary = ", ".join(f"{result} {n:,}" for result, n in sorted(counts.items()))
    typer.echo(
        f"scrubbed {total:,} numbers ({direction.value}"
        f"{', campaign ' + campaign if campaign else ''}): {summary or 'none'}",
        err=True,
    )


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
