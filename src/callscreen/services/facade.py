"""Every service over one context: what a front end holds (:class:`Services`)."""

from __future__ import annotations

from callscreen.services.apikeys import KeyService
from callscreen.services.approvals import EntryService
from callscreen.services.bulkchanges import BulkChangeService
from callscreen.services.campaigns import CampaignService
from callscreen.services.cascading import CascadeQueue
from callscreen.services.checking import CheckService
from callscreen.services.context import Context
from callscreen.services.history import HistoryService
from callscreen.services.lists import ListService
from callscreen.services.migrations import SchemaService
from callscreen.services.numbers import NumberService
from callscreen.services.registry import RegistryService
from callscreen.services.transfer import TransferService


class Services:
    """The services by concern, sharing one :class:`Context`: ``lists``, ``entries``
    (and approvals), ``campaigns``, ``checks``, ``history``, ``transfer`` (import and
    export), ``registry`` (national do-not-call registries), ``cascades`` (the queue of
    cascade plans), ``schema`` (the stored layout's version, migrations), ``apikeys``
    (the HTTP API's keys), ``numbers`` (everything known of one number), ``bulk``
    (entry changes by filter). The reports
    reader is a layer up (:class:`callscreen.reports.report.Reports`), over the same
    context's table."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.lists = ListService(ctx)
        self.entries = EntryService(ctx)
        self.bulk = BulkChangeService(ctx, self.entries)
        self.campaigns = CampaignService(ctx)
        self.checks = CheckService(ctx)
        self.history = HistoryService(ctx)
        self.transfer = TransferService(ctx)
        self.registry = RegistryService(ctx)
        self.cascades = CascadeQueue(ctx.table)
        self.schema = SchemaService(ctx)
        self.apikeys = KeyService(ctx)
        self.numbers = NumberService(ctx)

    async def close(self) -> None:
        await self.ctx.close()
