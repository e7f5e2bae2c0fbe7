"""The lists service: create, show, change and delete lists."""

from __future__ import annotations

from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.core.text import free_text
from callscreen.services import entries
from callscreen.services.context import Context
from callscreen.services.rules import list_guard, record, writable_list
from callscreen.services.table import MAX_DESCRIPTION
from callscreen.services.views import DeleteResult, ListView


class ListService:
    """Lists: each change recorded in the list's trail (and, for creation, renaming and
    deletion, in the admin trail) with the context's actor."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create_list(
        self,
        name: str,
        action: Action,
        direction: Direction = Direction.BOTH,
        *,
        campaign_only: bool = False,
        description: str = "",
    ) -> ListView:
        """A new list: global, or applying only to the campaigns it gets assigned to."""
        ctx = self.ctx
        free_text(description, "description", MAX_DESCRIPTION)
        scope = Scope.CAMPAIGN if campaign_only else Scope.GLOBAL
        info = await ctx.table.create_list(
            name, action, direction, scope, description, ctx.actor.name
        )
        detail = f"{action}, {direction}, {scope}"
        await record(ctx, info.id, "create", list_name=name, detail=detail)
        await record(ctx, None, "create", list_name=name, detail=detail)
        return ListView.of(info, entries.counts_from({}, 0))

    async def list_lists(self) -> list[ListView]:
        """Every list, by name, with its counts."""
        table = self.ctx.table
        infos = await table.all_lists()
        counts = await entries.all_status_counts(table, infos)
        assigned = await table.assignments()
        return [
            ListView.of(info, c, assigned.get(info.id, ()))
            for info, c in zip(infos, counts, strict=True)
        ]

    async def show_list(self, name: str) -> ListView:
        """One list with its counts by status (expired included) and its campaigns."""
        table = self.ctx.table
        info = await table.get_list(name)
        counts = await entries.status_counts(table, info)
        return ListView.of(info, counts, await table.campaigns_of(info.id))

    async def update_list(
        self,
        name: str,
        *,
        new_name: str | None = None,
        action: Action | None = None,
        direction: Direction | None = None,
        scope: Scope | None = None,
        description: str | None = None,
    ) -> ListView:
        """Change only what is given (a name can change, not be emptied).

        A list holding permanently approved entries refuses a change that would stop
        one of them from blocking a call it blocks today (:func:`~.rules.weakening`:
        action, narrower direction, global to campaign-only), naming how many are in the
        way; renaming and the description stay free.
        """
        ctx = self.ctx
        table = ctx.table
        if description is not None:
            free_text(description, "description", MAX_DESCRIPTION)
        await writable_list(ctx, name)
        before, after = await table.update_list(
            name,
            new_name=new_name,
            action=action,
            direction=direction,
            scope=scope,
            description=description,
            by=ctx.actor.name,
            guard=list_guard,
        )
        changes = [
            f"{attr}: {getattr(before, attr)} -> {getattr(after, attr)}"
            for attr in ("name", "action", "direction", "scope")
            if getattr(before, attr) != getattr(after, attr)
        ]
        if before.description != after.description:
            changes.append("description changed")
        if changes:
            detail = "; ".join(changes)
            await record(ctx, after.id, "update", list_name=after.name, detail=detail)
            if before.name != after.name:
                await record(ctx, None, "rename", list_name=after.name, detail=detail)
        counts = await entries.status_counts(table, after)
        return ListView.of(after, counts, await table.campaigns_of(after.id))

    async def delete_list(self, name: str, reason: str = "") -> DeleteResult:
        """Delete a list and all its entries; refused while it holds permanent entries
        (:func:`~.rules.list_guard`).

        The list's history is kept, with a tombstone (who, when, ``reason``, the entries
        it held): ``history NAME`` still shows it (:class:`HistoryService`).
        Confirmation is the front end's business (the CLI asks, or takes ``--yes``).
        """
        ctx = self.ctx
        reason = free_text(reason, "reason", MAX_DESCRIPTION)
        info = await writable_list(ctx, name)
        raw = await ctx.table.drop_list(info, by=ctx.actor.name, reason=reason, guard=list_guard)
        counts = entries.counts_from({k: str(v) for k, v in raw.items()}, 0)
        del counts[Status.EXPIRED.value]
        detail = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "empty"
        detail += f", list id {info.id}"
        await record(ctx, info.id, "delete", list_name=name, reason=reason, detail=detail)
        await record(ctx, None, "delete", list_name=name, reason=reason, detail=detail)
        return DeleteResult(name, ctx.actor.name, counts)
