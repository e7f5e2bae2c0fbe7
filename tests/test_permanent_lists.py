"""Permanent means permanent at the list level: a list holding permanently approved
entries refuses every change that would stop one of them from blocking a call it blocks
today — through the services, the CLI and the HTTP API alike (one rule, in
:mod:`callscreen.services.rules`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.cli.exits import EXIT_REFUSED
from callscreen.core.config import Settings
from callscreen.core.errors import Refused
from callscreen.core.model import Action, Direction, Result, Scope
from tests.support.apiserver import ApiServer
from tests.support.blocking import SyncAdmin as Admin
from tests.test_cli import Cli

IN, OUT, BOTH = Direction.INBOUND, Direction.OUTBOUND, Direction.BOTH
NUM = "+33145000004"
OTHER = "+33145000005"


@pytest.fixture
def admin(redis_url: str) -> Iterator[Admin]:
    service = Admin(Settings(redis_url=redis_url, default_region="FR", deadline_ms=10_000))
    yield service
    service.close()


def screen(admin: Admin, number: str, direction: Direction, campaign: str = "") -> Decision:
    """What a real call gets (the Screener over LeanRedis)."""

    async def run() -> Decision:
        client = LeanRedis.from_settings(admin.settings)
        try:
            screener = Screener(admin.settings, client)
            return await screener.screen(ScreenRequest(number, direction, campaign))
        finally:
            await client.close()

    return asyncio.run(run())


def permanent_list(admin: Admin, name: str, action: Action, direction: Direction) -> None:
    admin.create_list(name, action, direction)
    admin.add(name, [NUM, OTHER])
    admin.approve(name, [NUM], permanent=True)


def test_a_block_list_with_permanent_entries_refuses_every_weakening(admin: Admin) -> None:
    permanent_list(admin, "dnc", Action.BLOCK, BOTH)
    weakening = [
        {"action": Action.ALLOW},
        {"action": Action.LABEL},
        {"direction": IN},
        {"direction": OUT},
        {"scope": Scope.CAMPAIGN},
        {"action": Action.LABEL, "new_name": "renamed"},  # refused as a whole
    ]
    for change in weakening:
        with pytest.raises(Refused, match="holds 1 permanently approved entry") as refused:
            admin.update_list("dnc", **change)
        assert "is refused" in str(refused.value), change
    with pytest.raises(Refused, match="holds 1 permanently approved entry: deleting it"):
        admin.delete_list("dnc")
    view = admin.show_list("dnc")
    assert (view.action, view.direction, view.scope) == (Action.BLOCK, BOTH, Scope.GLOBAL)
    for direction in (IN, OUT):
        assert screen(admin, NUM, direction).result is Result.BLOCKED
    # what keeps every block stays free: the name, the description, the same values
    renamed = admin.update_list(
        "dnc", new_name="do-not-call", description="opt-outs", action=Action.BLOCK
    )
    assert (renamed.name, renamed.description) == ("do-not-call", "opt-outs")
    assert screen(admin, NUM, OUT).result is Result.BLOCKED


def test_widening_is_free_and_narrowing_back_is_refused(admin: Admin) -> None:
    permanent_list(admin, "in-only", Action.BLOCK, IN)
    with pytest.raises(Refused, match="narrowing its direction from inbound to outbound"):
        admin.update_list("in-only", direction=OUT)
    assert admin.update_list("in-only", direction=BOTH).direction is BOTH
    with pytest.raises(Refused):
        admin.update_list("in-only", direction=IN)

    admin.create_list("camp", Action.BLOCK, campaign_only=True)
    admin.add("camp", [NUM])
    admin.approve("camp", [NUM], permanent=True)
    assert admin.update_list("camp", scope=Scope.GLOBAL).scope is Scope.GLOBAL
    with pytest.raises(Refused, match="from global to campaign-only"):
        admin.update_list("camp", scope=Scope.CAMPAIGN)


def test_only_permanent_entries_of_a_block_list_hold_it(admin: Admin) -> None:
    # no permanent entry: every change is free
    admin.create_list("plain", Action.BLOCK)
    admin.add("plain", [NUM])
    assert admin.update_list("plain", action=Action.ALLOW, direction=IN).action is Action.ALLOW
    # a label list does not block: its action and direction may change, not its life
    permanent_list(admin, "lab", Action.LABEL, BOTH)
    assert admin.update_list("lab", direction=IN, scope=Scope.CAMPAIGN).direction is IN
    assert admin.update_list("lab", action=Action.BLOCK).action is Action.BLOCK
    # ... and once it blocks, it holds
    with pytest.raises(Refused):
        admin.update_list("lab", action=Action.LABEL)
    with pytest.raises(Refused):
        admin.delete_list("lab")


def test_a_campaign_block_list_stays_with_its_campaigns(admin: Admin) -> None:
    admin.create_list("camp", Action.BLOCK, campaign_only=True)
    admin.create_list("glob", Action.BLOCK)
    admin.create_list("other", Action.LABEL, campaign_only=True)
    for name in ("camp", "glob"):
        admin.add(name, [NUM])
        admin.approve(name, [NUM], permanent=True)
    admin.assign("sales", ["camp", "glob", "other"])
    assert screen(admin, NUM, OUT, "sales").list_name == "camp"
    for lists in ([], ["other"], ["glob"]):
        with pytest.raises(Refused, match="removing it from campaign 'sales'"):
            admin.assign("sales", lists)
    assert admin.campaign("sales").lists == ("camp", "glob", "other")
    # a global list applies to every call, assigned or not; other lists come and go
    assert admin.assign("sales", ["camp"]).lists == ("camp",)
    assert admin.assign("sales", ["camp", "other"]).lists == ("camp", "other")
    assert screen(admin, NUM, OUT, "sales").result is Result.BLOCKED
    # assigning it elsewhere is free; a list without permanent entries leaves freely
    assert admin.assign("support", ["camp"]).lists == ("camp",)
    admin.create_list("loose", Action.BLOCK, campaign_only=True)
    admin.add("loose", [OTHER])
    admin.assign("support", ["camp", "loose"])
    assert admin.assign("support", ["camp"]).lists == ("camp",)


def test_the_cli_refuses_and_the_number_stays_blocked(redis_url: str) -> None:
    cli = Cli(redis_url)
    cli("lists", "create", "review", "--action", "block")
    cli("add", "review", NUM)
    cli("approve", "review", NUM, "--permanent")
    for change in (
        ["--action", "allow"],
        ["--action", "label"],
        ["--direction", "inbound"],
        ["--scope", "campaign"],
    ):
        refused = cli("lists", "update", "review", *change, code=EXIT_REFUSED)
        assert "holds 1 permanently approved entry" in refused.stderr, change
    for direction in ("inbound", "outbound"):
        assert cli.json("check", NUM, "--direction", direction)["result"] == "BLOCKED"
    assert cli.json("lists", "update", "review", "--name", "dnc")["name"] == "dnc"

    cli("lists", "create", "camp", "--action", "block", "--campaign-only")
    cli("add", "camp", OTHER)
    cli("approve", "camp", OTHER, "--permanent")
    cli("campaigns", "assign", "sales", "camp")
    refused = cli("campaigns", "assign", "sales", code=EXIT_REFUSED)
    assert "removing it from campaign 'sales'" in refused.stderr
    assert cli.json("check", OTHER, "--direction", "outbound", "--campaign", "sales")["result"] == (
        "BLOCKED"
    )


def test_the_api_answers_409_naming_the_count(api: ApiServer) -> None:
    with api.client(api.make_key("crm")) as c:
        list_id = c.post("/lists", json={"name": "review", "action": "block"}).json()["id"]
        c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": NUM}, {"number": OTHER}]})
        done = c.post(
            f"/lists/{list_id}/entries:approve", json={"numbers": [NUM, OTHER], "permanent": True}
        )
        assert done.json()["counts"] == {"approved": 2}
        for change in ({"action": "allow"}, {"direction": "outbound"}, {"scope": "campaign"}):
            r = c.patch(f"/lists/{list_id}", json=change)
            assert r.status_code == 409, r.text
            assert r.json()["type"].endswith(":refused")
            assert "holds 2 permanently approved entries" in r.json()["detail"]
        assert c.delete(f"/lists/{list_id}").status_code == 409
        assert c.get(f"/lists/{list_id}").json()["action"] == "block"
        check = c.post("/check", json={"numbers": [NUM], "direction": "inbound"})
        assert check.json()["decisions"][0]["result"] == "BLOCKED", check.text
        renamed = c.patch(f"/lists/{list_id}", json={"name": "dnc", "description": "x"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "dnc"
        camp = c.post(
            "/lists", json={"name": "camp", "action": "block", "scope": "campaign"}
        ).json()["id"]
        c.post(f"/lists/{camp}/entries", json={"entries": [{"number": NUM}]})
        c.post(f"/lists/{camp}/entries:approve", json={"numbers": [NUM], "permanent": True})
        assert c.put("/campaigns/sales/lists", json={"lists": ["camp"]}).status_code == 200
        r = c.put("/campaigns/sales/lists", json={"lists": []})
        assert r.status_code == 409 and "removing it from campaign" in r.json()["detail"]
