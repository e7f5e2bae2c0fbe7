"""The attempt log's shards: the move from the one-tag layout, and the reader over the
shards (against a real Redis)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import redis
from typer.testing import CliRunner

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.cli import app
from callscreen.cli.exits import EXIT_SCHEMA
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Result
from callscreen.gateway.attemptlog import CallLog
from callscreen.reports.report import LogQuery, Report, build_report, recent_attempts
from callscreen.schema.attempts import DayClock, LogSettings
from callscreen.schema.keys import (
    DAY_LISTED_BUCKETS,
    LOG_SHARDS,
    SCHEMA_VERSION,
    Keys,
    key_slot,
    log_shard,
    log_tag,
)
from callscreen.services.logshards import (
    count_unindexed_attempt_log,
    index_attempt_log,
    migrate_attempt_log,
    number_attempts,
    stream_id,
)
from tests.support.blocking import SyncAdmin as Admin

OUT, IN = Direction.OUTBOUND, Direction.INBOUND
KEYS = Keys("cs")
LOG = LogSettings(flush_interval_s=0.01, node="test-node")
OLD_LISTED_BUCKETS = 32  # the day-listed sets of the one-tag layout: number % 32


def make_settings(url: str) -> Settings:
    return Settings(_env_file=None, redis_url=url, default_region="FR")  # type: ignore[call-arg]


def test_log_tags_are_stable_and_spread_over_the_cluster_slots() -> None:
    tags = [log_tag("cs", s) for s in range(LOG_SHARDS)]
    assert tags[3] == "cs.log.3" and len(set(tags)) == LOG_SHARDS
    for shard, tag in enumerate(tags):
        assert key_slot("{" + tag + "}:anything") * LOG_SHARDS // 16384 == shard
    assert key_slot("{cs}:meta") == key_slot("{cs}:lists")  # the lists stay together
    assert key_slot("foo") == 12182 and key_slot("{user1000}.following") == 3443  # Redis docs
    step = DAY_LISTED_BUCKETS
    assert {log_shard(n) for n in range(0, step * LOG_SHARDS, step)} == set(range(LOG_SHARDS))


async def fill(url: str, settings: Settings) -> None:
    """Calls over two days: blocked, labeled and allowed numbers in two campaigns."""
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.create_list("spam", Action.LABEL)
        admin.add("dnc", [f"+336123400{i:02d}" for i in range(0, 40, 2)], reason="opt-out")
        admin.add("spam", ["+33612349999"], reason="reported")
    log = CallLog(LOG, LeanRedis.from_url(url), own_client=True)
    now = time.time()
    ticks = iter(now - 86400 + i for i in range(10_000))
    log.clock = lambda: next(ticks)
    log.start()
    for i in range(40):
        number = f"+336123400{i:02d}"
        campaign = "A" if i % 3 else "B"
        if i % 2:
            decision = Decision(Result.ALLOWED, number=number)
        else:
            decision = Decision(Result.BLOCKED, number=number, list_name="dnc", match=number)
        log.record(ScreenRequest(number, OUT, campaign, f"u{i}"), decision, 0)
    assert await log.flush()
    ticks = iter(now + i for i in range(10_000))
    for i in range(40):
        number = f"+336123400{i:02d}"
        decision = Decision(Result.ALLOWED, number=number)
        if i % 2 == 0:
            decision = Decision(Result.BLOCKED, number=number, list_name="dnc", match=number)
        log.record(ScreenRequest(number, IN, "", f"v{i}"), decision, 0)
    spam = Decision(Result.LABELED, number="+33612349999", list_name="spam", match="+33612349999")
    log.record(ScreenRequest("+33612349999", IN, "", "w0"), spam, 0)
    log.record(ScreenRequest("anonymous", IN, "", "w1"), Decision(Result.ALLOWED), 0)
    await log.stop()


def to_old_layout(r: redis.Redis) -> None:
    """Rewrite the shards as the one-tag layout kept them (what a gateway before the
    shards wrote): one stream, one counter hash a day, sets by number % 32, ``{cs}:fc:B``."""
    old = KEYS.base
    entries = []
    for name in KEYS.attempt_logs():
        entries += r.xrange(name)  # type: ignore[operator]
        r.delete(name)
    entries.sort(key=lambda item: stream_id(item[0]))
    last = (0, 0)
    for entry_id, data in entries:
        ms, seq = max(stream_id(entry_id), (last[0], last[1] + 1))  # shards' ids may tie
        last = (ms, seq)
        r.xadd(f"{old}:log", data, id=f"{ms}-{seq}")
    for name in list(r.scan_iter(match="{cs.log.*")):
        rest = name[name.index("}:") + 2 :]
        parts = rest.split(":")
        if parts[:2] == ["log", "c"]:
            for field, value in r.hgetall(name).items():  # type: ignore[union-attr]
                r.hincrby(f"{old}:log:c:{parts[2]}", field, int(value))
        elif parts[:2] in (["log", "b"], ["log", "l"]):
            for member, score in r.zrange(name, 0, -1, withscores=True):  # type: ignore[union-attr]
                bucket = int(member) % OLD_LISTED_BUCKETS
                key = f"{old}:log:{parts[1]}:{parts[2]}:{':'.join(parts[3:-1])}:{bucket}"
                r.zincrby(key, score, member)
                r.expire(key, 400 * 86400)
        elif parts[:2] == ["log", "d"] or parts[0] == "fc":
            r.hset(f"{old}:{rest}", mapping=r.hgetall(name))  # type: ignore[arg-type]
        elif parts[:2] == ["log", "w"]:
            r.set(f"{old}:{rest}", "1", ex=3600)
        r.delete(name)


def report_of(settings: Settings) -> Report:
    with Admin(settings) as admin:
        today = DayClock("UTC").date_of(time.time())
        return admin.run(
            build_report(
                admin.ctx.table, LOG, today - timedelta(days=1), today, now=0, max_numbers=0
            )
        )


def comparable(report: Report) -> dict[str, object]:
    data = report.to_json()
    data.pop("generated_at", None)
    return data


async def test_migration_moves_every_old_key_and_the_reports_read_the_same(
    redis_url: str, r: redis.Redis
) -> None:
    settings = make_settings(redis_url)
    await fill(redis_url, settings)
    before = comparable(report_of(settings))
    assert before["totals"]["BLOCKED"] == 40 and before["never_contacted_count"] == 21  # type: ignore[index]
    with Admin(settings) as admin:
        records, _ = admin.run(recent_attempts(admin.ctx.table, LogQuery(), limit=1000))
    assert len(records) == 82

    to_old_layout(r)
    assert r.keys("{cs.log.*") == []
    assert r.xlen("{cs}:log") == 82 and r.keys("{cs}:fc:*") and r.keys("{cs}:log:b:*")
    assert comparable(report_of(settings))["totals"]["BLOCKED"] == 0  # not read any more

    with Admin(settings) as admin:
        done = migrate_attempt_log(admin.table.r, KEYS)
        index_attempt_log(admin.table.r, KEYS, 0)  # then version 4's step, as migrate does
    assert done.records == 82 and done.counter_days == 2 and done.dropped_keys == 1
    assert done.listed_sets > 0 and done.mark_hashes > 0 and done.decider_hashes > 0
    assert [k for k in r.keys("{cs}:*") if ":log" in k or ":fc:" in k] == []
    assert r.hget("{cs}:meta", "log_shards") == str(LOG_SHARDS)
    assert comparable(report_of(settings)) == before
    with Admin(settings) as admin:
        again, _ = admin.run(recent_attempts(admin.ctx.table, LogQuery(), limit=1000))
    assert [rec.uniqueid for rec in again] == [rec.uniqueid for rec in records]
    # every record in its number's shard, ids kept; blocked and labeled ones in the
    # stream kept by age
    for rec in again:
        digits = rec.number[1:]
        shard = log_shard(digits) if digits else 0
        kept = rec.result in (Result.BLOCKED, Result.LABELED)
        stream = KEYS.kept_log(shard) if kept else KEYS.attempt_log(shard)
        assert r.xrange(stream, rec.id, rec.id)

    with Admin(settings) as admin:  # again: nothing left to move, nothing counted twice
        assert migrate_attempt_log(admin.table.r, KEYS).to_json() == dict.fromkeys(
            done.to_json(), 0
        )
    assert comparable(report_of(settings)) == before


async def test_migration_after_new_writes_keeps_counts_and_earliest_marks(
    redis_url: str, r: redis.Redis
) -> None:
    settings = make_settings(redis_url)
    await fill(redis_url, settings)
    before = comparable(report_of(settings))
    to_old_layout(r)
    # a gateway of the new layout wrote before the migration ran: one more allowed call
    log = CallLog(LOG, LeanRedis.from_url(redis_url), own_client=True)
    log.start()
    number = "+33612340001"
    log.record(ScreenRequest(number, OUT, "A", "late"), Decision(Result.ALLOWED, number), 0)
    await log.stop()
    with Admin(settings) as admin:
        migrate_attempt_log(admin.table.r, KEYS)
        records, _ = admin.run(recent_attempts(admin.ctx.table, LogQuery(), limit=1000))
    after = comparable(report_of(settings))
    assert after["totals"]["ALLOWED"] == before["totals"]["ALLOWED"] + 1  # type: ignore[index]
    assert after["lost_count"] == before["lost_count"]  # the old, earlier marks were kept
    assert len(records) == 83 and "late" in {rec.uniqueid for rec in records}


def test_callscreen_migrate_moves_the_log_of_schema_version_1(
    redis_url: str, r: redis.Redis
) -> None:
    """Data of schema version 1 (the one-tag log): every command refuses it until
    ``callscreen migrate``, whose step 2 is :func:`migrate_attempt_log`; ``--dry-run``
    counts what it would move and writes nothing."""
    settings = make_settings(redis_url)
    asyncio.run(fill(redis_url, settings))  # the CLI below runs its own event loop
    before = comparable(report_of(settings))
    to_old_layout(r)
    r.hset("{cs}:meta", "schema", "1")
    env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}

    def cli(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result.output

    assert "callscreen migrate" in cli("lists", "ls", code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json"))
    assert dry["stored_version"] == 1 and dry["version"] == int(SCHEMA_VERSION)
    assert "82 log records" in dry["steps"][0] and r.xlen("{cs}:log") == 82
    assert r.hget("{cs}:meta", "schema") == "1" and r.keys("{cs.log.*") == []

    done = json.loads(cli("migrate", "--json", "--by", "ops"))
    assert "82 records" in done["steps"][0] and "2 counter days" in done["steps"][0]
    assert r.hget("{cs}:meta", "schema") == SCHEMA_VERSION
    # then step 4: blocked and labeled records kept by age, every number indexed
    assert done["steps"][2].endswith("0 moved, 81 indexed, 41 numbers")  # step 2 sorted them
    assert r.hget("{cs}:meta", "log_shards") == str(LOG_SHARDS)
    assert [k for k in r.keys("{cs}:*") if ":log" in k or ":fc:" in k] == []
    assert comparable(report_of(settings)) == before
    assert json.loads(cli("migrate", "--json"))["steps"] == []  # up to date: nothing again
    cli("lists", "ls")


def number_uniqueids(settings: Settings, digits: str) -> tuple[list[str], dict[str, int]]:
    with Admin(settings) as admin:
        found = admin.run(number_attempts(admin.ctx.table, digits, 100, totals=True))
    return [rec.uniqueid for rec in found.records], {k.value: n for k, n in found.totals.items()}


def to_version_2(r: redis.Redis) -> None:
    """Rewrite the shards as version 2 kept them: one stream a shard, no index."""
    for shard in range(LOG_SHARDS):
        old, kept = KEYS.attempt_log(shard), KEYS.kept_log(shard)
        entries = list(r.xrange(old)) + list(r.xrange(kept))  # type: ignore[arg-type]
        entries.sort(key=lambda item: stream_id(item[0]))
        r.delete(old, kept)
        last = (0, 0)
        for entry_id, data in entries:
            ms, seq = max(stream_id(entry_id), (last[0], last[1] + 1))  # streams' ids may tie
            last = (ms, seq)
            r.xadd(old, data, id=f"{ms}-{seq}")
    for pattern in ("{cs.log.*}:log:n:*", "{cs.log.*}:log:nk:*"):
        for name in list(r.scan_iter(match=pattern)):
            r.delete(name)


async def test_version_3_keeps_blocked_records_apart_and_indexes_each_number(
    redis_url: str, r: redis.Redis
) -> None:
    settings = make_settings(redis_url)
    await fill(redis_url, settings)
    numbers = [f"336123400{i:02d}" for i in range(40)] + ["33612349999"]
    before = {digits: number_uniqueids(settings, digits) for digits in numbers}
    assert before["33612340000"] == (["v0", "u0"], {"BLOCKED": 2})
    assert before["33612340001"] == (["v1", "u1"], {"ALLOWED": 2})
    kept = sum(int(r.xlen(KEYS.kept_log(s))) for s in range(LOG_SHARDS))
    assert kept == 41  # 20 numbers blocked twice, one labeled

    to_version_2(r)
    assert r.keys("{cs.log.*}:log:k") == [] and r.keys("{cs.log.*}:log:n*") == []
    assert number_uniqueids(settings, "33612340000") == ([], {})
    with Admin(settings) as admin:
        assert count_unindexed_attempt_log(admin.table.r, KEYS) == (41, 81)
        done = index_attempt_log(admin.table.r, KEYS, 30)
    assert done.to_json() == {"moved": 41, "indexed": 81, "numbers": 41}
    assert sum(int(r.xlen(KEYS.kept_log(s))) for s in range(LOG_SHARDS)) == 41
    assert {digits: number_uniqueids(settings, digits) for digits in numbers} == before
    index = KEYS.kept_index(33612340000)
    assert 29 * 86400 < r.ttl(index) <= 30 * 86400
    with Admin(settings) as admin:  # again: nothing to move, the same indexes
        assert index_attempt_log(admin.table.r, KEYS, 30).to_json() == {
            "moved": 0,
            "indexed": 81,
            "numbers": 41,
        }
    assert {digits: number_uniqueids(settings, digits) for digits in numbers} == before
