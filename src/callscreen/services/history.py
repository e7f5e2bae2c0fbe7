"""The history service: the audit trail of a list, of one entry, or of lists as a
whole and campaigns; and the whole trail for archiving (:meth:`HistoryService.export`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from callscreen.core.errors import InvalidInput, NotFound
from callscreen.services import audit, entries
from callscreen.services.audit import Cursor, Event, TrailEvent
from callscreen.services.context import Context
from callscreen.services.rules import MAX_PAGE, parse_entries
from callscreen.services.table import Tombstone

EXPORT_SETTLE_S = 60.0
"""How old an event must be before the export takes it: writers on other hosts, whose
clocks may lag a little, can still append events a little older than the newest one,
and a cursor past them would skip them for good."""


class HistoryService:
    """Reads the audit trail (:mod:`callscreen.services.audit`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def tombstone(self, list_name: str, list_id: int | None = None) -> Tombstone | None:
        """The latest deleted list of that name (or the deleted list ``list_id``); None
        when no list of that name was deleted, or a list of that name is live and no
        ``list_id`` was given."""
        table = self.ctx.table
        if list_id is None and await table.r.hexists(table.keys.lists, list_name):
            return None
        return await table.tombstone(list_name, list_id)

    async def history(
        self,
        list_name: str | None = None,
        entry: str | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
        list_id: int | None = None,
    ) -> list[Event]:
        """The most recent changes first: to one list (and, given ``entry``, to that
        entry), or without a list to lists as a whole and to campaigns. ``before`` (an
        event id) pages back past that event.

        A deleted list's history is kept: a name no list has now gives the latest
        deleted list of that name; ``list_id`` picks one (the id its ``delete`` record
        names), live or deleted, which must have had that name.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"--limit must be between 1 and {MAX_PAGE}")
        if before is not None and not _EVENT_ID.fullmatch(before):
            raise InvalidInput("not an event id")
        table = self.ctx.table
        if list_name is None:
            return await audit.read(table, None, limit=limit, before=before)
        info = None
        if list_id is None:
            try:
                info = await table.get_list(list_name)
            except NotFound:
                tomb = await table.tombstone(list_name)
                if tomb is None:
                    raise
                list_id = tomb.list_id
        else:
            info = await table.get_list_by_id(list_id)
            if info is None or info.name != list_name:
                info = None
                if await table.tombstone(list_name, list_id) is None:
                    raise NotFound(f"no list {list_name!r} with id {list_id}")
        if info is None:  # deleted: its entry records are gone, the trail names entries
            key = None if entry is None else parse_entries([entry], self.ctx.region)[0]
            return await audit.read(
                table,
                list_id,
                entry=None if key is None else key.display,
                limit=limit,
                before=before,
            )
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

    async def export(
        self, after: str | None = None, *, settle_s: float = EXPORT_SETTLE_S
    ) -> AsyncIterator[TrailEvent]:
        """Every event of the whole trail — every list's, deleted lists' included, and
        the global trail — oldest first, merged in time order, past the cursor ``after``
        (``MS-SEQ@LIST`` as a :class:`~.audit.TrailEvent` names it: the stream id of an
        event and its list, 0 for the global trail; None: from the start), up to the
        events ``settle_s`` seconds old (:data:`EXPORT_SETTLE_S`; 0: up to now).

        Streamed in pages: memory stays bounded whatever the trail's length. The last
        event's cursor resumes the export exactly where it stopped.
        """
        cursor = None if after is None else Cursor.parse(after)
        if settle_s < 0:
            raise InvalidInput("the settling time cannot be negative")
        until_ms = int((self.ctx.clock() - settle_s) * 1000)
        async for event in audit.export(self.ctx.table, cursor, until_ms):
            yield event

    async def trail_page(
        self, after: str | None = None, *, limit: int = 50, settle_s: float = 0.0
    ) -> tuple[list[TrailEvent], str | None]:
        """At most ``limit`` events of :meth:`export` and the cursor to ask for the next
        page (None when these are the last so far): the export's paging, for a front
        end that pages (the HTTP API's ``GET /history`` could take this cursor)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        out: list[TrailEvent] = []
        stream = self.export(after, settle_s=settle_s)
        try:
            async for event in stream:
                out.append(event)
                if len(out) > limit:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        more = len(out) > limit
        out = out[:limit]
        return out, str(out[-1].cursor) if more else None


_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
