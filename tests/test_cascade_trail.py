"""What a cascade did is part of the change's record: call files cancelled with their
numbers, live calls hung up, call files left in place become a ``cascade`` event in
the trail of the list whose change caused it — for changes made through the services
(run by the gateway's runner, or by the command itself), for opt-outs taken by the
gateway's route, and for numbers the outcome watcher lists. Over a real spool
directory and the AMI test peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callscreen.core.model import Action
from callscreen.gateway import optout
from callscreen.services.audit import Event
from callscreen.services.cascading import CascadeRunner
from callscreen.services.table import Table
from tests.support.agiclient import FakeAsterisk
from tests.support.amihelpers import (
    ami_overrides,
    make_settings,
    mark_dialing,
    spool_names,
    write_call_file,
)
from tests.support.amipeer import AmiPeer, LiveChannel
from tests.support.blocking import SyncAdmin as Admin
from tests.test_ami import failed_call, play, start_watcher

NUM = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
def admin(redis_url: str, spool: Path) -> Iterator[Admin]:
    service = Admin(make_settings(redis_url, spool_dir=str(spool), node_name="pbx1"))
    service.create_list("dnc", Action.BLOCK)
    yield service
    service.close()


@pytest.fixture
async def peer() -> AsyncIterator[AmiPeer]:
    server = AmiPeer()
    await server.start()
    yield server
    await server.close()


def cascades(admin: Admin, list_name: str, entry: str | None = None) -> list[Event]:
    return [e for e in admin.history(list_name, entry) if e.op == "cascade"]


def test_a_change_records_the_files_it_cancelled_and_left(admin: Admin, spool: Path) -> None:
    write_call_file(spool, "later.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "prefix.call", "PJSIP/+33699111222@trunk")
    mark_dialing(write_call_file(spool, "dialing.call", f"PJSIP/{NUM}@trunk", due_in=-1))
    write_call_file(spool, "other.call", f"PJSIP/{OTHER}@trunk")
    result = admin.add("dnc", [NUM, "+33699*"], reason="complaint", by="alice")
    assert result.cascade is not None and len(result.cascade.cancelled) == 2
    [event] = cascades(admin, "dnc")
    assert (event.by, event.via, event.list_name) == ("alice", "gateway:cascade@pbx1", "dnc")
    assert event.count == 3 and set(event.entries) == {NUM, "+33699*"}
    assert event.batch == result.batch  # the add's batch: the entry's history finds it
    assert event.detail.startswith("cascade of add by alice at 20")
    assert f"job {result.cascade_job}" in event.detail and "on pbx1" in event.detail
    assert f"later.call ({NUM})" in event.detail
    assert "prefix.call (+33699111222)" in event.detail
    assert f"left 1 due call file(s) in place: dialing.call ({NUM})" in event.detail
    assert spool_names(spool) == {"dialing.call", "other.call"}
    # the entry's own history shows what its change cancelled
    assert [e.op for e in admin.history("dnc", NUM)][:2] == ["cascade", "add"]
    assert [e.op for e in admin.history("dnc", "+33699*")][:2] == ["cascade", "add"]
    # a change whose cascade found nothing adds nothing to the trail
    admin.add("dnc", ["+33612345679"])
    assert len(cascades(admin, "dnc")) == 1
    # approve and restore name their change too
    admin.add("dnc", [OTHER], status="pending")
    admin.approve("dnc", [OTHER], by="bob")
    [latest, _] = cascades(admin, "dnc")
    assert latest.by == "bob" and latest.detail.startswith("cascade of approve by bob")
    assert latest.entries == (OTHER,) and "other.call (+33698765432)" in latest.detail


def test_what_could_not_be_done_is_recorded(redis_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-spool"
    with Admin(make_settings(redis_url, spool_dir=str(missing))) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", [NUM])
        [event] = cascades(admin, "dnc")
        assert event.count == 0 and "not found: queued calls not checked" in event.detail
    with Admin(make_settings(redis_url, spool_dir="")) as admin:
        admin.create_list("quiet", Action.BLOCK)
        admin.add("quiet", [NUM])  # no spool configured here: nothing to record
        assert cascades(admin, "quiet") == []


async def test_live_calls_hung_up_are_recorded(redis_url: str, spool: Path, peer: AmiPeer) -> None:
    peer.channels = {
        "PJSIP/trunk-00000007": LiveChannel(
            name="PJSIP/trunk-00000007", uniqueid="1700.7", exten="0612345678", linkedid="1700.7"
        )
    }
    settings = make_settings(redis_url, spool_dir=str(spool), **ami_overrides(peer.port))
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        await asyncio.to_thread(admin.add, "dnc", [NUM], hangup_live=True, by="carol")
        [event] = await asyncio.to_thread(cascades, admin, "dnc")
    assert [h["Channel"] for h in peer.named("Hangup")] == ["PJSIP/trunk-00000007"]
    assert event.by == "carol" and event.count == 1 and event.entries == (NUM,)
    assert f"hung up 1 live call(s): PJSIP/trunk-00000007 ({NUM})" in event.detail


async def test_an_opt_out_through_the_gateway_records_its_cascade(
    redis_url: str, spool: Path
) -> None:
    from callscreen.callpath.screener import Screener
    from callscreen.callpath.server import AgiServer

    write_call_file(spool, "queued.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "other.call", f"PJSIP/{OTHER}@trunk")
    settings = make_settings(
        redis_url, spool_dir=str(spool), listen_host="127.0.0.1", listen_port=0
    )
    screener = Screener.from_settings(settings)
    server = AgiServer(settings, screener)
    route = optout.OptoutRoute(server, screener.client)
    server.routes["optout"] = route
    await server.start()
    try:
        asterisk = FakeAsterisk("127.0.0.1", server.port)
        answer = await asterisk.call(
            script="optout", args=("outbound", NUM, "spring"), uniqueid="1700.42"
        )
        assert answer.variables["CALLSCREEN_RESULT"] == "BLOCKED"
        await route.drain(5.0)
    finally:
        await server.close(1.0)
        await screener.close()
    assert spool_names(spool) == {"other.call"}
    with Admin(settings) as admin:
        events = await asyncio.to_thread(admin.history, "do-not-call")
    assert [e.op for e in events] == ["cascade", "add", "create"]
    event = events[0]
    assert event.by == "opt-out outbound call 1700.42" == events[1].by
    assert event.via.startswith("gateway:optout@") and event.entries == (NUM,)
    assert event.count == 1 and f"queued.call ({NUM})" in event.detail


async def test_the_outcome_watchers_listing_records_its_cascade(
    redis_url: str, spool: Path, peer: AmiPeer
) -> None:
    write_call_file(spool, "retry.call", f"PJSIP/{NUM}@trunk")
    watcher = await start_watcher(
        redis_url, peer, outcome_action=Action.BLOCK, spool_dir=str(spool), node_name="pbx1"
    )
    try:
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk", cause=1) for _ in range(3)])
    finally:
        await watcher.close()
    settings = make_settings(redis_url, spool_dir=str(spool), node_name="pbx1")
    table = Table(settings)
    try:  # no gateway runs here: run this host's queue, as a waiting command would
        assert await CascadeRunner(settings, table).run_once(since="0") == 1
    finally:
        await table.close()
    assert spool_names(spool) == set()
    with Admin(settings) as admin:
        events = await asyncio.to_thread(cascades, admin, "unreachable-numbers", NUM)
    [event] = events
    assert event.by == "callscreen outcome watcher" and event.entries == (NUM,)
    assert event.detail.startswith("cascade of add by callscreen outcome watcher at ")
    assert f"retry.call ({NUM})" in event.detail
