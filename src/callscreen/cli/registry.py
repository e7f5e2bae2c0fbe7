"""``callscreen registry load | update``: a national do-not-call registry's files."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import typer

from callscreen.cli import app
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json
from callscreen.core.times import parse_datetime
from callscreen.services.facade import Services
from callscreen.services.registry import FileResult

registry_app = typer.Typer(
    help="Load a national do-not-call registry (US) into a read-only registry list.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(registry_app, name="registry")

RegistryArg = Annotated[
    str, typer.Argument(help="The registry: us.", metavar="REGISTRY", show_default=False)
]
FilesArg = Annotated[list[str], typer.Argument(metavar="FILE...", show_default=False)]
ListOption = Annotated[
    str | None, typer.Option("--list", help="The registry list [default: us-dnc].")
]
DateOption = Annotated[
    str | None,
    typer.Option("--date", help="The files' date, YYYY-MM-DD [default: each file's mtime]."),
]


def _date(text: str | None) -> date | None:
    return parse_datetime(text, "--date").date() if text else None


def _show(results: list[FileResult], json_out: bool) -> None:
    if json_out:
        emit_json({"files": [r.to_json() for r in results]})
        return
    for r in results:
        console.print(
            f"{r.path}: {r.lines:,} numbers in {r.seconds:.1f} s ({r.rate:,.0f}/s), "
            f"+{r.added:,} listed, -{r.removed:,} no longer listed"
            + (f", {r.area_codes} area codes now hold {r.listed:,}" if r.kind == "full" else "")
            + (f", {r.rejected:,} lines rejected: {'; '.join(r.rejects)}" if r.rejected else "")
        )


def _apply(
    ctx: typer.Context,
    kind: Literal["load", "update"],
    registry: str,
    files: list[str],
    list_name: str | None,
    file_date: str | None,
    by: str,
    json_out: bool,
) -> None:
    """Run the registry service's ``load`` (full files) or ``update`` (change files)."""
    day = _date(file_date)

    async def work(s: Services) -> list[FileResult]:
        run = s.registry.load if kind == "load" else s.registry.update
        return await run(registry, files, list_name=list_name, file_date=day)

    _show(call(ctx, work, by=by), json_out)


@registry_app.command("load")
def load(
    ctx: typer.Context,
    registry: RegistryArg,
    files: FilesArg,
    list_name: ListOption = None,
    file_date: DateOption = None,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Load full files (by area code): each replaces the numbers of its area codes."""
    _apply(ctx, "load", registry, files, list_name, file_date, by, json_out)


@registry_app.command("update")
def update(
    ctx: typer.Context,
    registry: RegistryArg,
    files: FilesArg,
    list_name: ListOption = None,
    file_date: DateOption = None,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Apply change files (A/D or add/delete per line, or one marker line per file)."""
    _apply(ctx, "update", registry, files, list_name, file_date, by, json_out)
