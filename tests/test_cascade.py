"""The cascade on blacklisting: queued call files and live calls, against a real Redis,
a temporary spool directory and an AMI peer speaking AMI over TCP."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from callscreen.asterisk import cascade
from callscreen.asterisk.callfiles import (
    callerid_number,
    channel_number,
    dial_number,
    parse_call_file,
    valid_number,
)
from callscreen.asterisk.cascade import EntryTargets
from callscreen.core.model import Action, Direction, Status
from callscreen.core.numbers import parse_entry
from callscreen.services import entries
from callscreen.services.importer import ImportOptions
from tests.support.amihelpers import (
    ami_overrides,
    make_settings,
    mark_attempt_failed,
    mark_dialing,
    spool_names,
    write_call_file,
)
from tests.support.amipeer import AmiPeer, LiveChannel
from tests.support.blocking import SyncAdmin as Admin

NUM = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
def admin(redis_url: str, spool: Path) -> Iterator[Admin]:
    service = Admin(make_settings(redis_url, spool_dir=str(spool)))
    service.create_list("dnc", Action.BLOCK)
    yield service
    service.close()


@pytest.fixture
async def peer() -> AsyncIterator[AmiPeer]:
    server = AmiPeer()
    await server.start()
    yield server
    await server.close()


# -- call files and dial strings, as Asterisk reads them -----------------------------


def test_call_file_parsing_follows_pbx_spool() -> None:
    text = (
        "# a comment\n"
        "channel: PJSIP/+33612345678@trunk ; the customer\n"
        'CallerID: "Sales; Paris" <+33140000000>\n'
        "Extension: 0698765432#not a comment\n"
        "Context: out  # a comment\n"
        "Set: CALLSCREEN_CAMPAIGN=spring\n"
        "Setvar: NOTE=a\\;b\n"
        "no colon here\n"
        "StartRetry: 123 1 (1700000000)\n"
        "EndRetry: 123 1 (1700000060)\n"
    )
    call = parse_call_file(text)
    assert call is not None
    assert call.channel == "PJSIP/+33612345678@trunk"
    # ';' ends the line, even in quotes, as in Asterisk: the caller ID loses its number
    assert call.callerid == ""
    assert call.extension == "0698765432#not a comment"
    assert call.context == "out"
    assert call.variable("CALLSCREEN_CAMPAIGN") == "spring"
    assert call.variable("NOTE") == "a;b"
    assert not call.in_progress
    dialing = parse_call_file(text + "StartRetry: 123 2 (1700000120)\n")
    assert dialing is not None and dialing.in_progress
    aborted = parse_call_file(text + "StartRetry: 1 2 (1)\nAbortRetry: 2 2 (2)\n")
    assert aborted is not None and not aborted.in_progress
    assert parse_call_file("CallerID: <+33612345678>\nExtension: 1\n") is None
    assert parse_call_file("Channel: nodata\n") is None


@pytest.mark.parametrize(
    ("channel", "number"),
    [
        ("PJSIP/+33612345678@trunk", "+33612345678"),
        ("PJSIP/trunk/sip:+33612345678@192.0.2.1:5060", "+33612345678"),
        ("SIP/trunk/0033612345678", "0033612345678"),
        ("SIP/0612345678@trunk", "0612345678"),
        ("Local/0612345678@outbound/n", "0612345678"),
        ("Local/0612345678@outbound-00000001;1", "0612345678"),
        ("IAX2/user:secret@pbx.example/0612345678", "0612345678"),
        ("DAHDI/g1/0612345678", "0612345678"),
        ("PJSIP/alice", ""),
        ("nothing", ""),
    ],
)
def test_number_of_a_dial_target(channel: str, number: str) -> None:
    assert channel_number(channel) == number


def test_dial_strings_and_caller_ids() -> None:
    assert dial_number("+33612345678@trunk") == "+33612345678"
    assert dial_number("0612345678@default") == "0612345678"
    assert callerid_number('"Alice" <+33612345678>') == "+33612345678"
    assert callerid_number("Alice <0612345678>") == "0612345678"
    assert callerid_number("0612345678") == "0612345678"
    assert callerid_number("Alice") == ""
    # only valid numbers count: an extension read as a national number does not
    assert valid_number("0612345678", "FR") == "33612345678"
    assert valid_number("0033612345678", "FR") == "33612345678"
    assert valid_number("101", "FR") is None
    assert valid_number("", "FR") is None
    assert valid_number("+33*", "FR") is None


@given(st.text(max_size=400))
def test_call_file_readers_never_raise(text: str) -> None:
    call = parse_call_file(text)
    if call is not None:
        assert "/" in call.channel
        for _field, raw in call.targets():
            valid_number(raw, "FR")
    channel_number(text)
    callerid_number(text)
    digits = valid_number(text, "FR")
    assert digits is None or digits.isdigit()


def test_a_block_cancels_calls_to_the_number_never_calls_showing_it(spool: Path) -> None:
    # the caller ID is what the file shows, not whom it calls: never a target
    write_call_file(spool, "shows.call", f"PJSIP/{OTHER}@trunk", callerid=f'"Us" <{NUM}>')
    write_call_file(spool, "bare.call", f"PJSIP/{OTHER}@trunk", callerid=NUM)
    # whom it calls: the channel, a numeric extension, the CALLSCREEN_CALLEE variable
    write_call_file(spool, "channel.call", f"PJSIP/{NUM}@trunk", callerid=NUM)
    write_call_file(spool, "exten.call", "PJSIP/101", extension="0612345678")
    write_call_file(
        spool, "setvar.call", "PJSIP/101", extension="s", extra=f"Setvar: CALLSCREEN_CALLEE={NUM}\n"
    )
    targets = EntryTargets.of([parse_entry(NUM, "FR")])

    scan = cascade.cancel_queued(str(spool), targets, "FR")

    fields = {c.file: c.field for c in scan.cancelled}
    assert fields == {"channel.call": "channel", "exten.call": "extension", "setvar.call": "setvar"}
    assert spool_names(spool) == {"shows.call", "bare.call"}


def test_entry_targets_match_exact_and_longest_prefix() -> None:
    targets = EntryTargets.of([parse_entry(e, "FR") for e in ("+33612345678", "+3369*", "+33698*")])
    assert targets.match(["33612345678", "33698765432", "33691111111", "33711111111"]) == {
        "33612345678": "+33612345678",
        "33698765432": "+33698*",
        "33691111111": "+3369*",
    }


# -- queued calls --------------------------------------------------------------------


def test_adding_a_block_entry_cancels_exactly_the_matching_queued_calls(
    admin: Admin, spool: Path
) -> None:
    # queued for the number, written every way a dialer writes it
    write_call_file(spool, "a-pjsip.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "b-local.call", "Local/06 12 34 56 78@campaign-out/n")
    write_call_file(spool, "c-sip.call", "SIP/trunk/0033612345678")
    write_call_file(  # click-to-call: the agent's phone rings, then the customer is dialed
        spool, "d-click.call", "PJSIP/101", callerid=f'"Customer" <{NUM}>', extension=NUM
    )
    # under a prefix blocked in the same change
    write_call_file(spool, "e-prefix.call", "PJSIP/+33699111222@trunk")
    write_call_file(spool, "f-prefix.call", "Local/0699000001@campaign-out")
    # others: untouched
    write_call_file(spool, "g-other.call", f"PJSIP/{OTHER}@trunk")
    write_call_file(spool, "h-ext.call", "PJSIP/101", extension="102")
    write_call_file(spool, "i-near.call", "PJSIP/+33698999999@trunk")  # +3369*, not +33699*
    (spool / "not-a-call-file.txt").write_text("hello\n")
    other_before = {
        name: (spool / name).read_bytes()
        for name in ("g-other.call", "h-ext.call", "i-near.call", "not-a-call-file.txt")
    }

    result = admin.add("dnc", [NUM, "+33699*"], reason="asked")

    report = result.cascade
    assert report is not None and report.spool_checked
    assert sorted(c.file for c in report.cancelled) == [
        "a-pjsip.call",
        "b-local.call",
        "c-sip.call",
        "d-click.call",
        "e-prefix.call",
        "f-prefix.call",
    ]
    by_file = {c.file: c for c in report.cancelled}
    assert (by_file["d-click.call"].field, by_file["d-click.call"].number) == ("extension", NUM)
    assert by_file["f-prefix.call"].entry == "+33699*"
    assert by_file["f-prefix.call"].number == "+33699000001"
    assert report.left_due == () and report.hung_up == () and not report.hangup_requested
    assert report.line("added") == "added 2 entries; cancelled 6 queued calls"
    assert spool_names(spool) == set(other_before)
    for name, data in other_before.items():
        assert (spool / name).read_bytes() == data
    as_json = result.to_json()["cascade"]
    assert len(as_json["cancelled"]) == 6 and as_json["hung_up_calls"] == 0

    # removing the entry later brings nothing back
    admin.remove("dnc", [NUM, "+33699*"], reason="mistake")
    assert spool_names(spool) == set(other_before)


def test_a_waiting_file_is_removed_a_due_or_dialing_one_is_left(admin: Admin, spool: Path) -> None:
    write_call_file(spool, "waiting.call", f"PJSIP/{NUM}@trunk", due_in=600)
    write_call_file(spool, "due.call", f"PJSIP/{NUM}@trunk", due_in=-5)
    soon = write_call_file(spool, "soon.call", f"PJSIP/{NUM}@trunk", due_in=0.5)
    dialing = write_call_file(spool, "dialing.call", f"PJSIP/{NUM}@trunk", due_in=-1)
    mark_dialing(dialing)  # its time is now in the future, yet a call is up
    assert os.stat(dialing).st_mtime > time.time()

    report = admin.add("dnc", [NUM]).cascade

    assert report is not None
    assert [c.file for c in report.cancelled] == ["waiting.call"]
    assert sorted(c.file for c in report.left_due) == ["dialing.call", "due.call", "soon.call"]
    assert spool_names(spool) == {"dialing.call", "due.call", "soon.call"}
    assert soon.exists()
    assert report.line("added") == (
        "added 1 entry; cancelled 1 queued call; left 3 due call files in place"
    )
    assert any("--hangup-live" in note for note in report.notes)
    # the holding directory Asterisk ignores is empty again
    assert list((spool / cascade.CANCEL_DIR).iterdir()) == []


def test_only_enforced_block_entries_cascade(admin: Admin, spool: Path) -> None:
    write_call_file(spool, "q.call", f"PJSIP/{NUM}@trunk")
    admin.create_list("vip", Action.LABEL)
    assert admin.add("vip", [NUM]).cascade is None  # a label list blocks nothing
    assert admin.add("dnc", [NUM], expires="2000-01-01").cascade is None  # expired at once
    assert spool_names(spool) == {"q.call"}


def test_approve_and_restore_cascade(admin: Admin, spool: Path) -> None:
    info = admin.table.get_list("dnc")
    batch = admin.table.new_batch("import", "from the CRM", "import:crm.csv", "bob")
    pending = [parse_entry(n, "FR") for n in (NUM, OTHER, "+33611223344")]
    admin.run(entries.add_entries(admin.ctx.table, info, pending, batch, status=Status.PENDING))
    write_call_file(spool, "1.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "2.call", f"PJSIP/{OTHER}@trunk")
    write_call_file(spool, "3.call", "PJSIP/+33611223344@trunk")
    write_call_file(spool, "4.call", "PJSIP/+33622334455@trunk")

    approved = admin.approve("dnc", [NUM])
    assert approved.cascade is not None
    assert [c.file for c in approved.cascade.cancelled] == ["1.call"]
    assert approved.cascade.line("approved") == "approved 1 entry; cancelled 1 queued call"

    everything = admin.approve("dnc", all_pending=True)  # the whole list is matched
    assert everything.cascade is not None and everything.cascade.entries == 2
    assert sorted(c.file for c in everything.cascade.cancelled) == ["2.call", "3.call"]
    assert spool_names(spool) == {"4.call"}

    admin.add("dnc", ["+33622334455"])
    assert spool_names(spool) == set()
    admin.remove("dnc", ["+33622334455"], reason="mistake")
    write_call_file(spool, "5.call", "PJSIP/+33622334455@trunk")
    restored = admin.restore("dnc", ["+33622334455"])
    assert restored.cascade is not None
    assert [c.file for c in restored.cascade.cancelled] == ["5.call"]
    assert admin.unapprove("dnc", [OTHER]).cascade is None


def test_an_import_that_enforces_block_entries_cancels_their_queued_calls(
    admin: Admin, spool: Path, tmp_path: Path
) -> None:
    write_call_file(spool, "1.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "2.call", f"PJSIP/{OTHER}@trunk")
    write_call_file(spool, "3.call", "PJSIP/+33622334455@trunk")
    write_call_file(spool, "4.call", "PJSIP/+33633445566@trunk")
    path = tmp_path / "dnc.csv"
    path.write_text(f"number\n{NUM}\n+336987*\n")

    def options(approve: Status = Status.PENDING, **more: Any) -> ImportOptions:
        return ImportOptions(workers=0, approve=approve, **more)

    pending = admin.import_file("dnc", str(path), options())
    assert pending.summary.added == 2 and pending.cascade is None  # nothing enforced
    assert spool_names(spool) == {"1.call", "2.call", "3.call", "4.call"}

    approved = admin.import_file("dnc", str(path), options(Status.ACTIVE))
    assert approved.summary.enforced == 2
    report = approved.cascade
    assert report is not None and report.spool_checked
    assert sorted((c.file, c.entry) for c in report.cancelled) == [
        ("1.call", NUM),
        ("2.call", "+336987*"),
    ]
    assert report.line("enforced") == "enforced 2 entries; cancelled 2 queued calls"
    assert approved.to_json()["cascade"]["entries"] == 2
    assert approved.to_json()["added"] == 0
    assert spool_names(spool) == {"3.call", "4.call"}

    # nothing newly enforced: no cascade (permanent from active changes nothing to calls)
    assert admin.import_file("dnc", str(path), options(Status.PERMANENT)).cascade is None

    # standard input, and an export's statuses with keep_status
    stdin = io.BytesIO(b"number,status\n+33622334455,active\n+33633445566,pending\n")
    kept = admin.import_file("dnc", "-", options(keep_status=True), stdin=stdin)
    assert kept.cascade is not None and [c.file for c in kept.cascade.cancelled] == ["3.call"]
    assert spool_names(spool) == {"4.call"}

    # a label list blocks nothing
    admin.create_list("vip", Action.LABEL)
    path.write_text("+33633445566\n")
    assert admin.import_file("vip", str(path), options(Status.ACTIVE)).cascade is None
    assert spool_names(spool) == {"4.call"}


def test_cli_import_reports_the_cascade(redis_url: str, spool: Path, tmp_path: Path) -> None:
    from callscreen import cli

    write_call_file(spool, "1.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "2.call", f"PJSIP/{OTHER}@trunk")
    path = tmp_path / "dnc.csv"
    path.write_text(f"{NUM}\n")
    env = {
        "CALLSCREEN_REDIS_URL": redis_url,
        "CALLSCREEN_DEFAULT_REGION": "FR",
        "CALLSCREEN_SPOOL_DIR": str(spool),
    }
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        result = runner.invoke(cli.app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    invoke("lists", "create", "dnc", "--action", "block")
    out = invoke("import", "dnc", str(path), "--approve", "--no-progress").stdout
    assert "enforced 1 entry; cancelled 1 queued call" in out
    assert spool_names(spool) == {"2.call"}
    stdin_import = runner.invoke(
        cli.app,
        ["import", "dnc", "-", "--approve", "--json"],
        input=f"{OTHER}\n",
        env=env,
        catch_exceptions=False,
    )
    assert stdin_import.exit_code == 0, stdin_import.output
    data = json.loads(stdin_import.stdout)
    assert (data["added"], data["enforced"]) == (1, 1)
    assert [c["file"] for c in data["cascade"]["cancelled"]] == ["2.call"]
    assert spool_names(spool) == set()
    pending = invoke("import", "dnc", str(path), "--no-progress").stdout
    assert "cancelled" not in pending


def test_list_direction_and_campaigns(admin: Admin, spool: Path) -> None:
    admin.create_list("inbound-only", Action.BLOCK, Direction.INBOUND)
    write_call_file(spool, "in.call", f"PJSIP/{NUM}@trunk")
    report = admin.add("inbound-only", [NUM]).cascade
    assert report is not None and report.cancelled == () and not report.spool_checked
    assert any("inbound-only" in note for note in report.notes)
    assert spool_names(spool) == {"in.call"}

    admin.create_list("spring-dnc", Action.BLOCK, campaign_only=True)
    admin.assign("spring", ["spring-dnc"])
    camp = "Set: CALLSCREEN_CAMPAIGN={}\n"
    write_call_file(spool, "spring.call", f"PJSIP/{OTHER}@trunk", extra=camp.format("spring"))
    write_call_file(spool, "autumn.call", f"PJSIP/{OTHER}@trunk", extra=camp.format("autumn"))
    write_call_file(spool, "none.call", f"PJSIP/{OTHER}@trunk")
    report = admin.add("spring-dnc", [OTHER]).cascade
    assert report is not None
    assert [c.file for c in report.cancelled] == ["spring.call"]
    assert spool_names(spool) == {"in.call", "autumn.call", "none.call"}


def test_a_missing_spool_directory_is_said(redis_url: str, tmp_path: Path) -> None:
    with Admin(make_settings(redis_url, spool_dir=str(tmp_path / "nope"))) as service:
        service.create_list("dnc", Action.BLOCK)
        report = service.add("dnc", [NUM]).cascade
    assert report is not None and not report.spool_checked
    assert report.notes == (
        f"spool directory {tmp_path / 'nope'} not found: queued calls not checked",
    )
    assert report.line("added") == "added 1 entry; cancelled 0 queued calls"


def test_cascade_can_be_switched_off(redis_url: str, spool: Path) -> None:
    write_call_file(spool, "q.call", f"PJSIP/{NUM}@trunk")
    settings = make_settings(redis_url, spool_dir=str(spool), cascade_enabled=False)
    with Admin(settings) as service:
        service.create_list("dnc", Action.BLOCK)
        assert service.add("dnc", [NUM]).cascade is None
    assert spool_names(spool) == {"q.call"}


# -- live calls ----------------------------------------------------------------------


def live(name: str, uid: str, **fields: Any) -> LiveChannel:
    return LiveChannel(name=name, uniqueid=uid, **fields)


async def test_a_live_call_to_a_newly_blocked_number_is_hung_up(
    redis_url: str, spool: Path, peer: AmiPeer
) -> None:
    # an outbound call to NUM: the trunk leg shows it as its extension, the agent's leg
    # as its connected line (one call: one Linkedid)
    peer.channels = {
        ch.name: ch
        for ch in (
            live("PJSIP/trunk-00000007", "1700.7", exten="0612345678", linkedid="1700.6"),
            live("PJSIP/101-00000006", "1700.6", connected_num=NUM, callerid_num="101"),
            live("PJSIP/trunk-00000009", "1700.9", callerid_num=OTHER, exten="101"),
            # an originated call: the Local pair, its ;2 half dialing the trunk
            live("Local/0699111222@campaign-out-00000002;1", "1700.2"),
            live("Local/0699111222@campaign-out-00000002;2", "1700.21", linkedid="1700.2"),
            live("PJSIP/trunk-00000004", "1700.22", exten="0699111222", linkedid="1700.2"),
            live("PJSIP/102-00000003", "1700.3", callerid_num="102", exten="*32"),
        )
    }
    # a call file being dialed right now, for the number; and one waiting
    dialing = write_call_file(spool, "dialing.call", f"PJSIP/{NUM}@trunk", due_in=-1)
    mark_dialing(dialing)
    write_call_file(spool, "later.call", f"PJSIP/{NUM}@trunk")

    def asterisk_hangs_up(channel: LiveChannel) -> None:
        # the failed attempt is noted in the call file and the next retry scheduled
        if channel.name == "PJSIP/trunk-00000007":
            mark_attempt_failed(dialing)

    peer.on_hangup = asterisk_hangs_up
    settings = make_settings(redis_url, spool_dir=str(spool), **ami_overrides(peer.port))
    with Admin(settings) as service:
        service.create_list("dnc", Action.BLOCK)
        # not asked for: AMI is not even contacted, the due file is left and said so
        quiet = await asyncio.to_thread(service.add, "dnc", [NUM], reason="complaint")
        assert peer.actions == []
        assert quiet.cascade is not None and quiet.cascade.hung_up == ()
        assert [c.file for c in quiet.cascade.left_due] == ["dialing.call"]
        assert [c.file for c in quiet.cascade.cancelled] == ["later.call"]
        write_call_file(spool, "later.call", f"PJSIP/{NUM}@trunk")
        result = await asyncio.to_thread(
            service.add, "dnc", [NUM, "+33699*"], reason="complaint", hangup_live=True
        )

    # each call hung up once, through its first channel: never a ;2 half besides its
    # ;1 (Asterisk: "Request to hangup non-existent channel")
    hangups = peer.named("Hangup")
    assert sorted(h["Channel"] for h in hangups) == [
        "Local/0699111222@campaign-out-00000002;1",
        "PJSIP/101-00000006",
    ]
    assert {h["Cause"] for h in hangups} == {"21"}
    assert sorted(peer.channels) == ["PJSIP/102-00000003", "PJSIP/trunk-00000009"]
    report = result.cascade
    assert report is not None and report.hangup_requested
    assert report.hung_up_calls == 2  # the outbound call (two legs) and the Local one
    # the due file came back as waiting after the hang-up, and was removed then
    assert sorted(c.file for c in report.cancelled) == ["dialing.call", "later.call"]
    assert report.left_due == ()
    assert spool_names(spool) == set()
    assert report.line("added") == "added 2 entries; cancelled 2 queued calls; hung up 2 live calls"
    assert peer.named("Logoff")  # the short-lived AMI session logged off


async def test_hangup_live_without_ami_or_with_ami_down_is_said(
    redis_url: str, spool: Path
) -> None:
    with Admin(make_settings(redis_url, spool_dir=str(spool))) as service:
        service.create_list("dnc", Action.BLOCK)
        report = (await asyncio.to_thread(service.add, "dnc", [NUM], hangup_live=True)).cascade
        assert report is not None and report.hung_up == ()
        assert any("AMI not configured" in note for note in report.notes)
    from tests.support.redisproc import free_port

    down = make_settings(
        redis_url, spool_dir=str(spool), **ami_overrides(free_port(), ami_timeout_s=0.5)
    )
    with Admin(down) as service:
        report = (await asyncio.to_thread(service.add, "dnc", [OTHER], hangup_live=True)).cascade
        assert report is not None and report.hung_up == ()
        assert any("live calls not hung up" in note for note in report.notes)
        assert (
            report.line("added") == "added 1 entry; cancelled 0 queued calls; hung up 0 live calls"
        )


# -- the command line ------------------------------------------------------------------


async def test_cli_reports_the_cascade(redis_url: str, spool: Path, peer: AmiPeer) -> None:
    from callscreen import cli

    peer.channels = {"PJSIP/trunk-1": live("PJSIP/trunk-1", "1.1", exten=NUM)}
    for i in range(3):
        write_call_file(spool, f"{i}.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "other.call", f"PJSIP/{OTHER}@trunk")
    env = {
        "CALLSCREEN_REDIS_URL": redis_url,
        "CALLSCREEN_DEFAULT_REGION": "FR",
        "CALLSCREEN_SPOOL_DIR": str(spool),
        "CALLSCREEN_AMI_HOST": "127.0.0.1",
        "CALLSCREEN_AMI_PORT": str(peer.port),
        "CALLSCREEN_AMI_USERNAME": "callscreen",
        "CALLSCREEN_AMI_SECRET": "s3cret",
    }
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        result = runner.invoke(cli.app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    await asyncio.to_thread(invoke, "lists", "create", "dnc", "--action", "block")
    out = (await asyncio.to_thread(invoke, "add", "dnc", NUM, "--hangup-live")).stdout
    assert "enforced 1 entry; cancelled 3 queued calls; hung up 1 live call" in out
    assert spool_names(spool) == {"other.call"}
    assert [h["Channel"] for h in peer.named("Hangup")] == ["PJSIP/trunk-1"]

    write_call_file(spool, "again.call", f"PJSIP/{NUM}@trunk")
    data = (await asyncio.to_thread(invoke, "add", "dnc", NUM, "--json")).stdout
    import json

    cascade_json = json.loads(data)["cascade"]
    assert [c["file"] for c in cascade_json["cancelled"]] == ["again.call"]
    assert cascade_json["hangup_requested"] is False
