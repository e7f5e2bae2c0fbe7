"""``callscreen import`` and ``callscreen export``: CSV into and out of a list.

The work is in :class:`callscreen.services.transfer.TransferService`; this module
parses options, shows a progress bar on stderr
(when it is a terminal) and renders the summary (and, on a block list, what was done
to the calls queued for the entries the import made enforced). ``import`` exits 1
when any row was bad (the good ones went in, unless ``--strict``), so that scripts
notice.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from callscreen.cli import app, fail
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json, settled
from callscreen.cli.entries import HangupLiveOption, render_cascade
from callscreen.cli.exits import EXIT_REFUSED
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Status
from callscreen.services import importer
from callscreen.services.views import ImportResult

err_console = Console(stderr=True, markup=False, highlight=False)

ListArg = Annotated[
    str, typer.Argument(help="The list's name.", metavar="LIST", show_default=False)
]

_PHASES = {"check": "checking", "import": "importing", "replace": "removing what the file lacks"}


class _Bar:
    """A rich progress bar fed by the importer's ``progress(phase, bytes, rows)``:
    bytes of the file's size, or, for standard input, a row counter."""

    def __init__(self, progress: Progress, size: int | None) -> None:
        self.progress = progress
        self.size = size
        self.task: TaskID = progress.add_task("reading", total=size, rows=0)
        self.phase = ""

    def __call__(self, phase: str, done: int, rows: int) -> None:
        if phase != self.phase:
            self.phase = phase
            total = None if phase == "replace" else self.size
            self.progress.reset(self.task, total=total, description=_PHASES.get(phase, phase))
        self.progress.update(self.task, completed=done, rows=rows)


@contextlib.contextmanager
def _progress_bar(size: int | None, enabled: bool) -> Iterator[_Bar]:
    rows = TextColumn("{task.fields[rows]:,} rows")
    if size is not None:
        columns: tuple[object, ...] = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            rows,
            TimeRemainingColumn(),
        )
    else:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), rows, TimeElapsedColumn())
    progress = Progress(
        *columns,  # type: ignore[arg-type]
        console=err_console,
        transient=True,
        disable=not (enabled and err_console.is_terminal),
    )
    with progress:
        yield _Bar(progress, size)


def _n(value: int) -> str:
    return f"{value:,}"


def render_import(result: ImportResult, errors_path: str | None) -> None:
    s = summary = result.summary
    rate = f" ({s.rows / s.seconds:,.0f} rows/s)" if s.seconds > 0 and s.rows else ""
    if not s.written:
        console.print(
            f"nothing written to {s.list_name}: {_n(s.errors)} of {_n(s.rows)} rows are bad "
            "(--strict)"
        )
    else:
        console.print(f"{s.list_name}: {_n(s.rows)} rows read in {s.seconds:.1f} s{rate}")
        console.print(f"  added      {_n(s.added)}")
        console.print(f"  updated    {_n(s.updated)}")
        console.print(f"  restored   {_n(s.restored)}")
        parts = [f"{_n(s.unchanged)} unchanged"]
        if s.permanent_unchanged:
            parts.append(f"{_n(s.permanent_unchanged)} permanent, unchanged")
        if s.deleted_kept:
            parts.append(
                f"{_n(s.deleted_kept)} removed earlier and left removed (--restore-deleted "
                "brings them back)"
            )
        if s.duplicates:
            parts.append(f"{_n(s.duplicates)} duplicates in the file")
        console.print(
            f"  skipped    {_n(s.skipped)}" + (f": {', '.join(parts)}" if s.skipped else "")
        )
        if summary.replaced:
            kept = f", {_n(s.kept_permanent)} permanent kept" if s.kept_permanent else ""
            console.print(f"  removed    {_n(s.removed)} not in the file (--replace{kept})")
    bad = f"  errors     {_n(s.errors)} bad rows"
    if s.errors and errors_path:
        bad += f", all written to {errors_path}"
    console.print(bad)
    if s.written:
        if s.pending:
            console.print(
                f"  pending    {_n(s.pending)} entries of this file are pending review and NOT "
                f"enforced until approved (callscreen approve {s.list_name} --all-pending)"
            )
        else:
            console.print("  pending    0: every entry of this file is enforced")
    if s.first_errors:
        more = f" (first {len(s.first_errors)})" if s.errors > len(s.first_errors) else ""
        console.print(f"bad rows{more}:")
        for err in s.first_errors:
            console.print(f"  line {err.line}: {err.error}")
    for note in s.notes:
        console.print(f"note: {note}")
    render_cascade(result.cascade, result.cascade_job, "enforced")


@app.command("import")
def import_(
    ctx: typer.Context,
    list_name: ListArg,
    file: Annotated[
        str,
        typer.Argument(
            help="CSV file, or - for standard input.", metavar="FILE", show_default=False
        ),
    ],
    approve: Annotated[
        bool,
        typer.Option("--approve", help="New entries are active at once (default: pending review)."),
    ] = False,
    approve_permanently: Annotated[
        bool,
        typer.Option(
            "--approve-permanently",
            help="Entries become permanent: never again unapproved, removed or deleted.",
        ),
    ] = False,
    confirm_country: Annotated[
        bool,
        typer.Option(
            "--confirm-country",
            help="Allow approving permanently prefixes that cover a whole country code.",
        ),
    ] = False,
    restore_deleted: Annotated[
        bool,
        typer.Option("--restore-deleted", help="Bring back entries that were removed."),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Make the list match the file: remove (softly) the entries the file lacks; "
            "permanent ones are kept.",
        ),
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="With --replace, let a file that names no entry empty the list.",
        ),
    ] = False,
    max_remove: Annotated[
        float,
        typer.Option(
            "--max-remove",
            min=0,
            max=100,
            help="With --replace, refuse to remove more than this percentage of the "
            "list's live (pending or active) entries.",
        ),
    ] = 50.0,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Write nothing if any row is bad (bad rows only: a Redis failure midway "
            "is not undone; run the same import again to finish it).",
        ),
    ] = False,
    keep_status: Annotated[
        bool,
        typer.Option(
            "--keep-status",
            help="Use the file's status column (an export's), never demoting an entry.",
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Reason for rows without one [default: such rows keep the entry's reason].",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Where the entries come from [default: import:FILENAME].", show_default=False
        ),
    ] = None,
    by: ByOption = "",
    errors: Annotated[
        str | None,
        typer.Option(
            "--errors",
            help="Write every bad row to this CSV file (line,raw,error).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option(help="Parse processes (default: 1 for large input).", hidden=True),
    ] = None,
    hangup_live: HangupLiveOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import numbers and prefixes from a CSV file into a list.

    One column of numbers (header optional), or a header naming number, reason,
    external_id, expires (and every column of an export); separated by , ; or tab;
    UTF-8 with or without BOM. New entries are pending review unless --approve; an
    entry already active or permanent is never demoted; importing the same file again
    changes nothing. On a block list, calls queued for the entries the import makes
    enforced (Asterisk call files) are cancelled. Exits 1 if any row was bad.
    """
    if approve and approve_permanently:
        raise typer.BadParameter("give --approve or --approve-permanently, not both")
    status = Status.PENDING
    if approve:
        status = Status.ACTIVE
    if approve_permanently:
        status = Status.PERMANENT
    options = importer.ImportOptions(
        approve=status,
        reason=reason,
        source=source,
        by=by,
        restore_deleted=restore_deleted,
        replace=replace,
        allow_empty=allow_empty,
        max_remove=max_remove / 100,
        strict=strict,
        keep_status=keep_status,
        confirm_broad=confirm_country,
        workers=workers,
    )
    size: int | None = None
    if file != "-":
        try:
            size = os.stat(file).st_size
        except OSError as exc:
            raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    with contextlib.ExitStack() as stack:
        errors_out: TextIO | None = None
        if errors is not None:
            try:
                errors_out = stack.enter_context(open(errors, "w", encoding="utf-8", newline=""))
            except OSError as exc:
                raise InvalidInput(f"cannot write {errors}: {exc.strerror or exc}") from None
        bar = stack.enter_context(_progress_bar(size, progress and not json_out))
        result = call(
            ctx,
            lambda s: settled(
                s,
                s.transfer.import_file(
                    list_name,
                    file,
                    options,
                    stdin=sys.stdin.buffer if file == "-" else None,
                    errors_out=errors_out,
                    progress=bar,
                    hangup_live=hangup_live,
                ),
            ),
            by=by,
        )
    summary = result.summary
    if json_out:
        emit_json(result.to_json())
    else:
        render_import(result, errors)
    if summary.replace_refused:
        raise fail(summary.replace_refused, EXIT_REFUSED)
    if summary.errors:
        what = "nothing written" if not summary.written else "the good rows were imported"
        where = "standard input" if file == "-" else file
        raise fail(f"{summary.errors} bad rows in {where}; {what}")


def _statuses(values: list[str]) -> frozenset[Status] | None:
    names = [part.strip().lower() for value in values for part in value.split(",") if part.strip()]
    if not names:
        return None
    try:
        return frozenset(Status(name) for name in names)
    except ValueError:
        known = ", ".join(status.value for status in Status)
        raise typer.BadParameter(
            f"unknown status in {', '.join(names)} (one of: {known})"
        ) from None


@app.command("export")
def export(
    ctx: typer.Context,
    list_name: ListArg,
    file: Annotated[
        str | None,
        typer.Argument(
            help="CSV file to write [default: standard output].", metavar="FILE", show_default=False
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only entries with this status: pending, active, permanent, deleted, expired "
            "(repeat it, or separate with commas).",
            metavar="STATUS",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")
    ] = True,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON (the CSV goes to FILE).")
    ] = False,
) -> None:
    """Export a list's entries to CSV, every field, in a form `import --keep-status`
    reads back into another list unchanged. Free text that a spreadsheet would run as a
    formula gets a leading ' (import takes it off)."""
    statuses = _statuses(status or [])
    to_stdout = file is None or file == "-"
    if to_stdout and json_out:
        raise typer.BadParameter("--json needs a FILE for the CSV")
    if to_stdout:
        call(ctx, lambda s: s.transfer.export_list(list_name, sys.stdout, statuses=statuses))
        sys.stdout.flush()
        return
    assert file is not None
    bar = Progress(
        TextColumn("exporting"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not (progress and not json_out and err_console.is_terminal),
    )
    with bar:
        task = bar.add_task("export", total=None)
        result = call(
            ctx,
            lambda s: s.transfer.export_file(
                list_name,
                file,
                statuses=statuses,
                progress=lambda n, total: bar.update(task, completed=n, total=total),
            ),
        )
    if json_out:
        emit_json(result.to_json())
        return
    shown = ", ".join(f"{n:,} {name}" for name, n in sorted(result.by_status.items()))
    console.print(
        f"exported {result.rows:,} entries of {result.list_name} to {file} in "
        f"{result.seconds:.1f} s" + (f" ({shown})" if shown else "")
    )
