"""The campaigns service: which lists apply to a campaign's calls."""

from __future__ import annotations

from collections.abc import Sequence

from callscreen.core.model import Scope
from callscreen.services.context import Context
from callscreen.services.rules import assignment_guard, record
from callscreen.services.table import AssignMode
from callscreen.services.views import CampaignView


class CampaignService:
    """Campaign assignments, each change in the admin trail with the context's actor."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def assign(
        self, campaign: str, list_names: Sequence[str], *, mode: AssignMode = "replace"
    ) -> CampaignView:
        """Change the lists assigned to a campaign: ``replace`` them (none clears the
        assignment), ``add`` some or ``remove`` some; duplicates dropped, at most 100.
        Removing a list that is not assigned changes nothing.

        Taking a campaign-only block list that holds permanently approved entries out
        of the campaign is refused (:func:`~.rules.assignment_guard`): its entries would
        stop blocking that campaign's calls.
        """
        await self.ctx.table.assign(campaign, list(list_names), guard=assignment_guard, mode=mode)
        view = await self.campaign(campaign)
        named = ", ".join(dict.fromkeys(list_names)) or "-"
        detail = {
            "replace": f"{campaign}: {', '.join(view.lists) or '-'}",
            "add": f"{campaign}: + {named} (now {', '.join(view.lists) or '-'})",
            "remove": f"{campaign}: - {named} (now {', '.join(view.lists) or '-'})",
        }[mode]
        await record(self.ctx, None, "assign", detail=detail)
        return view

    async def campaign(self, name: str) -> CampaignView:
        """A campaign's lists (a campaign nobody assigned lists to has none, and its
        calls are screened against the global lists only)."""
        table = self.ctx.table
        assigned = tuple(info.name for info in await table.campaign_lists(name))
        global_lists = tuple(
            info.name for info in await table.all_lists() if info.scope is Scope.GLOBAL
        )
        return CampaignView(name, assigned, global_lists)

    async def campaigns(self) -> list[CampaignView]:
        """Every campaign that has lists assigned, by name."""
        table = self.ctx.table
        return [
            CampaignView(name, tuple(info.name for info in await table.campaign_lists(name)))
            for name in await table.campaign_names()
        ]
