"""The cascade's entry points for the services: which entries of a list a change made
enforced, matched against the spool and live calls by :mod:`callscreen.asterisk.cascade`."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from callscreen.asterisk.cascade import CascadeReport, EntryTargets, Targets, run
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, EntryRecord, Scope
from callscreen.core.numbers import EntryKey
from callscreen.services import entries, store
from callscreen.services.table import ListInfo, Table


class ListTargets:
    """Targets given as a whole list: every entry of it that is enforced now. Used for
    changes too big to name each entry (``approve --all-pending``); one pipelined read
    for all the numbers asked about."""

    def __init__(self, table: Table, info: ListInfo) -> None:
        self.table = table
        self.info = info

    def match(self, numbers: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        table, info = self.table, self.info

        def read() -> list[Any]:
            pipe = table.r.pipeline(transaction=False)
            for digits in wanted:
                hkey, hfield = entries.entry_location(table, info.id, EntryKey(digits, False))
                pipe.hget(hkey, hfield)
                prefixes = [digits[:end] for end in range(len(digits), 0, -1)]
                pipe.hmget(table.keys.prefixes(info.id), prefixes)
            result: list[Any] = pipe.execute()
            return result

        replies = store.call(read)
        now = time.time()
        found: dict[str, str] = {}
        for index, digits in enumerate(wanted):
            exact, prefixed = replies[2 * index], replies[2 * index + 1]
            if exact and EntryRecord.decode(str(exact)).enforced(now):
                found[digits] = "+" + digits
                continue
            for end, raw in zip(range(len(digits), 0, -1), prefixed, strict=True):
                if raw and EntryRecord.decode(str(raw)).enforced(now):
                    found[digits] = "+" + digits[:end] + "*"
                    break
        return found


def for_entries(
    settings: Settings,
    table: Table,
    info: ListInfo,
    keys: Sequence[EntryKey],
    *,
    hangup_live: bool | None = None,
) -> CascadeReport | None:
    """The cascade after a change to ``keys`` of list ``info`` (``add``, ``approve``,
    ``restore``): for those of them that are enforced now, if ``info`` is a block list
    and the cascade is enabled. None when there is nothing to do."""
    if info.action is not Action.BLOCK or not settings.cascade_enabled:
        return None
    now = time.time()
    records = entries.read_records(table, info, keys)
    enforced = [k for k, r in zip(keys, records, strict=True) if r and r.enforced(now)]
    if not enforced:
        return None
    return _for(settings, table, info, EntryTargets.of(enforced), len(enforced), hangup_live)


def for_list(
    settings: Settings,
    table: Table,
    info: ListInfo,
    *,
    count: int,
    hangup_live: bool | None = None,
) -> CascadeReport | None:
    """The cascade after a change too big to name its entries (``approve
    --all-pending``, an import of ``count`` active entries): every entry of the block
    list ``info`` enforced now is matched. None when there is nothing to do."""
    if info.action is not Action.BLOCK or not settings.cascade_enabled:
        return None
    if count <= 0:
        return None
    return _for(settings, table, info, ListTargets(table, info), count, hangup_live)


def _for(
    settings: Settings,
    table: Table,
    info: ListInfo,
    targets: Targets,
    count: int,
    hangup_live: bool | None,
) -> CascadeReport:
    campaigns = table.campaigns_of(info.id) if info.scope is Scope.CAMPAIGN else None
    return run(
        settings,
        targets,
        entries=count,
        outbound=info.direction is not Direction.INBOUND,
        campaigns=campaigns,
        hangup_live=hangup_live,
    )
