"""AMI: the client (login, actions, reconnect) and the outcome watcher, against an AMI
peer speaking AMI over TCP and a real Redis."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from callscreen.asterisk import ami as ami_module
from callscreen.asterisk.ami import AmiClient
from callscreen.core.errors import AmiUnavailable, NotFound
from callscreen.core.model import Action, Direction, Status
from callscreen.gateway.outcomes import OutcomeTracker, OutcomeWatcher
from tests.support.amihelpers import ami_overrides, make_settings
from tests.support.amipeer import AmiPeer, LiveChannel
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until_async
from tests.support.redisproc import free_port

NUM = "+33612345678"
NATIONAL = "0612345678"
OTHER = "+33698765432"

_ids = itertools.count(1)

# `callscreen serve` runs on uvloop when it is installed: the AMI client runs on both
both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


@pytest.fixture
async def peer() -> AsyncIterator[AmiPeer]:
    server = AmiPeer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def admin(redis_url: str) -> Iterator[Admin]:
    service = Admin(make_settings(redis_url))
    yield service
    service.close()


# -- events as Asterisk sends them ---------------------------------------------------


def dial_begin(uid: str, dial: str, channel: str = "PJSIP/trunk-00000001") -> dict[str, str]:
    """An outbound leg starting, as from Dial() or a call file (no caller channel)."""
    return {
        "Event": "DialBegin",
        "DestChannel": channel,
        "DestChannelState": "0",
        "DestChannelStateDesc": "Down",
        "DestCallerIDNum": "+33140000000",
        "DestConnectedLineNum": "+33140000000",
        "DestContext": "campaign-out",
        "DestExten": "s",
        "DestUniqueid": uid,
        "DestLinkedid": uid,
        "DialString": dial,
    }


def dial_end(uid: str, status: str) -> dict[str, str]:
    return {"Event": "DialEnd", "DestUniqueid": uid, "DialStatus": status}


def hangup(uid: str, cause: int, state: str = "5") -> dict[str, str]:
    return {
        "Event": "Hangup",
        "Channel": "PJSIP/trunk-00000001",
        "ChannelState": state,
        "Uniqueid": uid,
        "Linkedid": uid,
        "Cause": str(cause),
        "Cause-txt": "Unallocated (unassigned) number" if cause == 1 else "Normal Clearing",
    }


def failed_call(dial: str, cause: int = 1) -> list[dict[str, str]]:
    uid = f"1700000000.{next(_ids)}"
    return [dial_begin(uid, dial), dial_end(uid, "CONGESTION"), hangup(uid, cause)]


def answered_call(dial: str) -> list[dict[str, str]]:
    uid = f"1700000000.{next(_ids)}"
    return [dial_begin(uid, dial), dial_end(uid, "ANSWER"), hangup(uid, 16, state="6")]


# -- the tracker (pure) --------------------------------------------------------------


def tracker(**options: Any) -> OutcomeTracker:
    return OutcomeTracker(causes=(1, 22, 28), region="FR", **options)


def test_tracker_reads_failed_and_answered_legs() -> None:
    t = tracker()
    begin, end, hang = failed_call(f"{NATIONAL}@trunk", cause=1)
    assert t.feed(begin) is None and t.feed(end) is None
    outcome = t.feed(hang)
    assert outcome is not None
    assert (outcome.kind, outcome.digits, outcome.cause) == ("failed", "33612345678", 1)
    assert outcome.cause_text == "unallocated number"
    assert t.legs == {}

    begin, end, hang = answered_call(f"trunk/sip:{NUM}@192.0.2.1")
    t.feed(begin)
    answered = t.feed(end)
    assert answered is not None and answered.kind == "answered"
    assert t.feed(hang) is None  # already reported at DialEnd


def test_tracker_ignores_what_is_not_a_failed_outbound_call() -> None:
    t = tracker()
    # busy, no answer, normal clearing: not "no such number"
    for cause in (16, 17, 19, 21, 34):
        for event in failed_call(NUM + "@trunk", cause=cause):
            assert t.feed(event) is None
    # a hangup of a leg we did not see begin (the watcher started mid-call)
    assert t.feed(hangup("9.9", 1)) is None
    # an internal extension: not a valid number, never counted
    for event in failed_call("101", cause=1):
        assert t.feed(event) is None
    # a leg that was up when it hung up, without a DialEnd seen: answered
    uid = "5.5"
    t.feed(dial_begin(uid, NUM + "@trunk"))
    up = t.feed(hangup(uid, 1, state="6"))
    assert up is not None and up.kind == "answered"
    # other events pass by
    assert t.feed({"Event": "Newchannel", "Uniqueid": "1"}) is None


def test_tracker_limits_to_configured_channels_and_bounds_memory() -> None:
    t = tracker(channels=("PJSIP/trunk-*",))
    t.feed(dial_begin("1.1", NUM + "@trunk", channel="PJSIP/other-0001"))
    t.feed(dial_begin("1.2", NUM + "@trunk", channel="PJSIP/trunk-0002"))
    assert list(t.legs) == ["1.2"]
    small = tracker(max_legs=2, max_age=100.0)
    for i in range(4):
        small.feed(dial_begin(f"2.{i}", NUM + "@trunk"), now=1000.0 + i)
    assert list(small.legs) == ["2.2", "2.3"]
    small.feed(dial_begin("2.9", NUM + "@trunk"), now=1200.0)
    assert list(small.legs) == ["2.9"]  # older than max_age: forgotten


# -- the client ------------------------------------------------------------------------


@both_loops
async def test_client_logs_in_lists_channels_and_hangs_up(peer: AmiPeer) -> None:
    peer.channels = {
        "PJSIP/trunk-1": LiveChannel("PJSIP/trunk-1", "1.1", exten=NUM, linkedid="1.0"),
    }
    client = AmiClient(make_settings(**ami_overrides(peer.port)))
    await client.connect()
    try:
        assert client.ready
        login = peer.named("Login")[0]
        assert (login["Username"], login["Secret"], login["Events"]) == (
            "callscreen",
            "s3cret",
            "off",
        )
        [channel] = await client.channels()
        assert (channel.name, channel.exten, channel.linkedid) == ("PJSIP/trunk-1", NUM, "1.0")
        assert await client.hangup("PJSIP/trunk-1") is True
        assert await client.hangup("PJSIP/trunk-1") is False  # gone already
        assert await client.channels() == []
        assert [h["Cause"] for h in peer.named("Hangup")] == ["21", "21"]
        # every action carried an ActionID, and each response was matched to its action
        assert all(a.get("ActionID") for a in peer.actions)
    finally:
        await client.close()
    assert not client.ready


async def test_client_refused_login_and_unreachable_ami(peer: AmiPeer) -> None:
    wrong = AmiClient(make_settings(**ami_overrides(peer.port, ami_secret="bad")))
    with pytest.raises(AmiUnavailable, match="login refused: Authentication failed"):
        await wrong.connect()
    await wrong.close()

    down = ami_overrides(free_port(), ami_timeout_s=0.3)
    client = AmiClient(make_settings(**down))
    with pytest.raises(AmiUnavailable, match="unavailable"):
        await client.connect()
    with pytest.raises(AmiUnavailable, match="not logged in"):
        await client.action({"Action": "Ping"})
    await client.close()

    with pytest.raises(AmiUnavailable, match="not configured"):
        await AmiClient(make_settings()).connect()


@both_loops
async def test_client_reconnects_and_a_silent_peer_is_dropped(
    peer: AmiPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ami_module, "KEEPALIVE_S", 0.05)
    client = AmiClient(make_settings(**ami_overrides(peer.port, ami_timeout_s=0.5)))
    await client.connect()
    try:
        peer.drop()
        await peer.wait_login(2)
        await client.wait_ready(2.0)
        assert client.logins == 2
        assert await client.channels() == []
        # a peer that stops answering (pings unanswered) is dropped and reconnected to
        original = peer._answer

        async def silent(c: Any, message: dict[str, str]) -> None:
            if message.get("Action") == "Ping":
                return
            await original(c, message)

        monkeypatch.setattr(peer, "_answer", silent)
        await peer.wait_login(3, timeout=5.0)
        await client.wait_ready(2.0)
        manager = client._manager
    finally:
        await client.close()
    # no reconnect after close: nothing is left that could make one (no retry timer, no
    # connection attempt, no keepalive), and the peer sees the connection closed
    assert manager is not None and manager.closing
    assert manager._retry is None and manager._connecting is None
    assert client._keepalive_task is None
    logins = peer.logins
    await until_async(lambda: not peer._clients, "the peer to see the connection closed")
    assert peer.logins == logins


async def test_a_login_left_unanswered_is_tried_again(
    peer: AmiPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = peer._answer
    muted = []

    async def mute_first_login(c: Any, message: dict[str, str]) -> None:
        if message.get("Action") == "Login" and not muted:
            muted.append(message)
            return
        await original(c, message)

    monkeypatch.setattr(peer, "_answer", mute_first_login)
    client = AmiClient(make_settings(**ami_overrides(peer.port, ami_timeout_s=0.3)))
    await client.connect(wait=False)
    try:
        await client.wait_ready(3.0)
    finally:
        await client.close()
    assert len(peer.named("Login")) == 2 and client.logins == 1


# -- the watcher -------------------------------------------------------------------------


async def start_watcher(redis_url: str, peer: AmiPeer, **overrides: Any) -> OutcomeWatcher:
    settings = make_settings(redis_url, **ami_overrides(peer.port, **overrides))
    watcher = OutcomeWatcher(settings)
    await watcher.start()
    await watcher.wait_ready(3.0)
    return watcher


async def play(
    peer: AmiPeer, watchers: list[OutcomeWatcher], calls: list[list[dict[str, str]]]
) -> None:
    """Send the calls' events, and wait until every watcher has handled them all."""
    targets = [w.handled + sum(len(call) for call in calls) for w in watchers]
    for call in calls:
        for event in call:
            event = dict(event)
            await peer.emit(event.pop("Event"), **event)
    await until_async(
        lambda: all(w.handled >= n for w, n in zip(watchers, targets, strict=True)),
        "every watcher to handle the events",
        timeout=5.0,
    )
    for watcher in watchers:
        await watcher.drain()


def entries_of(admin: Admin, name: str) -> list[Any]:
    try:
        return list(admin.list_entries(name).entries)
    except NotFound:
        return []


async def test_three_unallocated_outcomes_put_the_number_on_the_system_list(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    watcher = await start_watcher(redis_url, peer)
    try:
        assert peer.named("Login")[0]["Events"] == "call"
        await play(peer, [watcher], [failed_call(f"{NATIONAL}@trunk") for _ in range(2)])
        assert entries_of(admin, "unreachable-numbers") == []  # two is not three
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk", cause=1)])
    finally:
        await watcher.close()
    [entry] = entries_of(admin, "unreachable-numbers")
    assert (entry.entry, entry.status, entry.source) == (NUM, Status.ACTIVE, "auto")
    assert entry.reason.startswith("unallocated number (hangup cause 1) on 20")
    assert "3 failed calls within 7d" in entry.reason
    listed = admin.show_list("unreachable-numbers")
    assert (listed.action, listed.direction) == (Action.LABEL, Direction.OUTBOUND)
    check = admin.check(NUM, Direction.OUTBOUND)
    assert (check.result, check.list_name) == ("LABELED", "unreachable-numbers")


async def test_answered_calls_reset_the_count_and_change_nothing(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    watcher = await start_watcher(redis_url, peer, outcome_action=Action.BLOCK)
    try:
        await play(peer, [watcher], [answered_call(f"{OTHER}@trunk") for _ in range(5)])
        assert entries_of(admin, "unreachable-numbers") == []
        calls = [
            failed_call(f"{NUM}@trunk", cause=1),
            failed_call(f"{NUM}@trunk", cause=28),
            answered_call(f"{NUM}@trunk"),  # the number exists after all
            failed_call(f"{NUM}@trunk", cause=22),
            failed_call(f"{NUM}@trunk", cause=1),
        ]
        await play(peer, [watcher], calls)
        assert entries_of(admin, "unreachable-numbers") == []
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk", cause=1)])
    finally:
        await watcher.close()
    [entry] = entries_of(admin, "unreachable-numbers")
    assert entry.entry == NUM and "3 failed calls" in entry.reason
    assert admin.show_list("unreachable-numbers").action is Action.BLOCK
    assert (admin.check(NUM, Direction.OUTBOUND)).result == "BLOCKED"
    assert (admin.check(OTHER, Direction.OUTBOUND)).result == "ALLOWED"


async def test_each_call_is_counted_once_by_several_gateways(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    first = await start_watcher(redis_url, peer)
    second = await start_watcher(redis_url, peer)
    try:
        await play(peer, [first, second], [failed_call(f"{NUM}@trunk") for _ in range(2)])
        assert entries_of(admin, "unreachable-numbers") == []  # 2 calls, seen twice each
        await play(peer, [first, second], [failed_call(f"{NUM}@trunk")])
    finally:
        await first.close()
        await second.close()
    assert [e.entry for e in entries_of(admin, "unreachable-numbers")] == [NUM]
    assert len(first.listed) + len(second.listed) == 1  # listed by one gateway only
    history = admin.history("unreachable-numbers")
    assert [event.op for event in history] == ["add", "create"]


async def test_the_watcher_leaves_a_permanent_entry_unchanged(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    admin.create_list("unreachable-numbers", Action.LABEL, Direction.OUTBOUND)
    admin.add("unreachable-numbers", [NUM], reason="checked by hand", external_id="T-9")
    admin.approve("unreachable-numbers", [NUM], permanent=True)
    before = admin.show_entry("unreachable-numbers", NUM)
    watcher = await start_watcher(redis_url, peer)
    try:
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk") for _ in range(3)])
    finally:
        await watcher.close()
    assert (watcher.frozen, watcher.listed) == ([NUM], [])
    assert admin.show_entry("unreachable-numbers", NUM) == before
    assert before.reason == "checked by hand" and before.status is Status.PERMANENT


def originated_dialing_call(number: str, cause: int = 1) -> list[dict[str, str]]:
    """An AMI Originate of ``Local/NUMBER@campaign-out`` whose context dials the trunk,
    as Asterisk reports it: two DialBegin legs (the Local channel's, the trunk's), each
    hung up with the cause, every event carrying the call's one Linkedid."""
    linked = f"1700000000.{next(_ids)}"
    trunk = f"1700000000.{next(_ids)}"
    local = dial_begin(linked, f"{number}@campaign-out", channel="Local/x@campaign-out-1;1")
    local["DestExten"] = number
    leg = dial_begin(trunk, f"trunk/{number}")
    leg["DestLinkedid"] = linked
    trunk_hangup = hangup(trunk, cause)
    trunk_hangup["Linkedid"] = linked
    local_hangup = hangup(linked, cause)
    local_hangup["Channel"] = "Local/x@campaign-out-1;1"
    return [local, leg, dial_end(trunk, "CHANUNAVAIL"), trunk_hangup, local_hangup]


async def test_a_call_with_several_legs_to_the_number_is_counted_once(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    """Counted per Linkedid: the Local leg and the trunk leg of one originated call are
    one call (the number used to be listed after two such calls instead of three)."""
    t = tracker()
    outcomes = [t.feed(event) for event in originated_dialing_call(NATIONAL)]
    failures = [o for o in outcomes if o is not None]
    assert len(failures) == 2 and len({o.call_id for o in failures}) == 1
    watcher = await start_watcher(redis_url, peer)
    try:
        await play(peer, [watcher], [originated_dialing_call(NATIONAL) for _ in range(2)])
        assert entries_of(admin, "unreachable-numbers") == []
        await play(peer, [watcher], [originated_dialing_call(NATIONAL)])
    finally:
        await watcher.close()
    assert [e.entry for e in entries_of(admin, "unreachable-numbers")] == [NUM]


@both_loops
async def test_ami_disconnect_and_reconnect_loses_no_later_events(
    redis_url: str, peer: AmiPeer, admin: Admin
) -> None:
    watcher = await start_watcher(redis_url, peer)
    try:
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk")])
        peer.drop()  # Asterisk restarts, or the network cuts
        await peer.wait_login(2)
        await watcher.wait_ready(3.0)
        await play(peer, [watcher], [failed_call(f"{NUM}@trunk") for _ in range(2)])
    finally:
        await watcher.close()
    assert [e.entry for e in entries_of(admin, "unreachable-numbers")] == [NUM]


async def test_watcher_is_off_without_ami(redis_url: str) -> None:
    watcher = OutcomeWatcher(make_settings(redis_url))
    assert not watcher.enabled
    await watcher.start()
    await watcher.close()
    assert watcher.client is None
