"""The lookup index (``{cs}:lk``, ``schema/lookuplib.lua``) says what the lists and
campaigns say, after every kind of change: it is compared, after each, with the index
computed here in Python from the sources the lookup used to read itself."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import StoreError
from callscreen.core.model import Action, Direction, Result, Scope, Status
from callscreen.gateway.optout import opt_out
from callscreen.services import importer
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region="US", deadline_ms=5000)  # type: ignore[call-arg]


def expected_index(r: Any) -> dict[str, str]:
    """The index as the sources say it should be (the old lookup's reading of them)."""
    lines: dict[str, str | None] = {}
    dirs: dict[str, str] = {}

    def known(list_id: str) -> str | None:
        if list_id not in lines:
            name, action, direction, reg, rbatch = r.hmget(
                f"{{cs}}:list:{list_id}", "name", "action", "direction", "registry", "rbatch"
            )
            if action and (name or reg):
                lines[list_id] = f"{list_id}\t{action}\t{reg or ''}\t{rbatch or ''}\t{name or ''}\n"
                dirs[list_id] = direction or "both"
            else:
                lines[list_id] = None
        return lines[list_id]

    def joined(ids: list[str], direction: str) -> str:
        return "".join(
            line
            for list_id in sorted(ids, key=int)
            if (line := known(list_id)) and dirs[list_id] in ("both", direction)
        )

    index = {"v": "2", "buckets": r.hget("{cs}:meta", "buckets") or "32768"}
    glob = list(r.smembers("{cs}:global"))
    for direction in ("inbound", "outbound"):
        index[f"g:{direction}"] = joined(glob, direction)
    for camp in r.smembers("{cs}:camps"):
        own = [i for i in r.smembers(f"{{cs}}:camp:{camp}") if i not in glob]
        for direction in ("inbound", "outbound"):
            if text := joined(own, direction):
                index[f"c:{direction}:{camp}"] = text
    lengths = sorted({len(digits) for digits in r.hkeys("{cs}:n:p")})
    index["pl"] = "," + "".join(f"{n}," for n in lengths)
    return index


def expected_numbers(r: Any) -> dict[str, dict[str, set[str]]]:
    """The holders index as the lists' entries say it should be: bucket key -> field ->
    the ids of the lists holding it."""
    numbers: dict[str, dict[str, set[str]]] = {}
    for list_id in r.hvals("{cs}:lists"):
        for key in r.scan_iter(match=f"{{cs}}:e:{list_id}:*"):
            bucket = key.rsplit(":", 1)[1]
            for field in r.hkeys(key):
                numbers.setdefault(f"{{cs}}:n:{bucket}", {}).setdefault(field, set()).add(list_id)
        for digits in r.hkeys(f"{{cs}}:p:{list_id}"):
            numbers.setdefault("{cs}:n:p", {}).setdefault(digits, set()).add(list_id)
    return numbers


def assert_index(r: Any) -> None:
    """The stored index is the expected one (its prefix lengths may name more lengths,
    of prefixes purged since), and the holders index names exactly the lists that hold
    each number and prefix (a list deleted is stripped from it at once)."""
    stored = r.hgetall("{cs}:lk")
    expected = expected_index(r)
    stored_pl, expected_pl = stored.pop("pl"), expected.pop("pl")
    assert stored == expected
    assert set(expected_pl.strip(",").split(",")) <= set(stored_pl.strip(",").split(","))
    stored_numbers = {
        key: {field: set(ids.split(",")) for field, ids in r.hgetall(key).items()}
        for key in r.scan_iter(match="{cs}:n:*")
    }
    assert stored_numbers == expected_numbers(r)


def decide(settings: Settings, number: str, direction: Direction, campaign: str = "") -> Any:
    async def run() -> Any:
        screener = Screener.from_settings(settings)
        try:
            return await screener.decide(ScreenRequest(number, direction, campaign))
        finally:
            await screener.close()

    return asyncio.run(run())


def test_the_index_follows_every_kind_of_change(
    admin: SyncAdmin, r: Any, settings: Settings, tmp_path: Path
) -> None:
    num = "+12025550100"
    admin.create_list("dnc", Action.BLOCK)
    assert_index(r)
    admin.create_list("suspects", Action.LABEL, Direction.INBOUND)
    admin.create_list("spring-dnc", Action.BLOCK, Direction.OUTBOUND, campaign_only=True)
    admin.create_list("vip", Action.ALLOW, Direction.OUTBOUND)
    assert_index(r)
    assert r.hget("{cs}:lk", "pl") == ","
    admin.assign("spring", ["spring-dnc", "dnc"])  # dnc is global: not repeated
    assert_index(r)
    assert r.hget("{cs}:lk", "c:outbound:spring").startswith("3\tblock\t\t\tspring-dnc\n")
    assert not r.hexists("{cs}:lk", "c:inbound:spring")

    # entries: each in the holders index; a prefix's length in the lookup index
    admin.add("dnc", [num], reason="asked")
    assert r.hget("{cs}:lk", "pl") == ","
    assert_index(r)
    admin.add("dnc", ["+1900*"], reason="premium")
    assert r.hget("{cs}:lk", "pl") == ",4,"
    assert_index(r)
    assert decide(settings, "+19005550100", OUT).result is Result.BLOCKED
    options = ImportOptions(workers=0, by="tester", approve=Status.ACTIVE)
    data = io.BytesIO(b"number\n+1202555*\n+12025550199\n")
    importer.import_stream(
        admin.table, admin.table.get_list("vip"), data, name="f.csv", options=options
    )
    assert r.hget("{cs}:lk", "pl") == ",4,7,"
    assert_index(r)
    assert decide(settings, "+12025550142", OUT).result is Result.ALLOWED
    assert decide(settings, num, OUT).result is Result.BLOCKED  # exact beats the prefix

    # list changes: rename, action, direction, scope, both ways
    admin.update_list("suspects", new_name="watch", action=Action.BLOCK, direction=Direction.BOTH)
    assert_index(r)
    admin.update_list("spring-dnc", scope=Scope.GLOBAL)
    assert_index(r)
    assert not r.hexists("{cs}:lk", "c:outbound:spring")  # all its lists are global now
    admin.update_list("spring-dnc", scope=Scope.CAMPAIGN)
    assert_index(r)
    admin.add("spring-dnc", ["+12025550111"])
    assert decide(settings, "+12025550111", OUT, "spring").result is Result.BLOCKED
    assert decide(settings, "+12025550111", OUT).result is Result.ALLOWED
    assert decide(settings, "+12025550111", IN, "spring").result is Result.ALLOWED

    # campaigns: replaced, cleared
    admin.assign("spring", ["spring-dnc", "watch"])
    assert_index(r)
    admin.assign("spring", [])
    assert_index(r)
    assert decide(settings, "+12025550111", OUT, "spring").result is Result.ALLOWED

    # purged prefixes: the length may stay (a field read that is not there), the answer
    # is right
    admin.remove("dnc", ["+1900*"], reason="gone")
    admin.purge("dnc", "2100-01-01")
    assert_index(r)
    assert decide(settings, "+19005550100", OUT).result is Result.ALLOWED

    # deletion: the list leaves the holders index (here a number another list holds too)
    admin.add("watch", [num, "+1202*"])
    assert_index(r)
    assert r.hget("{cs}:n:p", "1202") == "2"
    admin.delete_list("watch")
    assert_index(r)
    assert not r.hexists("{cs}:n:p", "1202")
    assert decide(settings, num, OUT).list_name == "dnc"

    # the opt-out route creates its list in its own script
    async def call_path() -> None:
        client = LeanRedis.from_settings(settings)
        try:
            decision = await opt_out(settings, client, ScreenRequest("+12025550177", IN))
            assert not decision.failed, decision.reason
        finally:
            await client.close()

    asyncio.run(call_path())
    assert_index(r)
    assert decide(settings, "+12025550177", OUT).result is Result.BLOCKED

    # a national registry's list: its line carries the registry and the last load's batch
    path = tmp_path / "203.txt"
    path.write_text("2035550188\n")
    admin.run(admin.services.registry.load("us", [str(path)]))
    assert_index(r)
    assert "\tus\t" in r.hget("{cs}:lk", "g:outbound")
    decision = decide(settings, "+12035550188", OUT)
    assert decision.result is Result.BLOCKED and "Registry" in decision.reason


def test_a_lookup_without_its_index_refuses_rather_than_allows(
    admin: SyncAdmin, r: Any, settings: Settings
) -> None:
    assert decide(settings, "+12025550100", OUT).result is Result.ALLOWED  # empty: nothing applies
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", ["+12025550100"])
    assert decide(settings, "+12025550100", OUT).result is Result.BLOCKED
    r.delete("{cs}:lk")  # data of a layout before the index

    async def lookup() -> None:
        screener = Screener.from_settings(settings)
        try:
            with pytest.raises(StoreError, match="callscreen migrate"):
                await screener.decide(ScreenRequest("+12025550100", OUT))
            failed = await screener.screen(ScreenRequest("+12025550100", OUT))
            assert failed.failed and "migrate" in failed.reason
        finally:
            await screener.close()

    asyncio.run(lookup())
    admin.table.rebuild_lookup_index()
    assert_index(r)
    assert decide(settings, "+12025550100", OUT).result is Result.BLOCKED
