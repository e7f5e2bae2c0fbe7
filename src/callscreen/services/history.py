"""The history service: the audit trail of a list, of one entry, or of lists as a
whole and campaigns."""

from __future__ import annotations

import re

from callscreen.core.errors import InvalidInput
from callscreen.services import audit, entries
from callscreen.services.audit import Event
from callscreen.services.context import Context
from callscreen.services.rules import MAX_PAGE, parse_entries


class HistoryService:
    """Reads the audit trail (:mod:`callscreen.services.audit`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def history(
        self,
        list_name: str | None = None,
        entry: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
    ) -> list[Event]:
        """The most recent changes first: to one list (and, given ``entry``, to that
        entry), or without a list to lists as a whole and to campaigns. ``before`` (an
        event id) pages back past that event."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 1 and {MAX_PAGE}")
        if before is not None and not _EVENT_ID.fullmatch(before):
            raise InvalidInput("not an event id")
        table = self.ctx.table
        if list_name is None:
            return await audit.read(table, None, limit=limit, before=before)
        info = await table.get_list(list_name)
        if entry is None:
            return await audit.read(table, info.id, limit=limit, before=before)
        key = parse_entries([entry], self.ctx.region)[0]
        record = (await entries.read_records(table, info, [key]))[0]
        batches = [] if record is None else [record.batch]
        if record is not None and record.created is not None:
            batches.append(record.created)
        if record is not None and record.removal:
            batches.append(record.removal)
        return await audit.read(
            table, info.id, entry=key.display, batches=batches, limit=limit, before=before
        )


_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
