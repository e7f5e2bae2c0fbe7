"""The status indexes (``{cs}:st:L:p`` pending, ``{cs}:st:L:d`` removed; ``record.lua``'s
``rec_index``) hold exactly the entries stored with their status, after every kind of
change: compared, after each, with a full scan of the list's records; and a page of
one status read from its index is the page the scan would give, position for position."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Status
from callscreen.gateway.optout import opt_out
from callscreen.schema.keys import storage_score
from callscreen.services import browse, entries, importer
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin
from tests.test_number_index import assert_number_index


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region="US", deadline_ms=5000)  # type: ignore[call-arg]


def scanned(r: Any, list_id: str) -> dict[str, dict[str, float]]:
    """The indexes as the records say they should be: a full scan of the list."""
    buckets = int(r.hget("{cs}:meta", "buckets"))
    out: dict[str, dict[str, float]] = {"p": {}, "d": {}}
    hashes = [(f"{{cs}}:p:{list_id}", "p")]
    hashes += [(k, k.rsplit(":", 1)[1]) for k in r.scan_iter(f"{{cs}}:e:{list_id}:*")]
    for key, loc in hashes:
        for field, record in r.hgetall(key).items():
            code = record.split(";", 1)[0]
            if code in out:
                member = f"{loc}:{field}"
                out[code][member] = float(storage_score(buckets, member))
    return out


def assert_indexes(r: Any, *names: str) -> None:
    for name in names:
        list_id = r.hget("{cs}:lists", name)
        stored = {
            code: dict(r.zrange(f"{{cs}}:st:{list_id}:{code}", 0, -1, withscores=True))
            for code in ("p", "d")
        }
        assert stored == scanned(r, list_id), name
        assert_number_index(r, list_id)  # the number index follows the same changes


def every_page(admin: SyncAdmin, table: Any, info: Any, **options: Any) -> Iterator[Any]:
    """Each ``(items, after)`` page of ``entries.page_entries`` from the first to the
    last, each asked with the cursor the page before it gave."""
    after = None
    while True:
        items, after = admin.run(entries.page_entries(table, info, after=after, **options))
        yield items, after
        if after is None:
            return


def test_the_indexes_follow_every_kind_of_change(
    admin: SyncAdmin, r: Any, settings: Settings
) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.create_list("review", Action.BLOCK)
    nums = [f"+1202555{n:04d}" for n in range(100, 112)]
    admin.add("review", [*nums[:8], "+1900*", "+19005*"], status=Status.PENDING)
    assert_indexes(r, "review")
    assert r.zcard(f"{{cs}}:st:{r.hget('{cs}:lists', 'review')}:p") == 10
    admin.approve("review", [*nums[:3], "+1900*"])
    assert_indexes(r, "review")
    admin.approve("review", nums[3:4], permanent=True)
    admin.unapprove("review", nums[:1])
    assert_indexes(r, "review")
    admin.remove("review", nums[1:3] + nums[5:6] + ["+19005*"], reason="gone")
    assert_indexes(r, "review")
    admin.restore("review", nums[1:2])
    assert_indexes(r, "review")
    admin.add("review", nums[2:3], reason="again", status=Status.PENDING)  # removed: skipped
    admin.add("review", nums[4:5], reason="sure")  # pending, then active
    assert_indexes(r, "review")
    admin.purge("review", "2100-01-01")
    assert_indexes(r, "review")
    list_id = r.hget("{cs}:lists", "review")
    assert not r.exists(f"{{cs}}:st:{list_id}:d")

    # imports: new pending rows, removed ones restored, a --replace sweep
    bulk = admin.table
    admin.remove("review", nums[6:7], reason="gone")
    data = io.BytesIO(("\n".join([*nums[6:11], "+1800*"]) + "\n").encode())
    options = ImportOptions(workers=0, by="tester", restore_deleted=True)
    importer.import_stream(bulk, bulk.get_list("review"), data, name="a.csv", options=options)
    assert_indexes(r, "review")
    data = io.BytesIO(("\n".join(nums[8:12]) + "\n").encode())
    options = ImportOptions(workers=0, by="tester", replace=True, max_remove=1.0)
    importer.import_stream(bulk, bulk.get_list("review"), data, name="b.csv", options=options)
    assert_indexes(r, "review")
    assert r.zcard(f"{{cs}}:st:{list_id}:d") > 0 and r.zcard(f"{{cs}}:st:{list_id}:p") > 0

    # the opt-out route writes its entry through entries.lua too
    admin.add("dnc", ["+12025550177"], status=Status.PENDING)

    async def call_path() -> None:
        client = LeanRedis.from_settings(settings)
        try:
            decision = await opt_out(
                settings, client, ScreenRequest("+12025550177", Direction.INBOUND)
            )
            assert not decision.failed, decision.reason
        finally:
            await client.close()

    asyncio.run(call_path())
    assert_indexes(r, "dnc", "review")

    # a deleted list takes its indexes with it
    admin.create_list("temp", Action.BLOCK)
    admin.add("temp", nums[:4], status=Status.PENDING)
    admin.remove("temp", nums[:2], reason="gone")
    assert_indexes(r, "temp")
    temp_id = r.hget("{cs}:lists", "temp")
    assert len(r.keys(f"{{cs}}:st:{temp_id}:*")) == 2
    admin.delete_list("temp")
    assert not r.keys(f"{{cs}}:st:{temp_id}:*")
    assert not r.keys(f"{{cs}}:n[dx]:{temp_id}:*")


def test_a_page_of_one_status_reads_its_index_in_storage_order(admin: SyncAdmin, r: Any) -> None:
    admin.create_list("big", Action.BLOCK)
    nums = [f"+1202555{n:04d}" for n in range(0, 600)]
    admin.add("big", [*nums[::2], "+1900*", "+19*", "+1901*"])
    admin.add("big", [*nums[1::2], "+1800*"], status=Status.PENDING)
    admin.remove("big", [*nums[::6], "+19*"], reason="gone")
    info = admin.table.get_list("big")
    table = admin.ctx.table
    for status, code in ((Status.PENDING, "p"), (Status.DELETED, "d")):
        for search in ("", "+12025550"):

            def keep(key: Any, record: Any, status: Status = status, search: str = search) -> bool:
                return record.status is status and key.display.startswith(search)

            for limit in (1, 7, 50):
                by_index: list[Any] = []
                by_scan: list[Any] = []
                for out, stored_status in ((by_index, code), (by_scan, None)):
                    for items, after in every_page(
                        admin, table, info, limit=limit, keep=keep, stored_status=stored_status
                    ):
                        out.append(([key.display for key, _ in items], after))
                assert by_index == by_scan, (status, search, limit)
                assert by_index[0][0], (status, search, limit)
    page = admin.page_entries("big", status=Status.PENDING, limit=500)
    assert len(page.entries) == 301
    assert {e.status for e in page.entries} == {Status.PENDING}


def test_the_console_browses_pending_or_removed_entries_from_their_index(
    admin: SyncAdmin, r: Any
) -> None:
    admin.create_list("big", Action.BLOCK)
    nums = [f"+1202555{n:04d}" for n in range(0, 300)]
    admin.add("big", [*nums[::2], "+1900*"])
    admin.add("big", [*nums[1::2], "+1800*", "+18*"], status=Status.PENDING)
    admin.remove("big", [*nums[::6], "+1900*"], reason="gone")
    info = admin.table.get_list("big")
    table = admin.ctx.table
    for status in (Status.PENDING, Status.DELETED):
        shown: list[str] = []
        after = None
        while True:
            page = admin.run(browse.browse(table, info, frozenset({status}), 7, after))
            shown += [key.display for key, record in page.items if record.status is status]
            assert len(page.items) == 7 or page.next is None
            if page.next is None:
                break
            after = page.next
        scan, _ = admin.run(
            entries.page_entries(
                table, info, after=None, limit=1000, keep=lambda k, rec, s=status: rec.status is s
            )
        )
        expected = [key.display for key, _ in scan]
        assert sorted(shown) == sorted(expected) and len(shown) == len(set(shown))
        exact = [e for e in shown if not e.endswith("*")]
        assert exact == [e for e in expected if not e.endswith("*")]


def test_one_indexed_status_with_a_search_reads_the_number_index(admin: SyncAdmin, r: Any) -> None:
    admin.create_list("big", Action.BLOCK)
    nums = [f"+1202555{n:04d}" for n in range(0, 400)] + [f"+1303555{n:04d}" for n in range(200)]
    admin.add("big", [*nums[::2], "+1900*"])
    admin.add("big", [*nums[1::2], "+1202*", "+1303*"], status=Status.PENDING)
    info = admin.table.get_list("big")
    table = admin.ctx.table
    now = table.clock()
    pending = frozenset({Status.PENDING})
    for starting in ("", "1202", "13035550"):

        def keep(key: Any, record: Any, starting: str = starting) -> bool:
            return record.status is Status.PENDING and key.digits.startswith(starting)

        expected, _ = admin.run(
            entries.page_entries(table, info, after=None, limit=1000, keep=keep)
        )
        for limit in (1, 9, 100):
            shown = [
                item
                for items, _ in every_page(
                    admin, table, info, limit=limit, starting=starting, statuses=pending, now=now
                )
                for item in items
            ]
            assert [k.display for k, _ in shown] == [k.display for k, _ in expected]
            assert shown, starting
    listed = admin.list_entries("big", status=Status.PENDING, search="+1303", limit=500)
    assert listed.total == 101  # 100 numbers and the prefix
    # the numbers come from the number index (in number order), not the status index:
    # without it only the matching prefix is found
    r.delete(f"{{cs}}:st:{info.id}:p")
    items, _ = admin.run(
        entries.page_entries(
            table, info, after=None, limit=50, starting="1202", statuses=pending, now=now
        )
    )
    assert len(items) == 50
    r.delete(*r.keys(f"{{cs}}:n[dx]:{info.id}:*"))
    items, _ = admin.run(
        entries.page_entries(
            table, info, after=None, limit=50, starting="1202", statuses=pending, now=now
        )
    )
    assert [key.display for key, _ in items] == ["+1202*"]
    assert admin.list_entries("big", status=Status.PENDING, search="+1202").total == 1  # the prefix
