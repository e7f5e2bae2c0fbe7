"""The lookup, read through the holders index, returns exactly what reading every list
that applies would: random lists, campaigns and entries changed by every kind of writer
(add, import, remove, purge, list changes and deletions), then every number of a small
space looked up in each direction and campaign and compared, match by match and in
order, with the answer computed here from the lists' own hashes (what the lookup read
before the holders index)."""

from __future__ import annotations

import asyncio
import io
import random
from typing import Any

import pytest

from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.schema.keys import bucket_of
from callscreen.services import importer
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin

# a small number space, so that lists share numbers and prefixes nest
NUMBERS = [f"+3361234{a}{b}{c}{d}" for a in "01" for b in "05" for c in "3" for d in "27"]
PREFIXES = ["+33*", "+3361*", "+336123*", "+3361234*", "+33612340*", "+336123405*"]
CAMPAIGNS = ("spring", "autumn")


def expected(r: Any, digits: str, direction: str, campaign: str) -> list[tuple[str, ...]]:
    """Every entry (any status) matching ``digits`` in the lists that apply, in the
    lookup's order: the global lists by id, then the campaign's own by id; in each
    list the exact entry, then prefixes from the shortest."""
    buckets = int(r.hget("{cs}:meta", "buckets"))
    glob = set(r.smembers("{cs}:global"))
    ids = sorted(glob, key=int)
    if campaign:
        ids += sorted(set(r.smembers(f"{{cs}}:camp:{campaign}")) - glob, key=int)
    out: list[tuple[str, ...]] = []
    bucket, field = bucket_of(int(digits), buckets)
    for list_id in ids:
        name, action, way = r.hmget(f"{{cs}}:list:{list_id}", "name", "action", "direction")
        if action is None or (way or "both") not in ("both", direction):
            continue
        record = r.hget(f"{{cs}}:e:{list_id}:{bucket}", str(field))
        if record:
            out.append((name, action, digits, "0", record))
        for k in range(1, len(digits) + 1):
            record = r.hget(f"{{cs}}:p:{list_id}", digits[:k])
            if record:
                out.append((name, action, digits[:k], "1", record))
    return out


def looked_up(settings: Settings, numbers: list[str], direction: str, campaign: str) -> Any:
    async def run() -> Any:
        screener = Screener.from_settings(settings)
        try:
            args = [
                screener.keys.base, direction, campaign, "0", "1",
                *(n.lstrip("+") for n in numbers),
            ]  # fmt: skip
            return await screener.client.evalsha(screener.script, [screener.keys.lookup], args)
        finally:
            await screener.close()

    return asyncio.run(run())


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def number_index(r: Any) -> dict[tuple[str, str], set[str]]:
    """The holders index as stored: (bucket key, field) -> list ids."""
    return {
        (key, field): set(ids.split(","))
        for key in r.scan_iter(match="{cs}:n:*")
        for field, ids in r.hgetall(key).items()
    }


def listed(r: Any) -> dict[tuple[str, str], set[str]]:
    """The holders index as the lists' entries say it should be."""
    out: dict[tuple[str, str], set[str]] = {}
    for list_id in r.hvals("{cs}:lists"):
        for key in r.scan_iter(match=f"{{cs}}:e:{list_id}:*"):
            for field in r.hkeys(key):
                out.setdefault((f"{{cs}}:n:{key.rsplit(':', 1)[1]}", field), set()).add(list_id)
        for digits in r.hkeys(f"{{cs}}:p:{list_id}"):
            out.setdefault(("{cs}:n:p", digits), set()).add(list_id)
    return out


def assert_same(admin: SyncAdmin, r: Any, settings: Settings) -> None:
    assert number_index(r) == listed(r)  # exactly: purges and deletions leave nothing
    for direction in ("inbound", "outbound"):
        for campaign in ("", *CAMPAIGNS):
            replies = looked_up(settings, NUMBERS, direction, campaign)
            for number, reply in zip(NUMBERS, replies, strict=True):
                got = [tuple(text(v) for v in reply[i : i + 5]) for i in range(0, len(reply), 6)]
                assert got == expected(r, number[1:], direction, campaign), (
                    number, direction, campaign,
                )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lookup_reads_what_the_lists_hold(
    seed: int, admin: SyncAdmin, r: Any, settings: Settings
) -> None:
    rng = random.Random(seed)
    names = [f"l{i}" for i in range(6)]
    for name in names:
        admin.create_list(
            name,
            rng.choice(list(Action)),
            rng.choice(list(Direction)),
            campaign_only=rng.random() < 0.4,
        )
    for campaign in CAMPAIGNS:
        admin.assign(campaign, rng.sample(names, 3))
    entries = NUMBERS + PREFIXES
    for name in names:
        admin.add(name, rng.sample(entries, 6), reason=f"added to {name}")
        pending = rng.sample(entries, 4)
        data = io.BytesIO(("number\n" + "\n".join(pending) + "\n").encode())
        options = ImportOptions(workers=0, by="tester", approve=Status.PENDING)
        importer.import_stream(
            admin.table, admin.table.get_list(name), data, name="f.csv", options=options
        )
    assert_same(admin, r, settings)

    # removals and purges (the holders index forgets purged entries), list changes
    for name in rng.sample(names, 3):
        held = admin.list_entries(name, limit=100).entries
        gone = [e.entry for e in held if e.status is not Status.PERMANENT and rng.random() < 0.5]
        if gone:
            admin.remove(name, gone, reason="gone")
    for name in rng.sample(names, 2):
        admin.purge(name, "2100-01-01")
    admin.update_list(names[0], direction=Direction.OUTBOUND, scope=Scope.GLOBAL)
    admin.update_list(names[1], action=Action.LABEL)
    assert_same(admin, r, settings)

    # a deleted list, then new entries in the remaining ones (ids never reused)
    admin.delete_list(names[2])
    admin.create_list("late", Action.BLOCK)
    admin.add("late", rng.sample(entries, 5), reason="late")
    admin.add(names[3], rng.sample(entries, 3), reason="again")
    assert_same(admin, r, settings)
    deleted = r.hget("{cs}:tombs", names[2])
    assert deleted and not any(deleted in ids for ids in number_index(r).values())
