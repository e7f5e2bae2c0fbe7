"""Bulk transitions by filter: approve, unapprove, remove and restore take the filters
of ``entries`` (status, search, batch, source, creation time) instead of numbers, with a
dry run that counts; pages of the selection are changed one at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from callscreen.cli.exits import EXIT_REFUSED, EXIT_USAGE
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, NeedsConfirmation, Refused
from callscreen.core.model import Action, Status
from callscreen.services import browse, bulkchanges
from callscreen.services.bulkchanges import BulkResult, Selection, selection_of
from tests.support.blocking import SyncAdmin as Admin
from tests.support.clock import Clock
from tests.test_cli import Cli

PENDING = Status.PENDING


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_admin(redis_url: str, clock: Clock, **more: Any) -> Admin:
    settings = Settings(redis_url=redis_url, default_region="FR", **more)
    return Admin(settings, clock=clock)


@pytest.fixture
def admin(redis_url: str, clock: Clock) -> Iterator[Admin]:
    service = make_admin(redis_url, clock)
    service.create_list("dnc", Action.BLOCK)
    yield service
    service.close()


def numbers(start: int, count: int) -> list[str]:
    return [f"+336120{n:05d}" for n in range(start, start + count)]


def bulk(admin: Admin, op: str, selection: Selection, by: str = "", **options: Any) -> BulkResult:
    services = admin.acting(by)
    result: BulkResult = admin.run(services.bulk.change("dnc", op, selection, **options))
    return result


def statuses(admin: Admin) -> dict[str, Status]:
    page = admin.list_entries("dnc", limit=1000)
    return {view.entry: view.status for view in page.entries}


def test_approve_by_batch_a_page_at_a_time_with_a_dry_run_first(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = admin.add("dnc", numbers(0, 7), status=PENDING, reason="import 1")
    admin.add("dnc", numbers(100, 4), status=PENDING, reason="import 2")
    admin.add("dnc", numbers(200, 2))  # active
    chosen = Selection(keep=browse.Filter(batch=first.batch))
    dry = bulk(admin, "approve", chosen, dry_run=True)
    assert (dry.dry_run, dry.matched, dry.by_status) == (True, 7, {"pending": 7})
    assert set(dry.sample) == set(numbers(0, 7)) and dry.changes == ()
    assert admin.show_list("dnc").counts["pending"] == 11  # nothing written
    monkeypatch.setattr(bulkchanges, "PAGE", 3)
    done = bulk(admin, "approve", chosen, by="bob")
    assert done.outcomes == {"approved": 7} and done.matched == 7
    assert len(done.changes) == 3  # pages of 3, 3 and 1: one change each
    now = statuses(admin)
    assert all(now[n] is Status.ACTIVE for n in numbers(0, 7))
    assert all(now[n] is PENDING for n in numbers(100, 4))
    approvals = [e for e in admin.history("dnc") if e.op == "approve"]
    assert [e.count for e in approvals] == [1, 3, 3] and {e.by for e in approvals} == {"bob"}
    # and again: nothing pending is left in that batch
    again = bulk(admin, "approve", chosen)
    assert (again.matched, again.changes, again.outcomes) == (0, (), {})


def test_each_transition_takes_what_it_changes(admin: Admin) -> None:
    admin.add("dnc", [*numbers(0, 3), "+33699000001"])
    admin.add("dnc", numbers(10, 2), status=PENDING)
    admin.approve("dnc", ["+33699000001"], permanent=True)
    # unapprove: the active ones (never the permanent one)
    done = bulk(admin, "unapprove", Selection(search="+3361200"))
    assert done.outcomes == {"unapproved": 3}
    assert statuses(admin)["+33699000001"] is Status.PERMANENT
    # remove needs a reason; takes pending, active and expired ones, never permanent
    with pytest.raises(InvalidInput, match="reason"):
        bulk(admin, "remove", Selection(search="06120"))
    dry = bulk(admin, "remove", Selection(), reason="cleanup", dry_run=True)
    assert dry.matched == 5 and dry.by_status == {"pending": 5}
    removed = bulk(admin, "remove", Selection(search="061200000"), reason="cleanup")
    assert removed.outcomes == {"removed": 3}
    assert admin.show_entry("dnc", numbers(0, 1)[0]).removed_reason == "cleanup"
    # restore: removed ones
    assert bulk(admin, "restore", Selection(status=Status.DELETED)).outcomes == {"restored": 3}
    with pytest.raises(InvalidInput, match="--status permanent selects none"):
        bulk(admin, "remove", Selection(status=Status.PERMANENT), reason="x")
    with pytest.raises(InvalidInput, match="--status deleted selects none"):
        bulk(admin, "approve", Selection(status=Status.DELETED))
    with pytest.raises(InvalidInput):
        bulk(admin, "unapprove", Selection(), permanent=True)


def test_source_and_creation_time(admin: Admin, clock: Clock) -> None:
    admin.add("dnc", numbers(0, 2), status=PENDING)
    clock.advance(10 * 86400)
    admin.run(admin.services.entries.add("dnc", numbers(50, 3), status=PENDING, source="crm-sync"))
    now = clock()
    old = selection_of(created_before="5d", now=now)
    assert old is not None and bulk(admin, "approve", old, dry_run=True).matched == 2
    new = selection_of(created_after="5d", now=now)
    assert new is not None and bulk(admin, "approve", new, dry_run=True).matched == 3
    crm = selection_of(source="crm-sync", now=now)
    assert crm is not None and bulk(admin, "approve", crm).outcomes == {"approved": 3}
    assert selection_of(now=now) is None
    with pytest.raises(InvalidInput, match="--created-after"):
        selection_of(created_after="yesterday", now=now)


def test_permanent_approval_checks_the_whole_selection_first(
    redis_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulkchanges, "PAGE", 2)
    with make_admin(redis_url, clock, four_eyes=True) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", numbers(0, 5), status=PENDING, by="alice")
        admin.add("dnc", numbers(10, 1), status=PENDING, by="bob")
        pending = Selection(status=PENDING)
        # bob added one of them: the four-eyes rule refuses the whole change
        with pytest.raises(Refused, match="four-eyes"):
            bulk(admin, "approve", pending, by="bob", permanent=True)
        assert admin.show_list("dnc").counts["permanent"] == 0
        done = bulk(admin, "approve", Selection(search="061200000"), by="bob", permanent=True)
        assert done.outcomes == {"approved": 5} and len(done.changes) == 3
        # a whole country code: confirmed first, or nothing at all
        admin.add("dnc", ["+33*", "+4420*"], by="alice")
        with pytest.raises(NeedsConfirmation, match=r"\+33\*"):
            bulk(admin, "approve", Selection(status=Status.ACTIVE), by="bob", permanent=True)
        assert admin.show_list("dnc").counts["permanent"] == 5
        sure = bulk(
            admin,
            "approve",
            Selection(status=Status.ACTIVE),
            by="bob",
            permanent=True,
            confirm_broad=True,
        )
        assert sure.outcomes == {"approved": 2}


def test_the_cli_takes_filters_and_a_dry_run(redis_url: str) -> None:
    cli = Cli(redis_url)
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", "+33612000001", "+33612000002", "+33698000001")
    cli("unapprove", "dnc", "+33612000001", "+33612000002", "+33698000001")
    dry = cli("approve", "dnc", "--status", "pending", "--search", "+33612", "--dry-run")
    assert "would approve 2 entries of dnc (status pending, search +33612): 2 pending" in (
        dry.stdout
    )
    assert cli.json("lists", "show", "dnc")["counts"]["pending"] == 3
    done = json.loads(cli("approve", "dnc", "--search", "0612", "--json").stdout)
    assert done["outcomes"] == {"approved": 2} and done["matched"] == 2
    assert done["dry_run"] is False and len(done["batches"]) <= 1
    text = cli("remove", "dnc", "--status", "active", "--reason", "audit").stdout
    assert "dnc: 2 removed of 2 entries matching (status active), in 1 change" in text
    assert "restored 2 entries" in cli("restore", "dnc", "--status", "deleted").stdout
    dry = cli("unapprove", "dnc", "--search", "+3361", "--dry-run").stdout
    assert "would unapprove 2 entries of dnc (search +3361): 2 active" in dry
    # the old ways still work
    assert "approved" in cli("approve", "dnc", "--all-pending").stdout
    cli("approve", "dnc", "+33612000001", "--status", "pending", code=EXIT_USAGE)
    cli("approve", "dnc", "+33612000001", "--dry-run", code=EXIT_USAGE)
    cli("approve", "dnc", "--all-pending", "--status", "pending", code=EXIT_USAGE)
    cli("unapprove", "dnc", code=EXIT_USAGE)
    # a permanent approval of a whole country code needs confirming (no terminal here)
    cli("add", "dnc", "+33*")
    refused = cli(
        "approve", "dnc", "--status", "active", "--permanent", "--search", "+33", code=EXIT_REFUSED
    )
    assert "--confirm-country" in refused.stderr
    assert cli.json("lists", "show", "dnc")["counts"]["permanent"] == 0


def test_a_large_list_is_walked_by_position_without_skipping_or_repeating(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callscreen.services import entries as entries_module

    monkeypatch.setattr(entries_module, "PAGE_SMALL_LIST", 0)  # the bucket-walking path
    monkeypatch.setattr(entries_module, "PAGE_MAX_BUCKETS", 8192)
    monkeypatch.setattr(bulkchanges, "PAGE", 4)
    wanted = [*numbers(0, 9), "+3370*", "+4420*"]
    admin.add("dnc", wanted, status=PENDING)
    admin.add("dnc", numbers(500, 3))
    done = bulk(admin, "approve", Selection())
    assert done.outcomes == {"approved": 11} and done.matched == 11
    assert sum(c.changed for c in done.changes) == 11 and len(done.changes) == 3
    assert admin.show_list("dnc").counts["pending"] == 0


def test_the_api_takes_the_same_filters(api: Any) -> None:
    with api.client(api.make_key("crm")) as c:
        list_id = c.post("/lists", json={"name": "dnc", "action": "block"}).json()["id"]
        first = c.post(
            f"/lists/{list_id}/entries",
            json={"entries": [{"number": n} for n in numbers(0, 3)], "status": "pending"},
        ).json()
        c.post(
            f"/lists/{list_id}/entries",
            json={"entries": [{"number": n} for n in numbers(10, 2)], "status": "pending"},
        )
        url = f"/lists/{list_id}/entries:approve"
        by_batch = {"filter": {"batch": first["batches"][0]}}
        dry = c.post(url, json={**by_batch, "dry_run": True}).json()
        assert dry["dry_run"] is True and dry["counts"] == {"pending": 3}
        assert set(dry["entries"]) == set(numbers(0, 3))
        done = c.post(url, json=by_batch).json()
        assert done["counts"] == {"approved": 3} and done["changed"] == 3
        assert done["by"] == "key:crm"
        recent = {"filter": {"created_after": "1d", "status": "pending"}}
        assert c.post(url, json={**recent, "dry_run": True}).json()["counts"] == {"pending": 2}
        gone = c.post(
            f"/lists/{list_id}/entries:remove",
            json={"filter": {"search": "+3361200000"}, "reason": "cleanup"},
        ).json()
        assert gone["counts"] == {"removed": 3}
        r = c.post(url, json={"filter": {"created_before": "soon"}})
        assert r.status_code == 422, r.text
