"""The audit trail: who changed what, when and why.

Each change is one record in a capped Redis stream: ``{cs}:hist:L`` for the changes
to list ``L`` and its entries, ``{cs}:hist`` for lists created, renamed or deleted
and for campaign assignments. A record names at most :data:`ENTRIES_PER_EVENT`
entries; a bigger change (an import, ``approve --all-pending``) gives its count and
its batch id, and every entry it wrote points at that batch, so the history of one
entry still finds it. Streams are trimmed by age only, never by count: each write
drops the records older than ``history_retention_days`` (``XADD MINID ~``, whole
stream nodes at a time, so a few older records may linger); 0 keeps them for ever.
Every writer of the trail computes that bound with :func:`trim_floor`.

A record's stream id is the service clock's time of the change (``ms-*``), so the
trail's times agree with the batches'; when the clock is behind the stream's last
record (another writer, a clock step back), or on Redis 6 (no ``ms-*`` ids), Redis
picks the id (``*``).

The entry records themselves carry the batch (who, when, why) of the change that
last set them and of their removal, atomically with the change; the stream is the
longer memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import StoreError
from callscreen.core.times import iso_ms
from callscreen.services import store
from callscreen.services.table import Table

ENTRIES_PER_EVENT = 100
_PAGE = 500


def trim_floor(settings: Settings, now: float) -> str | None:
    """The ``MINID`` for a write to the trail at ``now`` (epoch seconds): records
    older than the retention may go. None: no trimming (retention 0, for ever)."""
    days = settings.history_retention_days
    if days <= 0:
        return None
    return str(max(0, int((now - days * 86400) * 1000)))


def trim_args(settings: Settings, now: float) -> list[str]:
    """``MINID ~ <floor>`` for a raw XADD to the trail, or nothing (kept for ever)."""
    floor = trim_floor(settings, now)
    return [] if floor is None else ["MINID", "~", floor]


@dataclass(frozen=True, slots=True)
class Event:
    """One change in the audit trail."""

    id: str  # stream id, "ms-seq"
    at: float  # epoch seconds
    op: str  # create, update, delete, add, remove, restore, approve, ..., assign
    by: str
    via: str = ""  # where the change came from: "cli:USER@HOST", "gateway:...", ...
    list_name: str = ""
    reason: str = ""
    count: int = 0  # how many entries the change wrote
    entries: tuple[str, ...] = ()  # the first ENTRIES_PER_EVENT of them
    batch: int | None = None
    detail: str = ""  # e.g. "action: block -> label", "permanent"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["entries"] = list(self.entries)
        data["at"] = iso_ms(self.at)
        return data


async def record(
    table: Table,
    list_id: int | None,
    op: str,
    *,
    by: str,
    via: str = "",
    list_name: str = "",
    reason: str = "",
    count: int = 0,
    entries: Sequence[str] = (),
    batch: int | None = None,
    detail: str = "",
) -> str:
    """Append one change to the list's trail (``list_id`` None: the admin trail)."""
    key = table.keys.history(list_id) if list_id is not None else table.keys.admin_history
    fields: dict[str, str] = {"op": op, "by": by}
    if via:
        fields["via"] = via
    if list_name:
        fields["list"] = list_name
    if reason:
        fields["r"] = reason
    if count:
        fields["n"] = str(count)
    if entries:
        fields["e"] = " ".join(entries[:ENTRIES_PER_EVENT])
    if batch is not None:
        fields["b"] = str(batch)
    if detail:
        fields["d"] = detail
    now = table.clock()
    args = trim_args(table.settings, now)
    stamp = f"{int(now * 1000)}-*" if table.stream_time_ids else "*"
    try:
        event_id = await store.wait(
            table.r.execute_command("XADD", key, *args, stamp, *_flat(fields))
        )
    except StoreError as exc:
        if stamp == "*":
            raise
        if "Invalid stream ID" in str(exc):
            table.stream_time_ids = False  # Redis before 7.0 has no "ms-*" ids
        elif "equal or smaller" not in str(exc):
            raise
        event_id = await store.wait(
            table.r.execute_command("XADD", key, *args, "*", *_flat(fields))
        )
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


async def read(
    table: Table,
    list_id: int | None,
    *,
    entry: str | None = None,
    batches: Collection[int] = (),
    limit: int = 50,
    before: str | None = None,
) -> list[Event]:
    """The most recent changes first, at most ``limit`` (``before``: older than that
    event id, for paging).

    With ``entry`` (as written: ``+33123456789`` or ``+33*``) only the changes that
    name it, or that wrote one of ``batches`` (the batches the entry points at).
    """
    key = table.keys.history(list_id) if list_id is not None else table.keys.admin_history
    wanted = {str(b) for b in batches}
    out: list[Event] = []
    upper = "(" + before if before else "+"
    while len(out) < limit:
        count = _PAGE if entry is not None else limit - len(out)
        page = await store.wait(table.r.xrevrange(key, max=upper, min="-", count=count))
        if not page:
            break
        for event_id, fields in page:
            event = _decode(str(event_id), fields)
            if entry is None or entry in event.entries or fields.get("b") in wanted:
                out.append(event)
                if len(out) >= limit:
                    break
        if len(page) < count:
            break
        upper = "(" + str(page[-1][0])
    return out


def _decode(event_id: str, fields: dict[str, str]) -> Event:
    return Event(
        id=event_id,
        at=int(event_id.split("-", 1)[0]) / 1000,
        op=fields.get("op", ""),
        by=fields.get("by", ""),
        via=fields.get("via", ""),
        list_name=fields.get("list", ""),
        reason=fields.get("r", ""),
        count=int(fields.get("n", 0)),
        entries=tuple(fields["e"].split(" ")) if fields.get("e") else (),
        batch=int(fields["b"]) if fields.get("b") else None,
        detail=fields.get("d", ""),
    )
