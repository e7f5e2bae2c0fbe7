"""The import/export service: CSV into and out of a list.

The bulk work (:mod:`callscreen.services.importer`, :mod:`callscreen.services.exporter`)
stays synchronous and pipelined: it runs in a worker thread with a connection of its
own (:class:`~callscreen.services.bulk.Bulk`), while this service stays async. The
service writes the import's audit records (as every other change), queues the
cascade's plan, and owns the export's temporary file (written beside the target, then
renamed: a failed export leaves no half file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TextIO

from callscreen.core.errors import InvalidInput, Refused
from callscreen.core.model import Status
from callscreen.core.text import free_text
from callscreen.services import audit, exporter, importer
from callscreen.services.approvals import queue_plan
from callscreen.services.bulk import Bulk
from callscreen.services.cascading import plan_for_list
from callscreen.services.context import Context
from callscreen.services.exporter import ExportSummary
from callscreen.services.importer import ImportOptions, ImportSummary, Progress
from callscreen.services.rules import MAX_REASON
from callscreen.services.table import ListInfo
from callscreen.services.views import ImportResult


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: the list, the file (``-`` for a stream), rows by status."""

    list_name: str
    file: str
    rows: int
    by_status: dict[str, int]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"list_name": self.list_name, "file": self.file, "rows": self.rows, **self.by_status}


class TransferService:
    """Imports and exports, with the context's actor and clock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _bulk(self) -> Bulk:
        return Bulk(self.ctx.settings, clock=self.ctx.clock)

    async def import_file(
        self,
        list_name: str,
        path: str,
        options: ImportOptions,
        *,
        stdin: IO[bytes] | None = None,
        errors_out: TextIO | None = None,
        progress: Progress | None = None,
        hangup_live: bool | None = None,
    ) -> ImportResult:
        """Import a CSV file (``-``: ``stdin``) into a list;
        :mod:`callscreen.services.importer` gives the rules. On a block list, when the
        import made entries enforced (``--approve``, ``--approve-permanently``, or an
        export's statuses with ``keep_status``), the cascade's plan is queued for
        every enforced entry of the list, as after ``approve --all-pending``: an
        import is too big to name its entries. ``progress`` is called from the
        import's worker thread."""
        ctx = self.ctx
        options = dataclasses.replace(options, by=ctx.actor.name)
        if options.approve is Status.PERMANENT and ctx.settings.four_eyes:
            raise Refused(
                "four-eyes rule: an import cannot approve entries permanently; import them "
                "pending or approved, and another person approves them permanently"
            )
        if options.reason is not None:
            free_text(options.reason, "reason", MAX_REASON)
        info = await ctx.table.get_list(list_name)

        def work() -> ImportSummary:
            bulk = self._bulk()
            try:
                return importer.import_file(
                    bulk, info.name, path, options, stdin=stdin, errors_out=errors_out,
                    progress=progress,
                )  # fmt: skip
            finally:
                bulk.close()

        summary = await asyncio.to_thread(work)
        await self._audit(info, summary, options)
        plan = await plan_for_list(
            ctx, info, summary.enforced, hangup_live, op="import", batch=summary.batch
        )
        job = await queue_plan(ctx, plan)
        return ImportResult(summary, None, job[0] if job else None, job[1] if job else None)

    async def _audit(self, info: ListInfo, summary: ImportSummary, options: ImportOptions) -> None:
        ctx = self.ctx
        actor = ctx.actor
        if summary.removal is not None and summary.removed:
            await audit.record(
                ctx.table,
                info.id,
                "remove",
                by=actor.name,
                via=actor.via,
                list_name=info.name,
                reason=summary.removal.reason,
                count=summary.removed,
                batch=summary.removal.id,
                detail="import --replace",
            )
        if summary.changed:
            await audit.record(
                ctx.table,
                info.id,
                "import",
                by=actor.name,
                via=actor.via,
                list_name=info.name,
                reason=options.reason or "",
                count=summary.changed,
                batch=summary.batch,
                detail=f"{summary.source}: {summary.added} added, {summary.updated} updated, "
                f"{summary.restored} restored, {summary.pending} pending",
            )

    async def export_list(
        self,
        list_name: str,
        out: IO[str],
        *,
        statuses: frozenset[Status] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportResult:
        """Write a list's entries as CSV to ``out`` (see :mod:`callscreen.services.exporter`)."""
        return await self._export(list_name, out, "-", statuses, progress)

    async def export_file(
        self,
        list_name: str,
        path: str,
        *,
        statuses: frozenset[Status] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportResult:
        """Export a list to the file ``path``, written beside it under a temporary
        name, then renamed: a failed export leaves no half file."""
        info = await self.ctx.table.get_list(list_name)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the with below
                "w", encoding="utf-8", newline="", dir=folder, prefix=".export-", delete=False
            )
        except OSError as exc:
            raise InvalidInput(f"cannot write in {folder}: {exc.strerror or exc}") from None
        done = False
        try:
            with handle:
                result = await self._export(info.name, handle, path, statuses, progress)
            os.replace(handle.name, path)
            done = True
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    os.unlink(handle.name)
        return result

    async def _export(
        self,
        list_name: str,
        out: IO[str],
        file: str,
        statuses: frozenset[Status] | None,
        progress: Callable[[int, int], None] | None,
    ) -> ExportResult:
        ctx = self.ctx
        info = await ctx.table.get_list(list_name)
        started = ctx.clock()

        def work() -> ExportSummary:
            bulk = self._bulk()
            try:
                return exporter.export_list(
                    bulk, info, out, statuses=statuses, now=ctx.clock(), progress=progress
                )
            finally:
                bulk.close()

        summary = await asyncio.to_thread(work)
        seconds = max(0.0, ctx.clock() - started)
        return ExportResult(info.name, file, summary.rows, dict(summary.by_status), seconds)
