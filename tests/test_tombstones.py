"""Deleting a list keeps its history, with a tombstone: who, when, why, how many entries."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import EXIT_NOT_FOUND
from callscreen.core.config import Settings
from callscreen.core.errors import NotFound
from callscreen.core.model import Action
from tests.support.blocking import SyncAdmin
from tests.support.clock import Clock

NUM = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
def admin(redis_url: str) -> SyncAdmin:
    settings = Settings(redis_url=redis_url, default_region="FR", deadline_ms=10_000)
    with SyncAdmin(settings, clock=Clock(1_900_000_000.0, ticking=False)) as service:
        yield service


def test_a_deleted_list_keeps_its_history_and_a_tombstone(admin: SyncAdmin) -> None:
    first = admin.create_list("dnc", Action.BLOCK, by="alice")
    admin.add("dnc", [NUM, OTHER], reason="complaint", by="alice")
    admin.remove("dnc", [OTHER], reason="mistake", by="bob")
    admin.run(admin.acting("carol").lists.delete_list("dnc", "campaign over"))

    events = admin.history("dnc")
    assert [(e.op, e.by) for e in events] == [
        ("delete", "carol"),
        ("remove", "bob"),
        ("add", "alice"),
        ("create", "alice"),
    ]
    assert events[0].reason == "campaign over"
    assert [e.op for e in admin.history("dnc", NUM)] == ["add"]
    tomb = admin.run(admin.services.history.tombstone("dnc"))
    assert tomb is not None
    assert (tomb.list_id, tomb.list_name, tomb.by, tomb.reason) == (
        first.id,
        "dnc",
        "carol",
        "campaign over",
    )
    assert abs(tomb.at - 1_900_000_000) < 0.01 and tomb.count == 2
    assert tomb.detail == "1 active, 1 deleted"

    # a new list of that name: its name gives the live one, --id the deleted one
    second = admin.create_list("dnc", Action.LABEL, by="dave")
    assert [e.op for e in admin.history("dnc")] == ["create"]
    assert admin.run(admin.services.history.tombstone("dnc")) is None
    older = admin.history("dnc", list_id=first.id)
    assert older[0].op == "delete"
    admin.run(admin.acting("erin").lists.delete_list("dnc"))
    assert admin.run(admin.services.history.tombstone("dnc")).list_id == second.id
    assert admin.run(admin.services.history.tombstone("dnc", first.id)).by == "carol"
    assert [e.op for e in admin.history("dnc")] == ["delete", "create"]
    with pytest.raises(NotFound):
        admin.history("dnc", list_id=second.id + 100)
    with pytest.raises(NotFound):
        admin.history("never")


def test_history_of_a_deleted_list_on_the_command_line(redis_url: str) -> None:
    env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result.stdout

    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "--reason", "asked us", "--by", "alice")
    cli("lists", "delete", "dnc", "--yes", "--reason", "merged into dnc2", "--by", "bob")
    out = cli("history", "dnc")
    first = out.splitlines()[0]
    assert first.startswith("list dnc (id 1) deleted ") and "by bob, 1 entries" in first
    assert first.endswith(": merged into dnc2")
    # beside --by, where the command ran: a false --by is visible
    assert re.search(r"  bob \(os: [^@)]+@[^)]+\)  delete", out)
    assert re.search(r"  alice \(os: [^@)]+@[^)]+\)  add", out)
    assert re.search(r"  alice \(os: [^)]+\)  add", cli("history", "dnc", NUM, "--id", "1"))
    cli("history", "dnc", "--id", "7", code=EXIT_NOT_FOUND)
