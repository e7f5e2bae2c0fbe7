"""The whole audit trail exported for archiving: every list's events, deleted lists'
included, and the global trail, merged in time order, resumable from a cursor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callscreen.cli.exits import EXIT_INVALID, EXIT_USAGE
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Action
from callscreen.services import audit
from callscreen.services.audit import Cursor, TrailEvent
from tests.support.blocking import SyncAdmin as Admin
from tests.support.clock import Clock
from tests.test_cli import Cli

BIN = Path(sys.executable).parent


@pytest.fixture
def clock() -> Clock:
    return Clock(ticking=False)


@pytest.fixture
def admin(redis_url: str, clock: Clock) -> Iterator[Admin]:
    service = Admin(Settings(redis_url=redis_url, default_region="FR"), clock=clock)
    yield service
    service.close()


def export(admin: Admin, after: str | None = None, settle_s: float = 0.0) -> list[TrailEvent]:
    return admin.portal.collect(admin.services.history.export(after, settle_s=settle_s))


def build_trail(admin: Admin, clock: Clock) -> None:
    """Three lists' trails and the global one, interleaved, many events sharing a
    millisecond (the clock stands still between advances), one list deleted."""
    admin.create_list("a", Action.BLOCK)
    admin.create_list("b", Action.LABEL)
    clock.advance(1)
    for n in range(12):
        admin.add("a", [f"+3361200{n:04d}"])
        admin.add("b", [f"+3361300{n:04d}"])
        if n % 4 == 0:
            clock.advance(0.001)
    admin.create_list("c", Action.ALLOW)
    admin.add("c", ["+33614000000"])
    clock.advance(1)
    admin.delete_list("b", reason="campaign over")
    admin.assign("sales", ["a"])
    clock.advance(1)


def order_key(event: TrailEvent) -> tuple[int, int, int]:
    return (event.cursor.ms, event.cursor.seq, event.list_id or 0)


def test_every_event_of_every_stream_in_time_order(
    admin: Admin, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_trail(admin, clock)
    monkeypatch.setattr(audit, "EXPORT_PAGE", 10)  # streams read in several pages
    events = export(admin)
    ids = {name: admin.table.list_id(name) for name in ("a", "c")}
    per_stream: dict[int | None, list[str]] = {}
    for e in events:
        per_stream.setdefault(e.list_id, []).append(e.event.op)
    b_id = next(i for i in per_stream if i not in (None, *ids.values()))
    # each stream whole, in its own order; the deleted list's included, with its name
    assert per_stream[ids["a"]] == ["create"] + ["add"] * 12
    assert per_stream[b_id] == ["create"] + ["add"] * 12 + ["delete"]
    assert per_stream[ids["c"]] == ["create", "add"]
    assert per_stream[None] == ["create", "create", "create", "delete", "assign"]
    assert {e.event.list_name for e in events if e.list_id == b_id} == {"b"}
    # merged: time order, ties by stream id then list; the cursors name each one
    assert [order_key(e) for e in events] == sorted(order_key(e) for e in events)
    assert len({str(e.cursor) for e in events}) == len(events)
    assert all(Cursor.parse(str(e.cursor)) == e.cursor for e in events)
    assert events[0].to_json()["cursor"] == str(events[0].cursor)
    assert sum(1 for e in events if e.event.op == "add") == 25


def test_resuming_from_any_cursor_gives_exactly_the_rest(admin: Admin, clock: Clock) -> None:
    build_trail(admin, clock)
    events = export(admin)
    # same millisecond, several streams: every cut resumes exactly
    for cut in range(0, len(events), 3):
        rest = export(admin, str(events[cut].cursor))
        assert [str(e.cursor) for e in rest] == [str(e.cursor) for e in events[cut + 1 :]]
    assert export(admin, str(events[-1].cursor)) == []
    admin.add("a", ["+33615000000"])
    clock.advance(1)
    new = export(admin, str(events[-1].cursor))
    assert [(e.event.op, e.event.entries) for e in new] == [("add", ("+33615000000",))]


def test_recent_events_wait_for_the_settling_time(admin: Admin, clock: Clock) -> None:
    admin.create_list("a", Action.BLOCK)
    clock.advance(120)
    admin.add("a", ["+33612000000"])
    clock.advance(30)
    assert [e.event.op for e in export(admin, settle_s=60)] == ["create", "create"]
    assert len(export(admin, settle_s=0)) == 3
    with pytest.raises(InvalidInput):
        export(admin, "12-0")
    with pytest.raises(InvalidInput):
        export(admin, settle_s=-1)


def test_pages_of_the_trail(admin: Admin, clock: Clock) -> None:
    build_trail(admin, clock)
    everything = [str(e.cursor) for e in export(admin)]
    seen: list[str] = []
    after = None
    while True:
        page, after = admin.run(admin.services.history.trail_page(after, limit=7))
        seen += [str(e.cursor) for e in page]
        if after is None:
            break
    assert seen == everything


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_cli_appends_and_resumes_from_its_cursor_file(redis_url: str, tmp_path: Path) -> None:
    cli = Cli(redis_url)
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", "+33612345678", "--by", "alice")
    cli("lists", "create", "old", "--action", "label")
    cli("lists", "delete", "old", "--yes", "--reason", "gone")
    archive, cursor = tmp_path / "trail.jsonl", tmp_path / "cursor"
    run = ["history", "--export", str(archive), "--cursor-file", str(cursor), "--settle", "0"]
    out = cli(*run).stdout
    first = lines(archive)
    assert [(e["op"], e["list_name"]) for e in first if e["list_id"] is not None] == [
        ("create", "dnc"),
        ("add", "dnc"),
        ("create", "old"),
        ("delete", "old"),
    ]
    assert [e["op"] for e in first if e["list_id"] is None] == ["create", "create", "delete"]
    added = next(e for e in first if e["op"] == "add")
    assert added["by"] == "alice" and added["entries"] == ["+33612345678"]
    last = first[-1]["cursor"]
    assert cursor.read_text().strip() == last
    assert f"exported 7 events to {archive}; resume with --after {last}" in out

    cli("add", "dnc", "+33698765432")
    summary = cli.json(*run)
    assert summary["exported"] == 1
    second = lines(archive)
    assert second[:7] == first and second[7]["entries"] == ["+33698765432"]
    assert cursor.read_text().strip() == second[7]["cursor"] == summary["cursor"]
    assert cli.json(*run) == {"exported": 0, "cursor": second[7]["cursor"]}

    # --after names the place by hand; to standard output with "-"
    replay = cli("history", "--export", "-", "--after", first[5]["cursor"], "--settle", "0")
    assert [json.loads(x)["cursor"] for x in replay.stdout.splitlines()] == [
        e["cursor"] for e in second[6:]
    ]
    # the default settling time leaves the last minute to the next run
    assert "exported 0 events" in cli("history", "--export", str(tmp_path / "x")).stdout
    cli("history", "--export", str(tmp_path / "y"), "--after", "garbage", code=EXIT_INVALID)
    assert not (tmp_path / "y").exists()
    cli("history", "dnc", "--export", str(tmp_path / "y"), code=EXIT_USAGE)
    cli("history", "--after", last, code=EXIT_USAGE)


def test_the_documented_cron_line_archives_day_after_day(redis_url: str, tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("15 2 * * * callscreen "))
    command = line.split(" ", 6)[6].replace("\\%", "%")  # cron's escaped %
    command = command.replace("/opt/callscreen/.venv/bin/callscreen", str(BIN / "callscreen"))
    for path in ("/etc/callscreen", "/var/lib/callscreen", "/var/log/callscreen"):
        (tmp_path / path.strip("/")).mkdir(parents=True)
        command = command.replace(path, str(tmp_path / path.strip("/")))
    (tmp_path / "var/lib/callscreen/trail").mkdir()
    (tmp_path / "etc/callscreen/.env").write_text(
        f"CALLSCREEN_REDIS_URL={redis_url}\nCALLSCREEN_DEFAULT_REGION=FR\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    # events old enough for the default settling time: a clock five minutes behind
    past = Clock(time.time() - 300)
    with Admin(Settings(redis_url=redis_url, default_region="FR"), clock=past) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33612345678"])
        subprocess.run(["bash", "-e", "-c", command], env=env, check=True)
        past.advance(1)
        admin.add("dnc", ["+33698765432"])
        subprocess.run(["bash", "-e", "-c", command], env=env, check=True)
    archives = list((tmp_path / "var/lib/callscreen/trail").glob("*.jsonl"))
    assert len(archives) == 1  # both runs on the same day
    events = lines(archives[0])
    assert [e["op"] for e in events] == ["create", "create", "add", "add"]
    assert (tmp_path / "var/lib/callscreen/trail/cursor").read_text().strip() == (
        events[-1]["cursor"]
    )
    log = (tmp_path / "var/log/callscreen/trail.log").read_text()
    assert "exported 3 events" in log and "exported 1 event to" in log
