"""``callscreen lists create | ls | show | update | delete``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from callscreen.cli import app, fail
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json, interactive
from callscreen.cli.exits import EXIT_FAILED, EXIT_REFUSED
from callscreen.core.model import Action, Direction, Scope
from callscreen.services.facade import Services
from callscreen.services.views import DeleteResult, ListView

lists_app = typer.Typer(
    help="Create, show, change and delete lists.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(lists_app, name="lists")

NameArg = Annotated[
    str, typer.Argument(help="The list's name.", metavar="NAME", show_default=False)
]


def render_list(view: ListView) -> None:
    c = view.counts
    console.print(f"list {view.name}")
    console.print(f"  action       {view.action}")
    console.print(f"  direction    {view.direction}")
    scope = "global (every call)" if view.scope is Scope.GLOBAL else "assigned campaigns only"
    console.print(f"  scope        {scope}")
    if view.campaigns:
        console.print(f"  campaigns    {', '.join(view.campaigns)}")
    elif view.scope is Scope.CAMPAIGN:
        console.print("  campaigns    none: the list applies to no call until assigned")
    if view.description:
        console.print(f"  description  {view.description}")
    console.print(f"  created      {view.created_at} by {view.created_by}")
    console.print(f"  updated      {view.updated_at} by {view.updated_by}")
    console.print(
        f"  entries      {view.total}: {c['active']} active, {c['permanent']} permanent, "
        f"{c['pending']} pending, {c['expired']} expired, {c['deleted']} deleted"
    )
    if c["pending"]:
        console.print(f"  note         {c['pending']} pending entries are not enforced yet")


@lists_app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    action: Annotated[
        Action, typer.Option(help="What the list does to a matching call.", show_default=False)
    ],
    direction: Annotated[Direction, typer.Option(help="Which calls it screens.")] = Direction.BOTH,
    campaign_only: Annotated[
        bool,
        typer.Option(
            "--campaign-only", help="Apply only to the campaigns it is assigned to (not global)."
        ),
    ] = False,
    description: Annotated[str, typer.Option(help="Free text, up to 2,000 characters.")] = "",
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Create a list (global unless --campaign-only)."""
    view = call(
        ctx,
        lambda s: s.lists.create_list(
            name, action, direction, campaign_only=campaign_only, description=description
        ),
        by=by,
    )
    if json_out:
        emit_json(view.to_json())
    else:
        console.print(f"created list {view.name} ({view.action}, {view.direction}, {view.scope})")


@lists_app.command("ls")
def list_lists(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Every list with its entry counts."""
    views = call(ctx, lambda s: s.lists.list_lists())
    if json_out:
        emit_json([view.to_json() for view in views])
        return
    if not views:
        console.print("no lists")
        return
    table = RichTable(box=None, pad_edge=False)
    for column in ("name", "action", "direction", "scope", "enforced", "pending", "expired"):
        table.add_column(column)
    table.add_column("deleted")
    for view in views:
        c = view.counts
        table.add_row(
            view.name,
            view.action,
            view.direction,
            view.scope,
            str(view.enforced),
            str(c["pending"]),
            str(c["expired"]),
            str(c["deleted"]),
        )
    console.print(table)


@lists_app.command("show")
def show(ctx: typer.Context, name: NameArg, json_out: JsonOption = False) -> None:
    """A list's settings, audit fields and entry counts by status."""
    view = call(ctx, lambda s: s.lists.show_list(name))
    if json_out:
        emit_json(view.to_json())
    else:
        render_list(view)


@lists_app.command("update")
def update(
    ctx: typer.Context,
    name: NameArg,
    new_name: Annotated[
        str | None, typer.Option("--name", help="A new name.", show_default=False)
    ] = None,
    action: Annotated[Action | None, typer.Option(show_default=False)] = None,
    direction: Annotated[Direction | None, typer.Option(show_default=False)] = None,
    scope: Annotated[
        Scope | None,
        typer.Option(
            help="global: every call; campaign: assigned campaigns only.", show_default=False
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Change only what is given."""
    view = call(
        ctx,
        lambda s: s.lists.update_list(
            name,
            new_name=new_name,
            action=action,
            direction=direction,
            scope=scope,
            description=description,
        ),
        by=by,
    )
    if json_out:
        emit_json(view.to_json())
    else:
        render_list(view)


@lists_app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    reason: Annotated[str, typer.Option(help="Why the list is deleted (kept with it).")] = "",
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Delete a list and all its entries (refused while it holds permanent entries).

    Its history is kept, with who deleted it, when, why and how many entries it held:
    `history NAME` still shows it."""

    async def work(s: Services) -> DeleteResult:
        if not yes:
            view = await s.lists.show_list(name)
            if not interactive():
                raise fail(
                    f"deleting list {name!r} ({view.total} entries) needs --yes", EXIT_REFUSED
                )
            if not typer.confirm(f"Delete list {name!r} and its {view.total} entries?"):
                typer.echo("not deleted", err=True)
                raise typer.Exit(EXIT_FAILED)
        return await s.lists.delete_list(name, reason)

    result = call(ctx, work, by=by)
    if json_out:
        emit_json(result.to_json())
    else:
        total = sum(result.counts.values())
        console.print(f"deleted list {result.list_name} and its {total} entries")
