"""Reports from a scripted series of screened calls — driven through the screener and
over real TCP through the FastAGI server — must match the calls made, exactly, in
every format; and the lost/never-contacted split must be right for numbers
blacklisted in the middle of the series."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.callpath.server import AgiServer
from callscreen.cli import app
from callscreen.cli.exits import EXIT_INVALID
from callscreen.core.config import FailPolicy, Settings
from callscreen.core.model import Action, Direction, Result
from callscreen.gateway.attemptlog import CallLog, LoggedScreener
from callscreen.reports.render import (
    csv_cell,
    report_csv,
    report_html,
    report_json,
    report_text,
)
from callscreen.reports.report import (
    Fate,
    NumberFate,
    Report,
    ReportService,
    TopNumber,
    build_report,
    follow_attempts,
    recent_attempts,
    zero_counts,
)
from callscreen.schema.attempts import DayClock, LogSettings, Outcome
from callscreen.services.logshards import stream_id
from callscreen.services.table import Table
from tests.support.agiclient import FakeAsterisk
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until_async as until
from tests.support.redisproc import free_port

IN, OUT = Direction.INBOUND, Direction.OUTBOUND
DAY = 86400.0
HOST = "127.0.0.1"


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": url,
        "default_region": "FR",
        "deadline_ms": 5_000,
        "listen_host": HOST,
        "listen_port": 0,
        "redis_connect_timeout_ms": 100,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


LOG = LogSettings(flush_interval_s=0.01, node="test-node")


# -- the scripted series ---------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of the script and what it must come to."""

    day: int  # days before today
    via: str  # "up": the healthy gateway; "open"/"closed": Redis down, that fail policy
    direction: Direction
    number: str
    campaign: str
    outcome: Outcome
    list_name: str = ""


# numbers (FR mobiles); "lost" ones get an allowed call before being blacklisted
LOST_1 = "+33612340001"  # allowed in campaign A, then put on dnc
LOST_2 = "+33612340004"  # allowed in campaign B, then put on A's own list
NEVER_1 = "+33612340010"  # put on dnc before any call
NEVER_2 = "+33612340040"  # put on A's list, then allowed in B (after), then blocked in A
SPAM = "+33612340020"  # labeled inbound, never contacted
PREFIXED = "+33612990001"  # blocked by the prefix +3361299*
EXCEPTION = "+33612990002"  # in the prefix, but on the allow list
STILL_OK = "+33612340002"

BEFORE = [
    Call(2, "up", OUT, LOST_1, "A", Outcome.ALLOWED),
    Call(2, "up", OUT, STILL_OK, "A", Outcome.ALLOWED),
    Call(2, "up", IN, "+33612340003", "", Outcome.ALLOWED),
    Call(1, "up", OUT, LOST_2, "B", Outcome.ALLOWED),
    Call(1, "up", IN, "anonymous", "", Outcome.ALLOWED),
    Call(1, "up", OUT, "+33612340005", "B", Outcome.ALLOWED),
]
AFTER = [
    Call(0, "up", OUT, LOST_1, "A", Outcome.BLOCKED, "dnc"),
    Call(0, "up", OUT, LOST_1, "A", Outcome.BLOCKED, "dnc"),
    Call(0, "up", IN, LOST_1, "", Outcome.BLOCKED, "dnc"),
    Call(0, "up", OUT, NEVER_1, "A", Outcome.BLOCKED, "dnc"),
    Call(0, "up", OUT, LOST_2, "A", Outcome.BLOCKED, "camp-a"),
    Call(0, "up", OUT, LOST_2, "B", Outcome.ALLOWED),  # A's list does not apply to B
    Call(0, "up", OUT, NEVER_2, "B", Outcome.ALLOWED),
    Call(0, "up", OUT, NEVER_2, "A", Outcome.BLOCKED, "camp-a"),
    Call(0, "up", OUT, STILL_OK, "A", Outcome.ALLOWED),
    Call(0, "up", IN, SPAM, "", Outcome.LABELED, "spam"),
    Call(0, "up", IN, SPAM, "", Outcome.LABELED, "spam"),
    Call(0, "up", OUT, SPAM, "B", Outcome.ALLOWED),  # spam is an inbound list
    Call(0, "up", IN, PREFIXED, "", Outcome.BLOCKED, "dnc"),
    Call(0, "up", IN, EXCEPTION, "", Outcome.ALLOWED, "exceptions"),
    Call(0, "up", OUT, "112", "A", Outcome.ALLOWED),  # emergency: never blocked
    Call(0, "open", OUT, "+33612340050", "A", Outcome.UNSCREENED),
    Call(0, "closed", OUT, "+33612340051", "B", Outcome.UNAVAILABLE),
    Call(0, "closed", IN, "+33612340052", "", Outcome.UNAVAILABLE),
]
SCRIPT = BEFORE + AFTER


def blacklist(admin: Admin) -> None:
    """The lists, set up between the calls before and after (mid-series)."""
    admin.add("dnc", [LOST_1, NEVER_1, "+3361299*"], reason="opt-out")
    admin.add("camp-a", [LOST_2, NEVER_2], reason="campaign A do-not-call")
    admin.add("spam", [SPAM], reason="reported")
    admin.add("exceptions", [EXCEPTION], reason="our own line")


def create_lists(admin: Admin) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.create_list("spam", Action.LABEL, IN)
    admin.create_list("camp-a", Action.BLOCK, campaign_only=True)
    admin.create_list("exceptions", Action.ALLOW)
    admin.assign("A", ["camp-a"])


Dial = Callable[[Call, str], Awaitable[tuple[str, str]]]  # -> (result, list)


async def run_script(dial: Dial, admin: Admin, log: CallLog) -> None:
    """Make the calls, blacklisting in the middle; each call's result is checked."""
    real = time.time
    n = 0
    for phase, calls in (("before", BEFORE), ("after", AFTER)):
        if phase == "after":
            assert await log.flush()
            blacklist(admin)
            # first-contact marks are in milliseconds: the calls after come a tick later
            later = real() + 0.002
            await until(lambda: real() >= later, "the clock to pass the blacklisting")  # noqa: B023
        for call in calls:
            n += 1
            # one millisecond apart at least: the log's shards are merged by call time,
            # and calls of the same millisecond in different shards have no order
            log.clock = lambda call=call, n=n: real() - call.day * DAY + n / 1000  # type: ignore[misc]
            result, list_name = await dial(call, f"1700000000.{n}")
            expected = "BLOCKED" if call.outcome is Outcome.UNAVAILABLE else call.outcome.value
            assert (result, list_name) == (expected, call.list_name), call
    log.clock = real
    assert await log.flush()


def expected_counts(
    calls: list[Call], campaign: str | None = None
) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Totals, by day and by list, from the script itself."""
    today = DayClock("UTC").date_of(time.time())
    totals = zero_counts()
    by_day = {(today - timedelta(days=d)).isoformat(): zero_counts() for d in (2, 1, 0)}
    by_list: dict[str, dict[str, int]] = {}
    for call in calls:
        if campaign is not None and call.campaign != campaign:
            continue
        o = call.outcome.value
        totals[o] += 1
        by_day[(today - timedelta(days=call.day)).isoformat()][o] += 1
        by_list.setdefault(call.list_name, zero_counts())[o] += 1
    return totals, by_day, by_list


@dataclass
class Rig:
    settings: Settings
    admin: Admin
    log: CallLog
    dial: Dial


@contextlib.asynccontextmanager
async def direct_rig(redis_url: str) -> AsyncIterator[Rig]:
    """The script driven straight through the screener and the call log."""
    settings = make_settings(redis_url)
    dead = f"redis://{HOST}:{free_port()}/0"
    log = CallLog(LOG, LeanRedis.from_url(redis_url), own_client=True)
    log.start()
    screeners = {
        "up": LoggedScreener(Screener.from_settings(settings), log),
        "open": LoggedScreener(Screener.from_settings(make_settings(dead)), log),
        "closed": LoggedScreener(
            Screener.from_settings(make_settings(dead, fail_policy=FailPolicy.CLOSED)), log
        ),
    }

    async def dial(call: Call, uniqueid: str) -> tuple[str, str]:
        request = ScreenRequest(call.number, call.direction, call.campaign, uniqueid, "Caller")
        decision = await screeners[call.via].screen(request)
        return decision.result.value, decision.list_name

    admin = Admin(settings)
    create_lists(admin)
    yield Rig(settings, admin, log, dial)
    await log.stop()
    for screener in screeners.values():
        await screener.close()
    admin.close()


@contextlib.asynccontextmanager
async def tcp_rig(redis_url: str) -> AsyncIterator[Rig]:
    """The script over real TCP: fake Asterisk -> AgiServer -> screener, logged."""
    settings = make_settings(redis_url)
    dead = f"redis://{HOST}:{free_port()}/0"
    log = CallLog.from_settings(settings, LOG)
    log.start()
    servers: dict[str, AgiServer] = {}
    screeners = []
    for via, s in (
        ("up", settings),
        ("open", make_settings(dead)),
        ("closed", make_settings(dead, fail_policy=FailPolicy.CLOSED)),
    ):
        screener = LoggedScreener(Screener.from_settings(s), log)
        screeners.append(screener)
        servers[via] = AgiServer(s, screener)
        await servers[via].start()

    async def dial(call: Call, uniqueid: str) -> tuple[str, str]:
        asterisk = FakeAsterisk(HOST, servers[call.via].port)
        result = await asterisk.call(
            args=(call.direction.value, call.number, call.campaign),
            uniqueid=uniqueid,
            calleridname="Caller",
        )
        assert result.command_count == 1
        return result.variables["CALLSCREEN_RESULT"], result.variables["CALLSCREEN_LIST"]

    admin = Admin(settings)
    create_lists(admin)
    yield Rig(settings, admin, log, dial)
    for server in servers.values():
        await server.close(1.0)
    await log.stop()
    for screener in screeners:
        await screener.close()
    admin.close()


@pytest.fixture
async def direct(redis_url: str) -> AsyncIterator[Rig]:
    async with direct_rig(redis_url) as rig:
        yield rig


@pytest.fixture(params=["direct", "over_tcp"])
async def rig(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Rig]:
    builder = direct_rig if request.param == "direct" else tcp_rig
    async with builder(redis_url) as built:
        yield built


def three_days() -> tuple[date, date]:
    today = DayClock("UTC").date_of(time.time())
    return today - timedelta(days=2), today


# -- reading each format back ----------------------------------------------------------------


def totals_from_csv(text: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    totals: dict[str, int] = {}
    by_day: dict[str, dict[str, int]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["section"] == "total":
            totals[row["key"]] = int(row["value"])
        elif row["section"] == "day":
            by_day.setdefault(row["key"], {})[row["metric"]] = int(row["value"])
    return totals, by_day


LABEL_OF = {
    "ALLOWED": "allowed",
    "BLOCKED": "blocked",
    "LABELED": "labeled",
    "UNSCREENED": "unscreened",
    "BLOCKED_UNAVAILABLE": "blocked (unavailable)",
}


def totals_from_text(text: str) -> dict[str, int]:
    totals = {}
    for outcome, label in LABEL_OF.items():
        match = re.search(rf"│ {re.escape(label)}\s+│\s+(\d+) │", text)
        assert match, label
        totals[outcome] = int(match.group(1))
    return totals


def totals_from_html(page: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    totals = {}
    for outcome, label in LABEL_OF.items():
        match = re.search(
            rf'<div class="n">(\d+)</div><div class="l">{re.escape(label)}</div>', page
        )
        assert match, label
        totals[outcome] = int(match.group(1))
    by_day = {}
    for match in re.finditer(
        r"<tr><td>(\d{4}-\d\d-\d\d)</td>((?:<td class=\"n\">\d+</td>)+)", page
    ):
        cells = [int(v) for v in re.findall(r"(\d+)</td>", match.group(2))]
        by_day[match.group(1)] = dict(zip(LABEL_OF, cells[:5], strict=True))
    return totals, by_day


# -- the tests -------------------------------------------------------------------------------


async def next_millisecond() -> None:
    """Until the wall clock (which the gateway's marks and the entries' times read) has
    passed the next millisecond."""
    start = time.time()
    await until(lambda: time.time() >= start + 0.002, "the clock to pass a millisecond")


async def test_a_new_reason_does_not_make_a_never_contacted_number_lost(
    redis_url: str,
) -> None:
    """Lost / never contacted is told by the time the entry was first enforced (kept on
    the entry), not by its last change: a number blocked in campaign A since before its
    first contact (an allowed call in campaign B) stays never contacted when its entry
    gets a new reason later."""
    async with direct_rig(redis_url) as rig:
        rig.admin.add("camp-a", [NEVER_2], reason="campaign A do-not-call")
        await next_millisecond()  # first-contact marks are in milliseconds
        for n, (campaign, expected) in enumerate((("B", "ALLOWED"), ("A", "BLOCKED"))):
            result, _list = await rig.dial(
                Call(0, "up", OUT, NEVER_2, campaign, Outcome.ALLOWED), f"1700000001.{n}"
            )
            assert result == expected
            if campaign == "B":
                assert await rig.log.flush()
                await next_millisecond()
                rig.admin.add("camp-a", [NEVER_2], reason="asked again, on the phone")
        assert await rig.log.flush()
        since, until = three_days()
        report = rig.admin.run(build_report(rig.admin.ctx.table, LOG, since, until))
    assert [f.number for f in report.never_contacted] == [NEVER_2]
    assert report.lost == ()
    [fate] = report.never_contacted
    assert fate.first_contact is not None and fate.blacklisted_at is not None
    assert fate.blacklisted_at < fate.first_contact


async def test_report_matches_the_scripted_calls_in_every_format(rig: Rig, redis_url: str) -> None:
    await run_script(rig.dial, rig.admin, rig.log)
    assert rig.log.stats().dropped == 0
    since, until = three_days()
    report = rig.admin.run(build_report(rig.admin.ctx.table, LOG, since, until))
    totals, by_day, by_list = expected_counts(SCRIPT)

    assert report.total == len(SCRIPT)
    assert report.totals == totals
    assert report.by_day == by_day
    assert report.by_list == by_list
    directions = Counter((c.direction.value, c.outcome.value) for c in SCRIPT)
    for direction, counts in report.by_direction.items():
        assert counts == {o: directions[(direction, o)] for o in counts}
    assert {k: sum(v.values()) for k, v in report.by_campaign.items()} == Counter(
        c.campaign for c in SCRIPT
    )

    # lost / never contacted, for numbers blacklisted mid-series
    assert {f.number for f in report.lost} == {LOST_1, LOST_2}
    assert {f.number for f in report.never_contacted} == {NEVER_1, NEVER_2, SPAM, PREFIXED}
    assert report.unknown == ()
    assert (report.lost_count, report.never_contacted_count, report.listed_numbers) == (2, 4, 6)
    lost_1 = next(f for f in report.lost if f.number == LOST_1)
    assert (lost_1.attempts, lost_1.list_name, lost_1.entry) == (3, "dnc", LOST_1)
    assert lost_1.first_contact is not None and lost_1.blacklisted_at is not None
    assert lost_1.first_contact < lost_1.blacklisted_at - DAY  # contacted two days before
    never_2 = next(f for f in report.never_contacted if f.number == NEVER_2)
    assert never_2.first_contact is not None  # contacted, but only after its blacklisting
    prefixed = next(f for f in report.never_contacted if f.number == PREFIXED)
    assert (prefixed.entry, prefixed.first_contact) == ("+3361299*", None)

    assert [(t.number, t.attempts) for t in report.top_blocked[:1]] == [(LOST_1, 3)]
    assert [(t.number, t.attempts, t.lists) for t in report.top_labeled] == [(SPAM, 2, ("spam",))]

    # every format says the same
    data = json.loads(report_json(report))
    assert data["totals"] == totals and data["by_day"] == by_day and data["by_list"] == by_list
    assert data["total"] == len(SCRIPT)
    assert {row["number"] for row in data["lost"]} == {LOST_1, LOST_2}
    csv_totals, csv_days = totals_from_csv(report_csv(report))
    assert csv_totals == totals and csv_days == by_day
    assert totals_from_text(report_text(report)) == totals
    html_totals, html_days = totals_from_html(report_html(report))
    assert html_totals == totals and html_days == by_day

    # and so does the CLI
    # in a thread of its own: the command runs its own event loop, as from a shell
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["--redis-url", redis_url, "report", "--since", since.isoformat(), "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"] == totals


async def test_campaign_report_counts_that_campaign_only(direct: Rig) -> None:
    await run_script(direct.dial, direct.admin, direct.log)
    since, until = three_days()
    report = direct.admin.run(build_report(direct.admin.ctx.table, LOG, since, until, campaign="A"))
    totals, by_day, by_list = expected_counts(SCRIPT, "A")
    assert report.totals == totals and report.by_day == by_day and report.by_list == by_list
    assert list(report.by_campaign) == ["A"]
    assert {f.number for f in report.lost} == {LOST_1, LOST_2}
    assert {f.number for f in report.never_contacted} == {NEVER_1, NEVER_2}
    none = direct.admin.run(build_report(direct.admin.ctx.table, LOG, since, until, campaign=""))
    assert none.total == sum(1 for c in SCRIPT if c.campaign == "")
    assert {f.number for f in none.never_contacted} == {SPAM, PREFIXED}
    assert {f.number for f in none.lost} == {LOST_1}  # called inbound once after its block


async def test_counters_outlive_the_records(direct: Rig) -> None:
    await run_script(direct.dial, direct.admin, direct.log)
    for name in direct.admin.table.keys.attempt_logs():
        direct.admin.table.r.xtrim(name, maxlen=0)
    since, until = three_days()
    report = direct.admin.run(build_report(direct.admin.ctx.table, LOG, since, until))
    assert report.total == len(SCRIPT)
    assert {f.number for f in report.lost} == {LOST_1, LOST_2}


async def test_number_whose_list_is_gone_is_unknown_if_it_was_contacted(direct: Rig) -> None:
    await run_script(direct.dial, direct.admin, direct.log)
    direct.admin.delete_list("camp-a")
    since, until = three_days()
    report = direct.admin.run(build_report(direct.admin.ctx.table, LOG, since, until))
    assert {f.number for f in report.unknown} == {LOST_2, NEVER_2}  # both had a contact
    assert {f.number for f in report.lost} == {LOST_1}
    assert report.unknown[0].blacklisted_at is None


async def test_report_service_ranges_and_caps(direct: Rig) -> None:
    await run_script(direct.dial, direct.admin, direct.log)
    svc = ReportService(direct.settings, direct.admin.ctx.table)
    report = direct.admin.run(svc.report(days=3, top=1, max_numbers=1))
    assert report.total == len(SCRIPT)
    assert len(report.top_blocked) == 1 and len(report.never_contacted) == 1
    assert report.never_contacted_count == 4
    assert direct.admin.run(svc.report(days=1)).total == len(AFTER)


async def test_recent_attempts_filters_and_follow(direct: Rig) -> None:
    await run_script(direct.dial, direct.admin, direct.log)
    table = Table(direct.settings)
    svc = ReportService(direct.settings, table)
    records, last = await recent_attempts(table, svc.query(), limit=100)
    # in call time order (the script's calls are spread over three days)
    assert sorted(r.uniqueid for r in records) == sorted(
        f"1700000000.{i}" for i in range(1, len(SCRIPT) + 1)
    )
    assert [r.time for r in records] == sorted(r.time for r in records)
    heads = [await table.r.xrevrange(name, count=1) for name in table.keys.attempt_logs()]
    assert last == max((h[0][0] for h in heads if h), key=stream_id)
    blocked_a, _ = await recent_attempts(
        table, svc.query(campaign="A", outcome=Outcome.BLOCKED, direction=OUT), limit=100
    )
    assert [r.number for r in blocked_a] == [LOST_1, LOST_1, NEVER_1, LOST_2, NEVER_2]
    national, _ = await recent_attempts(table, svc.query(number="06 12 34 00 01"), limit=100)
    assert {r.number for r in national} == {LOST_1} and len(national) == 4
    prefix, _ = await recent_attempts(table, svc.query(number="+3361299*"), limit=100)
    assert {r.number for r in prefix} == {PREFIXED, EXCEPTION}
    unavailable, _ = await recent_attempts(table, svc.query(outcome=Outcome.UNAVAILABLE), limit=100)
    # fail-policy answers carry the number they read (dialed only when none was read)
    assert [r.number for r in unavailable] == ["+33612340051", "+33612340052"]
    assert [r.dialed for r in unavailable] == ["", ""]
    two, _ = await recent_attempts(table, svc.query(), limit=2)
    assert [r.uniqueid for r in two] == [
        f"1700000000.{len(SCRIPT) - 1}",
        f"1700000000.{len(SCRIPT)}",
    ]
    old, _ = await recent_attempts(table, svc.query(until=time.time() - DAY / 2), limit=100)
    assert len(old) == len(BEFORE)
    recent, _ = await recent_attempts(table, svc.query(since=time.time() - 3600), limit=100)
    assert len(recent) == len(AFTER)

    # follow: new records only, filtered
    seen = []

    def stop() -> bool:
        return len(seen) >= 2

    async def consume() -> None:
        query = svc.query(campaign="Z")
        async for rec in follow_attempts(table, query, last, block_ms=100, stop=stop):
            seen.append(rec)

    reader = asyncio.create_task(consume())  # follows from ``last``: no head start needed
    for i, campaign in enumerate(["Y", "Z", "Y", "Z"]):
        direct.log.record(
            ScreenRequest(f"+3361234009{i}", OUT, campaign), _allowed(f"+3361234009{i}"), 0
        )
    assert await direct.log.flush()
    await asyncio.wait_for(reader, 5)
    assert [r.campaign for r in seen] == ["Z", "Z"]
    await table.close()


def _allowed(number: str) -> Decision:
    return Decision(Result.ALLOWED, number=number)


def test_cli_log_and_report_formats(redis_url: str, tmp_path: Path) -> None:
    async def fill() -> None:
        log = CallLog(LOG, LeanRedis.from_url(redis_url), own_client=True)
        # a millisecond apart: calls of one millisecond in different shards have no order
        ticks = iter(time.time() + i / 1000 for i in range(5))
        log.clock = lambda: next(ticks)
        log.start()
        for i in range(5):
            number = f"+3361234010{i}"
            request = ScreenRequest(number, OUT, "A", f"u{i}", '=HYPERLINK("x")')
            log.record(request, _allowed(number), 0)
        await log.stop()

    asyncio.run(fill())
    runner = CliRunner()
    base = ["--redis-url", redis_url]
    result = runner.invoke(app, [*base, "log", "--json", "-n", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["uniqueid"] for line in lines] == ["u2", "u3", "u4"]
    result = runner.invoke(app, [*base, "log", "--campaign", "A", "--result", "blocked"])
    assert result.exit_code == 0 and "no attempts match" in result.output
    result = runner.invoke(app, [*base, "log", "--result", "nope"])
    assert result.exit_code == EXIT_INVALID and "--result must be one of" in result.output
    result = runner.invoke(app, [*base, "log", "-n", "5"])
    assert result.exit_code == 0 and result.output.count("+3361234010") == 5

    for fmt in ("csv", "html", "json", "table"):
        out = tmp_path / f"report.{fmt}"
        result = runner.invoke(
            app, [*base, "report", "--days", "1", "--format", fmt, "-o", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 200
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert {(r["key"], r["value"]) for r in rows if r["section"] == "total"} >= {("ALLOWED", "5")}
    result = runner.invoke(app, [*base, "report", "--days", "2", "--since", "2027-01-01"])
    assert result.exit_code == EXIT_INVALID


def test_outputs_escape_what_users_and_callers_typed() -> None:
    report = sample_report(days=2, lists=["<script>alert(1)</script>", "=cmd|' /C calc'!A0"])
    page = report_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    text = report_csv(report)
    assert "'=cmd|" in text
    assert csv_cell("+33123456789") == "+33123456789" and csv_cell("+33*") == "+33*"
    assert csv_cell("-5") == "-5" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+cmd") == "'+cmd"
    assert "[bold]" in report_text(sample_report(days=1, lists=["[bold]x"]))


# -- HTML in a real browser ------------------------------------------------------------------


def sample_report(days: int = 14, lists: list[str] | None = None) -> Report:
    """A report with some texture, for rendering (no Redis needed)."""
    start = date(2027, 3, 1)
    by_day = {}
    for i in range(days):
        counts = zero_counts()
        counts["ALLOWED"] = 300 + 37 * (i % 5)
        counts["BLOCKED"] = 40 + 11 * (i % 3)
        counts["LABELED"] = 15 + 5 * (i % 4)
        counts["UNSCREENED"] = 3 if i == 4 else 0
        counts["BLOCKED_UNAVAILABLE"] = 6 if i == 9 else 0
        by_day[(start + timedelta(days=i)).isoformat()] = counts
    totals = zero_counts()
    for counts in by_day.values():
        for k, v in counts.items():
            totals[k] += v
    names = lists or ["national-dnc", "campaign-a-optout", "spam-reports", "exceptions"]
    by_list = {"": {**zero_counts(), "ALLOWED": totals["ALLOWED"] - 50}}
    for i, name in enumerate(names):
        by_list[name] = {**zero_counts(), "BLOCKED": 100 - 20 * i, "LABELED": 10 * i}
    fate = NumberFate("+33612340001", Fate.LOST, 3, names[0], "+33612340001", 1.8e9, 1.79e9)
    return Report(
        since=start,
        until=start + timedelta(days=days - 1),
        timezone="Europe/Paris",
        campaign=None,
        generated_at=1.8e9,
        totals=totals,
        by_direction={"inbound": zero_counts(), "outbound": totals},
        by_day=by_day,
        by_list=by_list,
        by_campaign={"A": totals},
        top_blocked=(TopNumber("+33612340001", Result.BLOCKED, 12, (names[0],)),),
        lost=(fate,),
        never_contacted=(),
        listed_numbers=4,
        lost_count=1,
        never_contacted_count=3,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# Skipped on a developer machine without chromium; never in CI, which installs it.
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed"
)
@pytest.mark.timeout(120)
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html(sample_report()), encoding="utf-8")
    shot = tmp_path / "report.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    assert shot.exists()
    assert png_size(shot) == (1200, 1600)
    assert shot.stat().st_size > 30_000  # a blank page is a few kB


def test_top_blocked_names_the_lists_that_blocked_it_not_the_last_label_list(
    redis_url: str,
) -> None:
    """A number blocked outbound by blk2 and blk1, then labeled inbound by lab2: its
    top-blocked row names blk2 and blk1 (most calls first), its top-labeled row lab2 —
    not the last deciding list for both."""
    number = "+33699000001"

    async def fill() -> None:
        log = CallLog(LOG, LeanRedis.from_url(redis_url), own_client=True)
        log.start()
        for uid, list_name in (("b1", "blk2"), ("b2", "blk2"), ("b3", "blk1")):
            decision = Decision(Result.BLOCKED, number, list_name, number, "dnc")
            log.record(ScreenRequest(number, OUT, "", uid), decision, 0)
        unavailable = Decision(Result.BLOCKED, number, reason="screening unavailable", failed=True)
        log.record(ScreenRequest(number, OUT, "", "f1"), unavailable, 0)
        assert await log.flush()
        labeled = Decision(Result.LABELED, number, "lab2", "+336990*", "spam")
        log.record(ScreenRequest(number, IN, "", "l1"), labeled, 0)
        await log.stop()

    asyncio.run(fill())
    settings = make_settings(redis_url)
    today = DayClock("UTC").date_of(time.time())
    with Admin(settings) as admin:
        report = admin.run(build_report(admin.ctx.table, LOG, today, today))
    assert [(t.number, t.attempts, t.lists) for t in report.top_blocked] == [
        (number, 3, ("blk2", "blk1"))
    ]
    assert [(t.number, t.attempts, t.lists) for t in report.top_labeled] == [(number, 1, ("lab2",))]
