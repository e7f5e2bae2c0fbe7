"""The admin services against a real Redis: lists, entries and their life, campaigns,
the audit trail, and what screening then decides (through the Screener over
LeanRedis, as on a real call)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import (
    Conflict,
    InvalidInput,
    InvalidName,
    InvalidNumber,
    NeedsConfirmation,
    NotFound,
    Refused,
    Unauthenticated,
)
from callscreen.core.model import Action, Direction, Result, Scope, Status
from callscreen.services import entries
from tests.support.blocking import SyncAdmin as Admin
from tests.support.clock import Clock

IN, OUT = Direction.INBOUND, Direction.OUTBOUND
NUM = "+33612345678"
OTHER = "+33698765432"


def make_settings(redis_url: str) -> Settings:
    # a generous deadline: these tests are about what is decided, on a shared machine
    return Settings(redis_url=redis_url, default_region="FR", deadline_ms=10_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin(redis_url: str, clock: Clock) -> Iterator[Admin]:
    service = Admin(make_settings(redis_url), clock=clock)
    yield service
    service.close()


def screen(admin: Admin, number: str, direction: Direction = IN, campaign: str = "") -> Decision:
    """What a real call gets: the Screener over LeanRedis, deadline and fail policy
    included (a failure would show as UNSCREENED, never as a wrong list)."""

    async def run() -> Decision:
        client = LeanRedis.from_settings(admin.settings)
        try:
            screener = Screener(admin.settings, client, clock=admin.ctx.clock)
            return await screener.screen(ScreenRequest(number, direction, campaign))
        finally:
            await client.close()

    return asyncio.run(run())


def statuses(admin: Admin, list_name: str) -> dict[str, Status]:
    page = admin.list_entries(list_name, limit=1000)
    return {view.entry: view.status for view in page.entries}


def recount(admin: Admin, list_name: str) -> dict[str, int]:
    """Counts by effective status, from a full scan (the slow truth)."""
    info = admin.table.get_list(list_name)
    now = admin.ctx.clock()
    scanned = admin.portal.collect(entries.scan_entries(admin.ctx.table, info))
    found = Counter(record.effective_status(now).value for _key, record in scanned)
    return {status.value: found.get(status.value, 0) for status in Status}


def add_pending(admin: Admin, list_name: str, *raw: str) -> None:
    """Entries pending review, as an import without --approve leaves them."""
    info = admin.table.get_list(list_name)
    batch = admin.table.new_batch("import", reason="registry", source="file.csv", by="importer")
    keys = admin.parse_entries(raw)
    admin.run(entries.add_entries(admin.ctx.table, info, keys, batch, status=Status.PENDING))


# -- lists -----------------------------------------------------------------------------


def test_list_lifecycle(admin: Admin) -> None:
    view = admin.create_list("dnc", Action.BLOCK, IN, description="opt-outs", by="alice")
    assert (view.scope, view.created_by, view.total) == (Scope.GLOBAL, "alice", 0)
    with pytest.raises(Conflict):
        admin.create_list("dnc", Action.LABEL)

    updated = admin.update_list("dnc", description="do not call", by="bob")
    assert updated.action is Action.BLOCK and updated.direction is IN  # untouched
    assert (updated.description, updated.updated_by) == ("do not call", "bob")

    renamed = admin.update_list("dnc", new_name="do-not-call", direction=Direction.BOTH)
    assert renamed.name == "do-not-call" and renamed.direction is Direction.BOTH
    with pytest.raises(NotFound):
        admin.show_list("dnc")
    with pytest.raises(InvalidName):
        admin.update_list("do-not-call", new_name="")

    admin.create_list("allow", Action.ALLOW)
    assert [v.name for v in admin.list_lists()] == ["allow", "do-not-call"]
    assert admin.delete_list("allow").list_name == "allow"
    assert [v.name for v in admin.list_lists()] == ["do-not-call"]


def test_list_names_and_descriptions_are_bounded(admin: Admin) -> None:
    with pytest.raises(InvalidName):
        admin.create_list("", Action.BLOCK)
    with pytest.raises(InvalidName):
        admin.create_list("x" * 501, Action.BLOCK)
    assert admin.create_list("x" * 500, Action.BLOCK).name == "x" * 500
    with pytest.raises(InvalidInput):
        admin.create_list("y", Action.BLOCK, description="d" * 2001)


def test_delete_list_removes_every_key_but_its_history(admin: Admin) -> None:
    admin.create_list("gone", Action.BLOCK)
    admin.create_list("kept", Action.BLOCK)
    admin.add("gone", [NUM, "+3389*"], expires="30d")
    admin.add("kept", [NUM])
    admin.assign("camp", ["gone"])
    before = set(admin.table.r.keys("*"))
    gone_id = admin.table.list_id("gone")
    result = admin.delete_list("gone")
    assert result.counts["active"] == 2
    after = set(admin.table.r.keys("*"))
    leftover = {k for k in after if f":{gone_id}:" in k or k.endswith(f":{gone_id}")}
    keys = admin.table.keys
    assert leftover == {keys.history(gone_id), keys.tombstone(gone_id)}  # the evidence
    assert after - before == {keys.tombstone(gone_id), keys.tombstones}
    assert admin.campaigns() == []  # the campaign had only that list
    assert screen(admin, NUM).list_name == "kept"


# -- adding entries --------------------------------------------------------------------


def test_add_updates_an_existing_entry_and_says_so(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    first = admin.add("dnc", [NUM, "06 12 34 56 78", "+3389*"], reason="asked us", by="alice")
    assert first.outcomes == {"added": 2}  # the national form is the same number
    again = admin.add("dnc", [NUM], reason="asked us")
    assert again.entries == {NUM: "unchanged"}
    changed = admin.add("dnc", [NUM], external_id="T-1")
    assert changed.entries == {NUM: "updated"}
    page = admin.list_entries("dnc")
    assert page.total == 2
    view = next(v for v in page.entries if v.entry == NUM)
    # what was not given is kept: the reason; the last change is the update
    assert (view.reason, view.external_id) == ("asked us", "T-1")
    assert (view.updated_by, view.last_change) == ("tester", "updated")
    steps = admin.transitions("dnc", NUM)
    assert [(t.transition, t.by, t.reason) for t in steps] == [
        ("added", "alice", "asked us"),
        ("updated", "tester", ""),
    ]
    assert admin.show_list("dnc").counts["active"] == 2


def test_add_refuses_bad_entries_and_writes_nothing(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    with pytest.raises(InvalidNumber, match="abc"):
        admin.add("dnc", [NUM, "abc"])
    assert admin.list_entries("dnc").total == 0
    with pytest.raises(NotFound):
        admin.add("nope", [NUM])


def test_national_entry_matches_e164_call(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", ["06 12 34 56 78"], reason="complaint")
    decision = screen(admin, NUM)
    assert decision.result is Result.BLOCKED and decision.reason == "complaint"


# -- permanent entries -----------------------------------------------------------------


def test_permanent_entries_cannot_be_unapproved_removed_or_deleted(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, OTHER])
    assert admin.approve("dnc", [NUM], permanent=True).entries == {NUM: "approved"}

    with pytest.raises(Refused, match="permanent"):
        admin.remove("dnc", [OTHER, NUM], reason="cleanup")
    with pytest.raises(Refused, match="permanent"):
        admin.unapprove("dnc", [OTHER, NUM])
    with pytest.raises(Refused, match="permanent"):
        admin.delete_list("dnc")
    # nothing changed, not even the other entry of the refused commands
    assert statuses(admin, "dnc") == {NUM: Status.PERMANENT, OTHER: Status.ACTIVE}
    assert screen(admin, NUM).result is Result.BLOCKED
    assert screen(admin, OTHER).result is Result.BLOCKED

    # adding it again changes nothing of it: permanent, unchanged
    assert admin.add("dnc", [NUM], reason="again").entries == {NUM: "permanent-unchanged"}
    assert statuses(admin, "dnc")[NUM] is Status.PERMANENT
    assert admin.show_list("dnc").counts == {
        "pending": 0,
        "active": 1,
        "permanent": 1,
        "deleted": 0,
        "expired": 0,
    }


def test_a_permanent_entry_is_frozen_against_every_add(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM], reason="court order", external_id="CASE-1", expires="30d")
    admin.add("dnc", [OTHER], reason="asked us")
    admin.approve("dnc", [NUM], permanent=True)
    frozen = raw_record(admin, "dnc", NUM)
    shown = admin.show_entry("dnc", NUM)
    assert shown.expires is None  # a permanent approval clears the expiry
    info = admin.table.get_list("dnc")
    assert admin.table.r.zcard(admin.table.keys.expiring(info.id)) == 0

    attempts = [
        {"reason": "overwrite"},
        {"external_id": "CASE-2"},
        {"expires": "0d"},
        {"expires": "2099-01-01"},
        {"reason": "pending copy", "status": Status.PENDING},
    ]
    for options in attempts:
        result = admin.add("dnc", [NUM, OTHER], **options)  # type: ignore[arg-type]
        assert result.entries[NUM] == "permanent-unchanged", options
        assert result.outcomes["permanent-unchanged"] == 1
        assert any("permanent, unchanged" in note for note in result.notes)
        assert raw_record(admin, "dnc", NUM) == frozen, options
    # a past expiry is said of the entries it was applied to, not of the permanent one
    past = admin.add("dnc", [NUM], expires="0d")
    assert not any("do not match" in note for note in past.notes)
    assert past.changed == 0
    view = admin.show_entry("dnc", NUM)
    assert (view.status, view.reason, view.external_id, view.expires) == (
        Status.PERMANENT,
        "court order",
        "CASE-1",
        None,
    )
    assert screen(admin, NUM).result is Result.BLOCKED
    assert admin.show_list("dnc").counts == recount(admin, "dnc")


def test_permanent_approval_of_a_whole_country_code_needs_confirmation(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", ["+33*", "+1*", "+331*"])
    for entry in ("+33*", "+1*"):
        with pytest.raises(NeedsConfirmation):
            admin.approve("dnc", [entry, "+331*"], permanent=True)
    assert set(statuses(admin, "dnc").values()) == {Status.ACTIVE}
    assert admin.approve("dnc", ["+331*"], permanent=True).changed == 1  # not a whole code
    assert admin.approve("dnc", ["+33*"], permanent=True, confirm_broad=True).changed == 1
    assert admin.approve("dnc", ["+1*"]).outcomes == {"unchanged": 1}  # not permanent: fine


def test_transitions_of_missing_entries_are_refused(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM])
    with pytest.raises(NotFound):
        admin.remove("dnc", [NUM, OTHER], reason="x")
    assert statuses(admin, "dnc") == {NUM: Status.ACTIVE}
    with pytest.raises(InvalidInput):
        admin.remove("dnc", [NUM], reason=" ")


# -- pending entries -------------------------------------------------------------------


def test_pending_entries_are_not_enforced_but_check_shows_them(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    add_pending(admin, "dnc", NUM)
    assert admin.show_list("dnc").counts["pending"] == 1
    assert screen(admin, NUM).result is Result.ALLOWED

    check = admin.check(NUM)
    assert check.result == "ALLOWED"
    assert [(m.entry, m.status, m.enforced) for m in check.matches] == [
        (NUM, Status.PENDING, False)
    ]
    assert "pending review" in check.explanation

    assert admin.approve("dnc", [NUM]).entries == {NUM: "approved"}
    assert screen(admin, NUM).result is Result.BLOCKED
    assert admin.unapprove("dnc", [NUM]).entries == {NUM: "unapproved"}
    assert screen(admin, NUM).result is Result.ALLOWED
    assert admin.show_list("dnc").counts["pending"] == 1


def test_approve_all_pending(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [OTHER])
    add_pending(admin, "dnc", NUM, "+3389*", "+33*")
    with pytest.raises(InvalidInput):
        admin.approve("dnc", [NUM], all_pending=True)
    with pytest.raises(NeedsConfirmation):
        admin.approve("dnc", all_pending=True, permanent=True)
    result = admin.approve("dnc", all_pending=True)
    assert result.outcomes == {"approved": 3}
    assert admin.show_list("dnc").counts["pending"] == 0
    assert screen(admin, "+33891234567").result is Result.BLOCKED
    assert admin.approve("dnc", all_pending=True).changed == 0


# -- soft delete, restore, purge -------------------------------------------------------


def test_removed_entry_stops_matching_at_once_and_can_be_restored(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, "+3389*"], reason="complaint", by="alice")
    assert screen(admin, NUM).result is Result.BLOCKED

    removed = admin.remove("dnc", [NUM, "+3389*"], reason="court order", by="bob")
    assert removed.outcomes == {"removed": 2}
    assert screen(admin, NUM).result is Result.ALLOWED
    assert screen(admin, "+33891234567").result is Result.ALLOWED

    view = admin.list_entries("dnc", status=Status.DELETED).entries[0]
    assert (view.removed_by, view.removed_reason) == ("bob", "court order")
    assert view.removed_at is not None and view.reason == "complaint"
    assert admin.show_list("dnc").counts["deleted"] == 2
    # removing again changes nothing
    assert admin.remove("dnc", [NUM], reason="again").outcomes == {"unchanged": 1}
    with pytest.raises(Refused, match="restore"):
        admin.approve("dnc", [NUM])

    assert admin.restore("dnc", [NUM]).entries == {NUM: "restored"}
    decision = screen(admin, NUM)
    assert decision.result is Result.BLOCKED and decision.reason == "complaint"
    assert statuses(admin, "dnc") == {NUM: Status.ACTIVE, "+3389*": Status.DELETED}
    assert admin.show_list("dnc").counts == recount(admin, "dnc")


def test_add_restores_a_removed_entry(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM])
    admin.remove("dnc", [NUM], reason="mistake")
    assert admin.add("dnc", [NUM]).entries == {NUM: "restored"}
    assert screen(admin, NUM).result is Result.BLOCKED


def test_purge_deletes_only_entries_removed_before_the_date(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, OTHER, "+3389*"])
    admin.remove("dnc", [NUM, "+3389*"], reason="old")
    assert admin.purge("dnc", "2000-01-01").changed == 0
    assert admin.purge("dnc", "1d").changed == 0  # removed less than a day ago
    clock.advance(2)
    result = admin.purge("dnc", "1s")
    assert result.outcomes == {"purged": 2}
    assert statuses(admin, "dnc") == {OTHER: Status.ACTIVE}
    assert admin.show_list("dnc").counts == recount(admin, "dnc")
    with pytest.raises(InvalidInput):
        admin.purge("dnc", "yesterday")


def raw_record(admin: Admin, list_name: str, entry: str) -> str:
    info = admin.table.get_list(list_name)
    key = admin.parse_entries([entry])[0]
    hkey, hfield = entries.entry_location(admin.table.keys, admin.table.buckets, info.id, key)
    return str(admin.table.r.hget(hkey, hfield))


def test_an_entry_keeps_who_created_it_through_every_change(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, OTHER], reason="asked us", by="alice")
    created = admin.list_entries("dnc").entries[0]
    assert (created.created_by, created.created_at) == ("alice", created.updated_at)
    first = int(raw_record(admin, "dnc", NUM).split(";")[1])
    assert raw_record(admin, "dnc", NUM) == f"a;{first}"  # nothing stored for it

    admin.add("dnc", [NUM], reason="asked again", external_id="T;1", by="bob")
    second = int(raw_record(admin, "dnc", NUM).split(";")[1])
    # the creation batch, then the trail: updated by the second batch
    assert raw_record(admin, "dnc", NUM) == f"a;{second};;;{first}u{second};T;1"
    admin.remove("dnc", [NUM], reason="mistake", by="carol")
    admin.restore("dnc", [NUM], by="dave")
    admin.unapprove("dnc", [NUM])
    admin.add("dnc", [NUM], by="erin")  # no reason: keeps bob's batch
    admin.add("dnc", [NUM], reason="third", by="frank")
    admin.approve("dnc", [NUM], permanent=True)
    admin.add("dnc", [NUM], reason="fourth", by="gus")  # permanent: unchanged
    view = next(v for v in admin.list_entries("dnc").entries if v.entry == NUM)
    assert (view.status, view.external_id, view.reason) == (Status.PERMANENT, "T;1", "third")
    # the last transition is the permanent approval (gus's add changed nothing)
    assert (view.created_by, view.updated_by) == ("alice", "tester")
    assert view.last_change == "approved-permanently"
    assert view.created_at is not None and view.updated_at is not None
    assert view.created_at <= view.updated_at
    assert view.to_json()["created_by"] == "alice"
    # the creation is still in the entry's history, named by its batch
    assert [e.op for e in admin.history("dnc", NUM)][-1] == "add"
    assert admin.history("dnc", NUM)[-1].by == "alice"
    # a removed and re-added entry was created once
    admin.remove("dnc", [OTHER], reason="x", by="gina")
    admin.add("dnc", [OTHER], reason="back", by="hank")
    other = next(v for v in admin.list_entries("dnc").entries if v.entry == OTHER)
    assert (other.created_by, other.updated_by, other.status) == ("alice", "hank", Status.ACTIVE)
    assert other.last_change == "restored"  # an add of a removed entry restores it
    assert admin.show_list("dnc").counts == recount(admin, "dnc")


def test_every_transition_is_on_the_entry_with_who_and_when(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM], reason="asked us", by="alice", status=Status.PENDING)
    lead = raw_record(admin, "dnc", NUM).split(";")[:3]
    admin.approve("dnc", [NUM], by="bob")
    # an approval leaves the fields the lookup reads as they were (status aside)
    assert raw_record(admin, "dnc", NUM).split(";")[1:3] == lead[1:3]
    view = admin.show_entry("dnc", NUM)
    assert (view.last_change, view.updated_by, view.reason) == ("approved", "bob", "asked us")
    admin.unapprove("dnc", [NUM], by="carol")
    admin.approve("dnc", [NUM], by="dave")
    admin.remove("dnc", [NUM], reason="mistake", by="erin")
    admin.restore("dnc", [NUM], by="frank")
    admin.add("dnc", [NUM], reason="asked again", by="gina")
    admin.approve("dnc", [NUM], permanent=True, by="hank")
    steps = admin.transitions("dnc", NUM)
    assert [(t.transition.value, t.by) for t in steps] == [
        ("added", "alice"),
        ("approved", "bob"),
        ("unapproved", "carol"),
        ("approved", "dave"),
        ("removed", "erin"),
        ("restored", "frank"),
        ("updated", "gina"),
        ("approved-permanently", "hank"),
    ]
    assert [t.first_enforced for t in steps] == [False, True, *[False] * 6]
    assert steps[4].reason == "mistake" and steps[6].reason == "asked again"
    ats = [t.at for t in steps]
    assert all(ats) and ats == sorted(ats)  # type: ignore[type-var]
    view = admin.show_entry("dnc", NUM)
    assert (view.last_change, view.updated_by, view.updated_at) == (
        "approved-permanently",
        "hank",
        steps[-1].at,
    )
    assert admin.show_list("dnc").counts == recount(admin, "dnc")
    # an expiry needs no write: it shows as the last transition, at the expiry
    admin.add("dnc", [OTHER], reason="short", expires="1d", by="ivan")
    clock.advance(3 * 86400)
    *_, expired = admin.transitions("dnc", OTHER)
    assert (expired.transition.value, expired.by, expired.batch) == ("expired", "", None)
    assert admin.show_entry("dnc", OTHER).last_change == "expired"
    with pytest.raises(NotFound):
        admin.transitions("dnc", "+33600000000")


def test_a_bulk_approval_points_every_entry_at_one_batch(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    numbers = [f"+336{n:08d}" for n in range(1500)]
    add_pending(admin, "dnc", *numbers)
    before = {n: raw_record(admin, "dnc", n) for n in numbers[:3]}
    seq = int(admin.table.r.get(admin.table.keys.batch_seq))
    assert admin.approve("dnc", all_pending=True, by="bob").outcomes == {"approved": 1500}
    assert int(admin.table.r.get(admin.table.keys.batch_seq)) == seq + 1  # one batch record
    for n, raw in before.items():
        # "p;B;;;~;" becomes "a;B;;;!aA;": the reason is not rewritten, one item is added
        assert raw_record(admin, "dnc", n) == "a" + raw[1:].replace("~", f"!a{seq + 1}")
    view = admin.show_entry("dnc", numbers[0])
    assert (view.reason, view.updated_by, view.last_change) == ("registry", "bob", "approved")
    assert admin.show_list("dnc").counts["active"] == 1500
    # nothing pending: a scheduled approval writes no batch record
    assert admin.approve("dnc", all_pending=True).outcomes == {}
    assert int(admin.table.r.get(admin.table.keys.batch_seq)) == seq + 1


def test_the_time_an_entry_was_first_enforced_is_set_once(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM], reason="asked us", by="alice")
    admin.add("dnc", [OTHER], reason="to review", status=Status.PENDING)
    added = admin.show_entry("dnc", NUM)
    assert added.enforced_since == added.created_at
    assert admin.show_entry("dnc", OTHER).enforced_since is None  # pending: not yet
    clock.advance(60)
    admin.approve("dnc", [OTHER], by="bob")
    approved = admin.show_entry("dnc", OTHER)
    assert approved.enforced_since == approved.updated_at != approved.created_at
    # later changes never move it: a new reason, an unapproval and a new approval, a
    # removal and a restore
    for step in range(3):
        clock.advance(60)
        admin.add("dnc", [NUM, OTHER], reason=f"new reason {step}")
    admin.unapprove("dnc", [OTHER])
    admin.approve("dnc", [OTHER])
    admin.remove("dnc", [NUM], reason="x")
    admin.restore("dnc", [NUM])
    admin.approve("dnc", [NUM], permanent=True)
    assert admin.show_entry("dnc", NUM).enforced_since == added.enforced_since
    assert admin.show_entry("dnc", OTHER).enforced_since == approved.enforced_since


def test_records_of_the_earlier_five_field_format_are_read_and_kept(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, OTHER], reason="old", by="alice")
    info = admin.table.get_list("dnc")
    batch = int(raw_record(admin, "dnc", NUM).split(";")[1])
    for number in (NUM, OTHER):
        key = admin.parse_entries([number])[0]
        hkey, hfield = entries.entry_location(admin.table.keys, admin.table.buckets, info.id, key)
        admin.table.r.hset(hkey, hfield, f"a;{batch};;;CRM-7")  # s;batch;expires;removal;extid
    view = next(v for v in admin.list_entries("dnc").entries if v.entry == NUM)
    assert (view.external_id, view.created_by) == ("CRM-7", "alice")
    assert screen(admin, NUM).result is Result.BLOCKED
    admin.remove("dnc", [NUM], reason="x")
    removed = raw_record(admin, "dnc", NUM).split(";")
    assert (removed[0], removed[4], removed[5]) == ("d", f"d{removed[3]}", "CRM-7")
    admin.add("dnc", [OTHER], reason="new", by="bob")
    assert f";{batch}u" in raw_record(admin, "dnc", OTHER)  # created kept
    assert raw_record(admin, "dnc", OTHER).endswith(";CRM-7")


def test_lookup_reads_the_expiry_of_an_entry_with_a_creation_batch(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM, OTHER], reason="first", by="alice")
    admin.add("dnc", [NUM], reason="second", expires="2000-01-01", by="bob")
    admin.add("dnc", [OTHER], reason="second", expires="2099-01-01", by="bob")
    assert raw_record(admin, "dnc", NUM).count(";") == 5  # expiry and creation stored
    assert screen(admin, NUM).result is Result.ALLOWED  # expired
    assert screen(admin, OTHER).result is Result.BLOCKED
    assert [m.status for m in admin.check(NUM).matches] == [Status.EXPIRED]


# -- expiry ----------------------------------------------------------------------------


def test_expired_entries_stop_matching_on_time(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    short = admin.add("dnc", [NUM], expires="1s")
    assert short.notes == ()
    past = admin.add("dnc", [OTHER], expires="2020-01-31")
    assert "past" in past.notes[0]
    assert screen(admin, OTHER).result is Result.ALLOWED
    assert screen(admin, NUM).result is Result.BLOCKED
    clock.advance(2.0)  # whole seconds, rounded up: "1s" lasts 1 s at least, less than 2
    assert screen(admin, NUM).result is Result.ALLOWED  # no job ran
    counts = admin.show_list("dnc").counts
    assert (counts["active"], counts["expired"]) == (0, 2)
    assert counts == recount(admin, "dnc")
    expired = admin.list_entries("dnc", status=Status.EXPIRED)
    assert {v.entry for v in expired.entries} == {NUM, OTHER}
    assert expired.entries[0].expires is not None
    check = admin.check(NUM)
    assert [m.status for m in check.matches] == [Status.EXPIRED]

    # a new expiry (or a permanent approval) brings it back
    admin.add("dnc", [NUM], expires="2099-12-31")
    assert screen(admin, NUM).result is Result.BLOCKED
    admin.approve("dnc", [OTHER], permanent=True)
    assert screen(admin, OTHER).result is Result.BLOCKED
    assert admin.show_list("dnc").counts == recount(admin, "dnc")


# -- campaigns and directions ----------------------------------------------------------


def test_global_list_assigned_to_a_campaign_changes_nothing(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM])
    admin.assign("sales", ["dnc"])
    for campaign in ("", "sales", "other"):
        assert screen(admin, NUM, OUT, campaign).result is Result.BLOCKED
    assert admin.campaign("sales").lists == ("dnc",)


def test_campaign_only_list_applies_to_its_campaigns_only(admin: Admin) -> None:
    admin.create_list("sales-dnc", Action.BLOCK, campaign_only=True)
    admin.add("sales-dnc", [NUM])
    assert screen(admin, NUM, OUT).result is Result.ALLOWED  # assigned nowhere yet
    admin.assign("sales", ["sales-dnc"])
    assert screen(admin, NUM, OUT, "sales").result is Result.BLOCKED
    assert screen(admin, NUM, OUT, "support").result is Result.ALLOWED
    assert screen(admin, NUM, OUT).result is Result.ALLOWED
    assert admin.check(NUM, OUT, "sales").lists_applied == ("sales-dnc",)
    assert admin.check(NUM, OUT, "support").lists_applied == ()
    # a campaign-only list turned global applies everywhere
    admin.update_list("sales-dnc", scope=Scope.GLOBAL)
    assert screen(admin, NUM, OUT, "support").result is Result.BLOCKED


def test_campaign_assignment_replaces_dedupes_and_is_bounded(admin: Admin) -> None:
    for name in ("a", "b", "c"):
        admin.create_list(name, Action.BLOCK, campaign_only=True)
    assert admin.assign("camp", ["a", "b", "a"]).lists == ("a", "b")
    assert admin.assign("camp", ["c"]).lists == ("c",)
    assert [v.name for v in admin.campaigns()] == ["camp"]
    assert admin.show_list("c").campaigns == ("camp",)
    with pytest.raises(NotFound):
        admin.assign("camp", ["c", "nope"])
    assert admin.campaign("camp").lists == ("c",)  # unchanged by the refused one
    with pytest.raises(InvalidName):
        admin.assign("camp", [f"l{i}" for i in range(101)])
    assert admin.assign("camp", []).lists == ()
    assert admin.campaigns() == []


def test_campaign_names_are_bounded_by_the_one_validator(admin: Admin) -> None:
    admin.create_list("a", Action.BLOCK, campaign_only=True)
    for bad in ("x" * 65, "spring sale", "~invalid", "-lead", "été", "a\tb", ""):
        with pytest.raises(InvalidName):
            admin.assign(bad, ["a"])
    longest = "C" + "x" * 63
    assert admin.assign(longest, ["a"]).lists == ("a",)
    assert admin.assign("q3.sales-2026_fr:lead@web+1/b", ["a"]).lists == ("a",)


def test_direction_filters_lists(admin: Admin) -> None:
    admin.create_list("in", Action.BLOCK, IN)
    admin.create_list("out", Action.LABEL, OUT)
    admin.add("in", [NUM])
    admin.add("out", [NUM])
    assert screen(admin, NUM, IN).list_name == "in"
    outbound = screen(admin, NUM, OUT)
    assert (outbound.result, outbound.list_name) == (Result.LABELED, "out")
    admin.update_list("out", direction=Direction.INBOUND)
    assert screen(admin, NUM, OUT).result is Result.ALLOWED


# -- check -----------------------------------------------------------------------------


def test_check_lists_every_match_and_explains_the_winner(admin: Admin) -> None:
    admin.create_list("france", Action.BLOCK)
    admin.create_list("mobiles", Action.LABEL)
    admin.create_list("vip", Action.ALLOW)
    admin.add("france", ["+33*"], reason="no calls to France")
    admin.add("mobiles", ["+336*"])
    admin.add("vip", [NUM], reason="our CEO")
    admin.add("vip", [OTHER])
    admin.remove("vip", [OTHER], reason="left")

    check = admin.check(NUM)
    assert (check.result, check.list_name, check.match) == ("ALLOWED", "vip", NUM)
    assert [(m.list_name, m.entry, m.decides) for m in check.matches] == [
        ("vip", NUM, True),
        ("mobiles", "+336*", False),
        ("france", "+33*", False),
    ]
    assert "exact number beats any prefix" in check.explanation

    other = admin.check(OTHER)
    assert (other.result, other.list_name) == ("LABELED", "mobiles")
    assert "longer prefix" in other.explanation and "removed" in other.explanation
    data = other.to_json()
    assert data["matches"][0]["status"] == "deleted" and data["matches"][0]["enforced"] is False


def test_check_never_blocks_emergency_numbers(admin: Admin) -> None:
    admin.create_list("all", Action.BLOCK)
    admin.add("all", ["+33*"])
    check = admin.check("112", OUT)
    assert check.result == "ALLOWED" and "emergency" in check.explanation


# -- audit trail -----------------------------------------------------------------------


def test_history_records_who_when_and_why(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK, by="alice")
    admin.add("dnc", [NUM, OTHER], reason="complaint", by="alice")
    admin.remove("dnc", [NUM], reason="court order", by="bob")
    admin.approve("dnc", [OTHER], permanent=True, by="carol")

    events = admin.history("dnc")
    assert [(e.op, e.by) for e in events] == [
        ("approve", "carol"),
        ("remove", "bob"),
        ("add", "alice"),
        ("create", "alice"),
    ]
    assert events[1].reason == "court order" and events[1].entries == (NUM,)
    assert events[0].detail == "permanent"
    assert [e.op for e in admin.history("dnc", NUM)] == ["remove", "add"]
    assert [e.op for e in admin.history("dnc", OTHER)] == ["approve", "add"]
    assert [e.op for e in admin.history()] == ["create"]
    admin.create_list("tmp", Action.LABEL)
    admin.delete_list("tmp", by="dave")
    assert (admin.history()[0].op, admin.history()[0].by) == ("delete", "dave")


def test_history_finds_an_entry_of_a_big_change_by_its_batch(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    numbers = [f"+336123{i:05d}" for i in range(150)]
    admin.add("dnc", numbers, reason="bulk")
    last = numbers[-1]
    event = admin.history("dnc")[0]
    assert event.count == 150 and last not in event.entries  # only the first 100 named
    assert [e.op for e in admin.history("dnc", last)] == ["add"]


# -- listing ---------------------------------------------------------------------------


def test_entries_pages_filters_and_totals(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    numbers = [f"+3361234{i:04d}" for i in range(30)]
    admin.add("dnc", [*numbers, "+3389*", "+44*"])
    admin.remove("dnc", numbers[:5], reason="x")
    page = admin.list_entries("dnc", limit=10, offset=5)
    assert page.total == 32 and len(page.entries) == 10
    every = [v.entry for v in admin.list_entries("dnc", limit=100).entries]
    assert every == sorted(every, key=lambda e: (e.strip("+*"), e.endswith("*")))
    assert [v.entry for v in page.entries] == every[5:15]
    assert admin.list_entries("dnc", status=Status.DELETED).total == 5
    assert admin.list_entries("dnc", status=Status.ACTIVE).total == 27
    assert admin.list_entries("dnc", search="+3361234001").total == 10
    assert admin.list_entries("dnc", search="061234001").total == 10  # national digits
    assert admin.list_entries("dnc", search="+44").total == 1
    assert admin.list_entries("dnc", limit=0).entries == ()
    with pytest.raises(InvalidInput):
        admin.list_entries("dnc", limit=-1)


# -- counts stay exact whatever happens --------------------------------------------------

POOL = [NUM, OTHER, "+3389*", "+33*", "+33123456789"]
OPS = st.tuples(
    st.sampled_from(["add", "add_exp", "pending", "remove", "restore", "approve", "perm",
                     "unapprove", "purge"]),
    st.lists(st.sampled_from(POOL), min_size=1, max_size=3),
)  # fmt: skip


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, max_size=12))
def test_counts_stay_exact_through_any_sequence(
    admin: Admin, ops: list[tuple[str, list[str]]]
) -> None:
    admin.table.r.flushall()
    admin.create_list("dnc", Action.BLOCK)
    for op, raw in ops:
        try:
            if op == "add":
                admin.add("dnc", raw)
            elif op == "add_exp":
                admin.add("dnc", raw, expires="2000-01-01")
            elif op == "pending":
                add_pending(admin, "dnc", *raw)
            elif op == "remove":
                admin.remove("dnc", raw, reason="r")
            elif op == "restore":
                admin.restore("dnc", raw)
            elif op == "approve":
                admin.approve("dnc", raw)
            elif op == "perm":
                admin.approve("dnc", raw, permanent=True, confirm_broad=True)
            elif op == "unapprove":
                admin.unapprove("dnc", raw)
            else:
                admin.purge("dnc", "2100-01-01")
        except (Refused, NotFound):
            pass
        assert admin.show_list("dnc").counts == recount(admin, "dnc")


def test_entries_added_pending_wait_for_review_and_queue_no_cascade(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    queue = admin.table.keys.cascade_queue
    result = admin.add("dnc", [NUM], status=Status.PENDING, by="alice")
    assert result.entries == {NUM: "added"} and result.cascade_job is None
    assert statuses(admin, "dnc") == {NUM: Status.PENDING}
    assert screen(admin, NUM).result is Result.ALLOWED
    assert admin.table.r.xlen(queue) == 0
    # an active add of the same entry does not demote or promote a pending one silently
    assert admin.add("dnc", [OTHER]).cascade_job is not None
    with pytest.raises(InvalidInput, match="active or pending"):
        admin.add("dnc", [NUM], status=Status.PERMANENT)
    assert statuses(admin, "dnc") == {NUM: Status.PENDING, OTHER: Status.ACTIVE}


def test_entries_are_paged_by_a_position_that_survives_changes(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    numbers = [f"+3361234560{i}" for i in range(8)]
    admin.add("dnc", [*numbers, "+3361*"])
    first = admin.page_entries("dnc", limit=3)
    assert first.entries[0].entry == "+3361*" and first.next is not None  # prefixes first
    shown = [v.entry for v in first.entries]
    # an entry removed before the position and one added change nothing already shown
    admin.remove("dnc", [shown[1]], reason="gone")
    admin.add("dnc", ["+33612345699"])
    rest: list[str] = []
    after = first.next
    while after is not None:
        page = admin.page_entries("dnc", limit=3, after=after)
        rest += [v.entry for v in page.entries]
        after = page.next
    assert not set(rest) & set(shown)
    assert sorted(shown + rest) == sorted([*numbers, "+3361*", "+33612345699"])
    removed = admin.page_entries("dnc", status=Status.DELETED, limit=10)
    assert [v.entry for v in removed.entries] == [shown[1]] and removed.next is None
    with pytest.raises(InvalidInput):
        admin.page_entries("dnc", limit=0)


def test_one_entry_is_read_with_its_record_and_statuses_for_a_dry_run(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", [NUM], reason="asked", by="alice")
    admin.remove("dnc", [NUM], reason="mistake", by="bob")
    view = admin.show_entry("dnc", "06 12 34 56 78")
    assert (view.entry, view.status, view.created_by) == (NUM, Status.DELETED, "alice")
    assert (view.removed_by, view.removed_reason) == ("bob", "mistake")
    with pytest.raises(NotFound):
        admin.show_entry("dnc", OTHER)
    assert admin.statuses("dnc", [NUM, OTHER, "+3389*"]) == {
        NUM: "deleted",
        OTHER: "missing",
        "+3389*": "missing",
    }
    with pytest.raises(InvalidNumber):
        admin.statuses("dnc", ["12"])


def test_history_pages_back_past_an_event(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    for i in range(5):
        admin.add("dnc", [f"+3361234567{i}"], reason=f"r{i}")
    newest = admin.history("dnc", limit=2)
    assert [e.reason for e in newest] == ["r4", "r3"]
    older = admin.history("dnc", limit=2, before=newest[-1].id)
    assert [e.reason for e in older] == ["r2", "r1"]
    assert [e.op for e in admin.history("dnc", limit=10, before=older[-1].id)] == [
        "add",
        "create",
    ]
    with pytest.raises(InvalidInput, match="not an event id"):
        admin.history("dnc", before="1-0; DROP")


def test_a_cascade_is_queued_for_entries_enforced_elsewhere(admin: Admin) -> None:
    """An opt-out is recorded by the call path's script: its cascade is queued as an
    add's is, for the enforced entries of a block list only, never hanging up."""
    admin.create_list("dnc", Action.BLOCK)
    admin.create_list("vip", Action.ALLOW)
    admin.add("dnc", [NUM])
    admin.add("dnc", [OTHER], status=Status.PENDING)
    admin.add("vip", [NUM])
    job, plan = admin.cascade("dnc", [NUM, OTHER], hangup_live=False)
    assert plan.targets == (NUM,) and not plan.hangup_live and plan.list_name == "dnc"
    assert admin.table.r.xrange(admin.table.keys.cascade_queue, job, job)
    assert admin.cascade("dnc", [OTHER]) is None  # pending: not enforced
    assert admin.cascade("vip", [NUM]) is None  # not a block list


def test_api_keys_are_made_listed_checked_and_revoked_as_the_actor(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    keys = admin.acting("ops").apikeys
    key, secret = admin.run(keys.create("crm", ["lists:read", "check"], lists=["dnc"]))
    assert key.created_by == "ops" and key.list_names == ("dnc",)
    assert secret not in str(admin.table.r.hgetall(admin.table.keys.api_key_names))
    with pytest.raises(Conflict):
        admin.run(keys.create("crm", ["check"]))
    with pytest.raises(NotFound):
        admin.run(keys.create("other", ["check"], lists=["nope"]))
    found = admin.run(admin.services.apikeys.authenticate(secret))
    assert found.name == "crm" and found.last_used_at is None  # as it was before this use
    [listed] = admin.run(admin.services.apikeys.list_keys())
    assert listed.last_used_at is not None and listed.list_names == ("dnc",)
    admin.run(keys.revoke("crm"))
    with pytest.raises(Unauthenticated):
        admin.run(admin.services.apikeys.authenticate(secret))
    trail = admin.history(None, limit=10)
    assert [(e.op, e.by) for e in trail[:2]] == [("key-revoke", "ops"), ("key-create", "ops")]
