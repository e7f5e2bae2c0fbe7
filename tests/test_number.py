"""``callscreen number``: every list that holds a number (any status, by a prefix,
deleted lists from their trail), its decisions inbound/outbound and per campaign, its
first contact and last attempts with totals — against a real Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.cli import app
from callscreen.cli.exits import EXIT_INVALID
from callscreen.core.model import Direction, Result
from callscreen.gateway.attemptlog import CallLog
from callscreen.schema.attempts import LogSettings

NUM = "+33612345678"
OUT, IN = Direction.OUTBOUND, Direction.INBOUND


class Cli:
    def __init__(self, redis_url: str) -> None:
        self.env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(app, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result


@pytest.fixture
def cli(redis_url: str) -> Cli:
    return Cli(redis_url)


async def log_calls(redis_url: str) -> None:
    log = CallLog(LogSettings(flush_interval_s=0.01, node="t"), LeanRedis.from_url(redis_url))
    log.start()
    allowed = Decision(Result.ALLOWED, NUM)
    log.record(ScreenRequest(NUM, OUT, "", "a1"), allowed, 0)
    log.record(ScreenRequest(NUM, IN, "", "a2"), allowed, 0)
    assert await log.flush()
    for i in range(3):
        blocked = Decision(Result.BLOCKED, NUM, "dnc", NUM, "asked us to stop")
        log.record(ScreenRequest(NUM, OUT, "spring", f"b{i}"), blocked, 0)
    labeled = Decision(Result.LABELED, NUM, "spam", "+3361234*", "spam range")
    log.record(ScreenRequest(NUM, IN, "", "l1"), labeled, 0)
    await log.stop()
    await log.client.close()


def setup_lists(cli: Cli, tmp_path: Path) -> None:
    cli("lists", "create", "dnc", "--action", "block", "--direction", "both")
    cli("lists", "create", "spam", "--action", "label", "--direction", "inbound")
    cli("lists", "create", "spring-dnc", "--action", "block", "--campaign-only")
    cli("campaigns", "assign", "spring", "spring-dnc")
    cli("lists", "create", "vip", "--action", "allow")
    cli("lists", "create", "gone", "--action", "block")
    cli("lists", "create", "mistakes", "--action", "block")
    cli("lists", "create", "other", "--action", "block")
    cli("add", "dnc", NUM, "--reason", "asked us to stop", "--by", "alice")
    cli("add", "spam", "+3361234*", "--reason", "spam range")
    cli("add", "spring-dnc", "06 12 34 56 78", "--reason", "spring opt-out")
    cli("add", "gone", NUM, "--reason", "old campaign")
    cli("lists", "delete", "gone", "--yes", "--reason", "campaign over")
    cli("add", "mistakes", NUM, "--reason", "typo", "--external-id", "CRM-7", "--by", "carol")
    cli("remove", "mistakes", NUM, "--reason", "added by mistake", "--by", "bob")
    cli("add", "other", "+33698765432", "--reason", "someone else")
    rows = tmp_path / "vip.csv"
    rows.write_text(f"number,reason\n{NUM},good customer\n")
    cli("import", "vip", str(rows))  # pending review


def test_number_shows_every_list_decision_and_attempt(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    setup_lists(cli, tmp_path)
    asyncio.run(log_calls(redis_url))
    card = json.loads(cli("number", "06 12 34 56 78", "--json").stdout)
    assert card["number"] == NUM
    lists = {item["list_name"]: item for item in card["lists"]}
    assert set(lists) == {"dnc", "spam", "spring-dnc", "vip", "mistakes"}  # not "other"
    [dnc] = lists["dnc"]["entries"]
    assert (dnc["entry"], dnc["kind"], dnc["status"], dnc["enforced"]) == (
        NUM, "number", "active", True,
    )  # fmt: skip
    assert dnc["reason"] == "asked us to stop" and dnc["created_by"] == "alice"
    assert [(h["transition"], h["by"]) for h in dnc["history"]] == [("added", "alice")]
    assert dnc["history"][0]["first_enforced"] and dnc["enforced_since"] is not None
    [spam] = lists["spam"]["entries"]
    assert (spam["entry"], spam["kind"], spam["reason"]) == ("+3361234*", "prefix", "spam range")
    assert lists["spring-dnc"]["campaigns"] == ["spring"]
    assert lists["spring-dnc"]["scope"] == "campaign"
    [vip] = lists["vip"]["entries"]
    assert (vip["status"], vip["enforced"], vip["reason"]) == ("pending", False, "good customer")
    [typo] = lists["mistakes"]["entries"]
    assert (typo["status"], typo["external_id"]) == ("deleted", "CRM-7")
    assert (typo["removed_by"], typo["removed_reason"]) == ("bob", "added by mistake")
    assert [(h["transition"], h["by"]) for h in typo["history"]] == [
        ("added", "carol"),
        ("removed", "bob"),
    ]
    assert [h["transition"] for h in vip["history"]] == ["added"]
    assert vip["enforced_since"] is None  # pending: never enforced
    # the deleted list, from its trail and tombstone
    [gone] = card["deleted_lists"]
    assert (gone["list_name"], gone["reason"], gone["count"]) == ("gone", "campaign over", 1)
    assert [e["op"] for e in gone["events"]] == ["add"] and gone["complete"]
    # decisions: global both ways, and the campaign whose list holds it
    decisions = {(d["direction"], d["campaign"]): d for d in card["decisions"]}
    assert set(decisions) == {
        ("inbound", ""), ("outbound", ""), ("inbound", "spring"), ("outbound", "spring"),
    }  # fmt: skip
    assert (decisions["inbound", ""]["result"], decisions["inbound", ""]["list_name"]) == (
        "BLOCKED",
        "dnc",
    )
    spring = decisions["outbound", "spring"]
    assert spring["result"] == "BLOCKED" and "spring-dnc" in spring["lists_applied"]
    assert {m["list_name"] for m in spring["matches"]} >= {"dnc", "spring-dnc", "vip"}
    # the log: first contact, totals, newest attempts first
    log = card["log"]
    assert log["first_contact"] is not None
    assert log["totals"] == {"ALLOWED": 2, "BLOCKED": 3, "LABELED": 1} and log["total"] == 6
    assert log["attempts"][0]["uniqueid"] == "l1"  # newest first
    assert sorted(a["uniqueid"] for a in log["attempts"]) == ["a1", "a2", "b0", "b1", "b2", "l1"]
    assert log["last_decided_by"] == {"list_name": "spam", "entry": "+3361234*"}
    assert card["registries"] == []

    # one campaign: its decisions only, its attempts only
    one = json.loads(cli("number", NUM, "--campaign", "spring", "--json", "-n", "2").stdout)
    assert {(d["direction"], d["campaign"]) for d in one["decisions"]} == {
        ("inbound", ""), ("outbound", ""), ("inbound", "spring"), ("outbound", "spring"),
    }  # fmt: skip
    assert [a["uniqueid"] for a in one["log"]["attempts"]] == ["b2", "b1"]
    assert one["log"]["more"] and one["log"]["total"] == 6

    text = cli("number", NUM).stdout
    for name in ("dnc", "spam", "spring-dnc", "vip", "mistakes", "gone", "asked us to stop"):
        assert name in text
    assert "first contact: 20" in text


def test_number_of_a_number_nobody_holds_and_bad_input(cli: Cli) -> None:
    cli("lists", "create", "dnc", "--action", "block")
    card = json.loads(cli("number", "+33699999999", "--json").stdout)
    assert card["lists"] == [] and card["deleted_lists"] == []
    assert [d["result"] for d in card["decisions"]] == ["ALLOWED", "ALLOWED"]
    assert card["log"] == {
        "first_contact": None,
        "last_decided_by": None,
        "totals": {},
        "total": 0,
        "attempts": [],
        "more": False,
    }
    assert "no list holds this number" in cli("number", "+33699999999").stdout
    assert "prefix" in cli("number", "+33*", code=EXIT_INVALID).stderr
    cli("number", "not a number", code=EXIT_INVALID)


def test_reasons_and_names_are_printed_as_text(cli: Cli) -> None:
    cli("lists", "create", "[red]x", "--action", "block")
    cli("add", "[red]x", NUM, "--reason", "[bold]not markup[/bold]")
    text = cli("number", NUM).stdout
    assert "[bold]not markup[/bold]" in text and "list [red]x" in text
