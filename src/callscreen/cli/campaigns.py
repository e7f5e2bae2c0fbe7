"""``callscreen campaigns assign | add | remove | show | ls``."""

from __future__ import annotations

from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json
from callscreen.services.table import AssignMode
from callscreen.services.views import CampaignView

campaigns_app = typer.Typer(
    help="Assign lists to campaigns (a campaign's calls are screened against its lists "
    "and every global list).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(campaigns_app, name="campaigns")

CampaignArg = Annotated[
    str, typer.Argument(help="The campaign's name.", metavar="CAMPAIGN", show_default=False)
]


def render_campaign(view: CampaignView) -> None:
    lists = ", ".join(view.lists) if view.lists else "none (global lists only)"
    console.print(f"campaign {view.name}: {lists}")
    if view.global_lists:
        console.print(f"  also screened against the global lists: {', '.join(view.global_lists)}")


ListsArg = Annotated[
    list[str] | None,
    typer.Argument(help="The lists.", metavar="LIST", show_default=False),
]


def _changer(name: str, mode: AssignMode, doc: str) -> None:
    """Register ``campaigns NAME``: change a campaign's lists by ``mode``."""

    def change(
        ctx: typer.Context,
        campaign: CampaignArg,
        lists: ListsArg = None,
        by: ByOption = "",
        json_out: JsonOption = False,
    ) -> None:
        view = call(ctx, lambda s: s.campaigns.assign(campaign, lists or [], mode=mode), by=by)
        if json_out:
            emit_json(view.to_json())
        else:
            render_campaign(view)

    change.__doc__ = doc
    campaigns_app.command(name)(change)


_changer(
    "assign",
    "replace",
    "Replace the lists assigned to a campaign by these (none: clear; duplicates\n"
    "dropped, at most 100).",
)
_changer(
    "add", "add", "Assign these lists to a campaign too, keeping those it has (at most 100 in all)."
)
_changer(
    "remove",
    "remove",
    "Take these lists out of a campaign, keeping the others (a list not assigned is\n"
    "ignored). A campaign-only block list holding permanent entries cannot be taken out.",
)


@campaigns_app.command("show")
def show(ctx: typer.Context, campaign: CampaignArg, json_out: JsonOption = False) -> None:
    """The lists a campaign's calls are screened against."""
    view = call(ctx, lambda s: s.campaigns.campaign(campaign))
    if json_out:
        emit_json(view.to_json())
    else:
        render_campaign(view)


@campaigns_app.command("ls")
def list_campaigns(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Every campaign that has lists assigned."""
    views = call(ctx, lambda s: s.campaigns.campaigns())
    if json_out:
        emit_json([view.to_json() for view in views])
        return
    if not views:
        console.print("no campaigns have lists assigned")
    for view in views:
        console.print(f"{view.name}: {', '.join(view.lists)}")
