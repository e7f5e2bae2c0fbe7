"""The attempt log writer against a real Redis: records, counters, marks, retention,
exactly-once batches, and what happens when Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.core.config import FailPolicy, Settings
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction, Result
from callscreen.gateway.attemptlog import CallLog, LoggedScreener, _Overflow
from callscreen.schema.attempts import (
    DROPPED_FIELD,
    AttemptRecord,
    DayClock,
    LogSettings,
    Outcome,
    clean,
    counter_field,
    decider_location,
    decider_value,
    first_contact_location,
    listed_location,
    outcome_of,
    parse_counter_field,
    parse_decider,
)
from callscreen.schema.keys import DAY_LISTED_BUCKETS, LOG_SHARDS, Keys, key_slot, log_shard
from callscreen.services.logshards import stream_id
from tests.support.polling import until_async
from tests.support.redisproc import RedisProcess

IN, OUT = Direction.INBOUND, Direction.OUTBOUND
KEYS = Keys("cs")


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"redis_url": url, "default_region": "FR", "deadline_ms": 5_000}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def make_log(url: str, **options: object) -> CallLog:
    values: dict[str, object] = {"flush_interval_s": 0.01, "node": "test-node"}
    values.update(options)
    settings = LogSettings(**values)  # type: ignore[arg-type]
    client = LeanRedis.from_url(url, command_timeout=2.0, reconnect_backoff=0.05)
    return CallLog(settings, client, own_client=True)


@pytest.fixture
async def calllog(redis_url: str) -> AsyncIterator[CallLog]:
    log = make_log(redis_url)
    log.start()
    yield log
    await log.stop()


def blocked(number: str, list_name: str = "dnc", match: str = "") -> Decision:
    return Decision(Result.BLOCKED, number=number, list_name=list_name, match=match or number)


def allowed(number: str) -> Decision:
    return Decision(Result.ALLOWED, number=number)


def today() -> str:
    return DayClock("UTC").day(time.time())


def counters(r: redis.Redis, day: str | None = None) -> dict[str, int]:
    """A day's counters, summed over the log's shards."""
    total: Counter[str] = Counter()
    for shard in range(LOG_SHARDS):
        raw = r.hgetall(KEYS.day_counters(day or today(), shard))
        total.update({k: int(v) for k, v in raw.items()})  # type: ignore[union-attr]
    return dict(total)


def stream(r: redis.Redis) -> list[AttemptRecord]:
    """Every shard's records, by time (then stream id)."""
    recs = [
        AttemptRecord.unpack(entry_id, data["v1"])
        for name in KEYS.attempt_logs()
        for entry_id, data in r.xrange(name)  # type: ignore[union-attr]
    ]
    return sorted(recs, key=lambda rec: (rec.time, stream_id(rec.id)))


def xlen(r: redis.Redis) -> int:
    return sum(int(r.xlen(name)) for name in KEYS.attempt_logs())


def bounded_len(r: redis.Redis) -> int:
    """Records in the count-bounded streams (allowed and unscreened calls)."""
    return sum(int(r.xlen(KEYS.attempt_log(s))) for s in range(LOG_SHARDS))


def kept_len(r: redis.Redis) -> int:
    """Records in the streams kept by age only (blocked and labeled calls)."""
    return sum(int(r.xlen(KEYS.kept_log(s))) for s in range(LOG_SHARDS))


# -- pure parts ------------------------------------------------------------------------------


def test_clean_drops_control_and_format_characters_and_bounds_length() -> None:
    assert clean("Alice", 80) == "Alice"
    assert clean("Al\x00i\tce\r\n\u202e\u2028", 80) == "Alice"
    assert clean("\ud800bad", 80) == "bad"  # a lone surrogate could not be sent to Redis
    assert clean("x" * 200, 80) == "x" * 80
    assert clean("Zoë Ñ 电话", 80) == "Zoë Ñ 电话"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded machine
@given(
    number=st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True) | st.just(""),
    campaign=st.text(max_size=30),
    reason=st.text(max_size=50),
    name=st.text(max_size=100),
    uniqueid=st.text(max_size=30),
    result=st.sampled_from(list(Result)),
    failed=st.booleans(),
    direction=st.sampled_from([IN, OUT]),
    prefix=st.booleans(),
)
def test_record_packs_and_unpacks_to_the_same_record(
    number: str,
    campaign: str,
    reason: str,
    name: str,
    uniqueid: str,
    result: Result,
    failed: bool,
    direction: Direction,
    prefix: bool,
) -> None:
    listed = result in (Result.BLOCKED, Result.LABELED) and number != ""
    match = (number[:3] + "*" if prefix else number) if listed else ""
    decision = Decision(
        result,
        number=number,
        list_name="dnc" if listed else "",
        match=match,
        reason=reason,
        failed=failed,
    )
    request = ScreenRequest(number or "anonymous", direction, campaign, uniqueid, name)
    rec = AttemptRecord.from_call(1_700_000_000.5, request, decision, 0.000321, "node-1")
    back = AttemptRecord.unpack("1-0", rec.pack())
    assert back == AttemptRecord(**_with_id(rec))  # type: ignore[arg-type]
    assert "\t" not in rec.callerid_name and "\n" not in rec.reason
    assert len(rec.callerid_name) <= 80 and len(rec.campaign) <= 200
    assert back.dialed == ("" if number else "anonymous")


def _with_id(rec: AttemptRecord) -> dict[str, object]:
    values = {name: getattr(rec, name) for name in AttemptRecord.__dataclass_fields__}
    values["id"] = "1-0"
    return values


def test_counter_fields_and_deciders_round_trip() -> None:
    field = counter_field(Outcome.UNAVAILABLE, OUT, "", "camp: A|B")
    assert parse_counter_field(field) == (Outcome.UNAVAILABLE, OUT, "", "camp: A|B")
    assert parse_counter_field(DROPPED_FIELD) is None
    value = decider_value("spam", "+3312345678", "+3312345678")
    assert value == "spam\t"  # an exact entry is not stored twice
    assert parse_decider(value, "+3312345678") == ("spam", "+3312345678")
    assert parse_decider(decider_value("d", "+33*", "+331"), "+331") == ("d", "+33*")
    assert outcome_of(Result.BLOCKED, True) is Outcome.UNAVAILABLE
    assert outcome_of(Result.BLOCKED, False) is Outcome.BLOCKED
    assert outcome_of(Result.UNSCREENED, True) is Outcome.UNSCREENED


def test_day_clock_uses_the_configured_timezone_across_dst() -> None:
    ny = DayClock("America/New_York")
    # 2027-03-14 02:00 local is the spring-forward day: 23 hours long
    start, end = ny.bounds(date(2027, 3, 14))
    assert end - start == 23 * 3600
    assert ny.day(start) == "20270314"
    assert ny.day(end - 0.001) == "20270314"
    assert ny.day(end) == "20270315"
    assert ny.day(start - 0.001) == "20270313"  # and back: the cache is not fooled
    utc = DayClock("UTC")
    assert utc.day(start) == "20270314"  # 05:00 UTC
    assert utc.day(start - 5 * 3600 - 0.001) == "20270313"


def test_log_settings_validate_and_default_from_settings() -> None:
    with pytest.raises(InvalidInput):
        LogSettings(timezone="Mars/Olympus")
    with pytest.raises(InvalidInput):
        LogSettings(queue_max=0)
    with pytest.raises(InvalidInput):
        LogSettings(max_records=-1)
    ls = LogSettings.from_settings(make_settings("redis://127.0.0.1:1/0", node_name="gw-2"))
    assert ls.enabled and ls.log_allowed and ls.timezone == "UTC"
    assert ls.node_name == "gw-2" and ls.key_tag == "cs"
    ls = LogSettings.from_settings(
        Settings(
            _env_file=None,
            key_tag="t",
            calllog_allowed=False,
            calllog_timezone="Europe/Paris",
            calllog_max_records=5000,
            calllog_max_age_days=2,
            calllog_flush_interval_ms=20,
        )
    )
    assert (ls.log_allowed, ls.timezone, ls.max_records, ls.key_tag) == (
        False,
        "Europe/Paris",
        5000,
        "t",
    )
    assert (ls.max_age_s, ls.flush_interval_s) == (2 * 86400, 0.02)
    assert ls.node_name  # the host name when node_name is empty


# -- the writer ------------------------------------------------------------------------------


async def test_every_call_is_counted_and_logged_with_its_details(
    calllog: CallLog, r: redis.Redis
) -> None:
    ticks = iter(time.time() + i / 100 for i in range(100))  # records in order across shards
    calllog.clock = lambda: next(ticks)
    calllog.record(
        ScreenRequest("+33123456789", IN, "spring", "1700000000.1", "Bob\x1b[31m"),
        Decision(Result.BLOCKED, "+33123456789", "dnc", "+33123456789", "asked us to stop\nplease"),
        0.00042,
    )
    calllog.record(ScreenRequest("0612345678", OUT, "spring"), allowed("+33612345678"), 0.0001)
    calllog.record(
        ScreenRequest("+33999000000:5060", IN),
        Decision(Result.LABELED, "+33999000000", "spam", "+339*", stripped=":5060"),
        0,
    )
    calllog.record(
        ScreenRequest("+33123", OUT, "autumn"),
        Decision(Result.UNSCREENED, reason="screening unavailable: timed out", failed=True),
        0.2,
    )
    calllog.record(
        ScreenRequest("+33124", OUT, "autumn"),
        Decision(Result.BLOCKED, reason="screening unavailable: timed out", failed=True),
        0.2,
    )
    assert await calllog.flush()
    recs = stream(r)
    assert [rec.result for rec in recs] == [
        Result.BLOCKED,
        Result.ALLOWED,
        Result.LABELED,
        Result.UNSCREENED,
        Result.BLOCKED,
    ]
    first = recs[0]
    assert (first.number, first.campaign, first.direction) == ("+33123456789", "spring", IN)
    assert (first.list_name, first.match) == ("dnc", "+33123456789")
    assert first.reason == "asked us to stopplease"
    assert first.callerid_name == "Bob[31m"  # the escape character is gone
    assert (first.uniqueid, first.node, first.elapsed_us) == ("1700000000.1", "test-node", 420)
    assert recs[2].match == "+339*"
    # text trailing an inbound caller ID's number was not screened: the caller ID is kept
    assert (recs[2].number, recs[2].dialed) == ("+33999000000", "+33999000000:5060")
    assert recs[1].dialed == ""
    request = ScreenRequest("+33999000000:5060", IN)
    decision = Decision(Result.LABELED, "+33999000000", "spam", "+339*", stripped=":5060")
    assert AttemptRecord.from_call(0, request, decision, 0, "n").dialed == "+33999000000:5060"
    assert recs[3].dialed == "+33123" and recs[3].number == "" and recs[3].failed
    assert recs[4].outcome is Outcome.UNAVAILABLE
    assert counters(r) == {
        "BLOCKED\tinbound\tdnc\tspring": 1,
        "ALLOWED\toutbound\t\tspring": 1,
        "LABELED\tinbound\tspam\t": 1,
        "UNSCREENED\toutbound\t\tautumn": 1,
        "BLOCKED_UNAVAILABLE\toutbound\t\tautumn": 1,
    }
    day = today()
    key, member = listed_location(KEYS, day, "spring", False, "33123456789")
    assert r.zrange(key, 0, -1, withscores=True) == [(member, 1.0)]
    key, member = listed_location(KEYS, day, "", True, "33999000000")
    assert r.zrange(key, 0, -1, withscores=True) == [(member, 1.0)]
    assert r.hget(*decider_location(KEYS, "33123456789")) == "dnc\t"
    assert r.hget(*decider_location(KEYS, "33999000000")) == "spam\t+339*"
    # failed blocks are not list blocks
    assert r.keys("*:log:b:*:autumn:*") == []
    assert calllog.stats().written == 5 and calllog.stats().dropped == 0
    # each number's data in its own shard's keys, none left under the lists' tag
    shard = log_shard("33123456789")
    assert r.xlen(KEYS.kept_log(shard)) >= 1  # blocked: the stream kept by age
    assert key.startswith(KEYS.log_base(log_shard("33999000000")))
    assert r.keys("{cs}:*") == []


async def test_a_batch_spreads_over_the_shards_each_in_one_slot(
    calllog: CallLog, r: redis.Redis
) -> None:
    numbers = [f"+3361234{i:04d}" for i in range(400)]
    for i, number in enumerate(numbers):
        decision = blocked(number) if i % 2 else allowed(number)
        calllog.record(ScreenRequest(number, OUT, "c"), decision, 0)
    assert await calllog.flush()
    lengths = [int(r.xlen(name)) for name in KEYS.attempt_logs()]
    assert sum(lengths) == 400 and min(lengths) > 0  # every shard got some
    for name in r.keys("*"):
        if name.startswith("{cs.log."):
            tag = name[1 : name.index("}")]
            shard = int(tag.split(".")[2])
            assert tag == KEYS.log_base(shard)[1:-1]
    for number in numbers:
        digits = number[1:]
        fc_key, _ = first_contact_location(KEYS, digits)
        assert fc_key.startswith(KEYS.log_base(log_shard(digits)))
    slots = sorted(key_slot(KEYS.attempt_log(s)) for s in range(LOG_SHARDS))
    # one shard in each sixteenth of Redis Cluster's slots
    assert [slot * LOG_SHARDS // 16384 for slot in slots] == list(range(LOG_SHARDS))


async def test_first_contact_mark_keeps_the_earliest_allowed_call(
    calllog: CallLog, r: redis.Redis
) -> None:
    now = time.time()
    times = iter([now, now - 100, now - 50, now + 10])
    calllog.clock = lambda: next(times, now)  # then the age bounds' clock
    for _ in range(2):
        calllog.record(ScreenRequest("+33123456789", OUT, "a"), allowed("+33123456789"), 0)
    assert await calllog.flush()
    calllog.record(ScreenRequest("+33123456789", OUT, "a"), allowed("+33123456789"), 0)
    calllog.record(ScreenRequest("+33123456788", OUT, "a"), blocked("+33123456788"), 0)
    assert await calllog.flush()
    hkey, hfield = first_contact_location(KEYS, "33123456789")
    assert int(r.hget(hkey, hfield)) == int((now - 100) * 1000)  # type: ignore[arg-type]
    hkey, hfield = first_contact_location(KEYS, "33123456788")
    assert r.hget(hkey, hfield) is None  # a blocked call is no contact


async def test_allowed_calls_can_be_left_out_of_the_log_but_are_still_counted(
    redis_url: str, r: redis.Redis
) -> None:
    log = make_log(redis_url, log_allowed=False)
    log.start()
    for i in range(10):
        log.record(ScreenRequest(f"+3312345670{i}", IN), allowed(f"+3312345670{i}"), 0)
    log.record(ScreenRequest("+33123456799", IN), blocked("+33123456799"), 0)
    await log.stop()
    assert [rec.result for rec in stream(r)] == [Result.BLOCKED]
    assert counters(r) == {"ALLOWED\tinbound\t\t": 10, "BLOCKED\tinbound\tdnc\t": 1}
    hkey, hfield = first_contact_location(KEYS, "33123456700")
    assert r.hget(hkey, hfield) is not None


async def test_a_batch_sent_twice_is_applied_once(calllog: CallLog, r: redis.Redis) -> None:
    items = [
        (time.time(), ScreenRequest("+33123456789", IN, "a"), blocked("+33123456789"), 0.0)
        for _ in range(3)
    ]
    batch = calllog._build(10_000, items, _Overflow())
    await calllog._apply(batch)
    await calllog._apply(batch)  # the reply was lost: the writer sends it again
    assert counters(r) == {"BLOCKED\tinbound\tdnc\ta": 3}
    assert xlen(r) == 3
    assert r.zscore(*listed_location(KEYS, today(), "a", False, "33123456789")) == 3


async def test_a_key_of_the_wrong_type_does_not_stop_the_batch(
    calllog: CallLog, r: redis.Redis
) -> None:
    r.set(listed_location(KEYS, today(), "a", False, "33123456789")[0], "someone else's string")
    calllog.record(ScreenRequest("+33123456789", IN, "a"), blocked("+33123456789"), 0)
    calllog.record(ScreenRequest("+33123456788", IN, "a"), allowed("+33123456788"), 0)
    assert await calllog.flush()
    assert counters(r) == {"BLOCKED\tinbound\tdnc\ta": 1, "ALLOWED\tinbound\t\ta": 1}
    assert xlen(r) == 2
    assert calllog.stats().refused == 1


async def test_retention_holds_under_load_and_counters_stay_exact(
    redis_url: str, r: redis.Redis
) -> None:
    bound = 1000
    log = make_log(redis_url, max_records=bound, batch_max=200)
    log.start()
    sent: Counter[str] = Counter()
    lengths = []

    async def caller(worker: int) -> None:
        for i in range(2500):
            number = f"+3361{worker:02d}{i:05d}"
            if i % 4 == 0:
                log.record(ScreenRequest(number, OUT, f"c{worker % 3}"), blocked(number), 0)
                sent["BLOCKED"] += 1
            else:
                log.record(ScreenRequest(number, OUT, f"c{worker % 3}"), allowed(number), 0)
                sent["ALLOWED"] += 1
            if i % 50 == 0:
                await asyncio.sleep(0)  # a yield: let the writer and the other callers run

    async def watcher() -> None:
        for _ in range(40):
            lengths.append(bounded_len(r))
            await asyncio.sleep(0.005)  # sampling the length during the load is the test

    await asyncio.gather(*(caller(w) for w in range(8)), watcher())
    assert await log.flush(30)
    await log.stop()
    lengths.append(bounded_len(r))
    # MAXLEN ~ drops whole stream nodes (stream-node-max-entries, 100 by default) of
    # each shard's stream, bound to bound / LOG_SHARDS
    assert max(lengths) < bound + 100 * LOG_SHARDS
    assert lengths[-1] >= bound
    totals: Counter[str] = Counter()
    for field, n in counters(r).items():
        totals[field.split("\t")[0]] += n
    assert totals == sent == Counter({"ALLOWED": 15000, "BLOCKED": 5000})
    # the records kept are the newest ones
    newest = stream(r)[-1]
    assert newest.number.startswith("+3361")
    # the blocked calls are evidence: every one kept, whatever the count bound
    assert kept_len(r) == 5000


async def test_blocked_and_labeled_records_are_kept_by_age_never_by_count(
    redis_url: str, r: redis.Redis
) -> None:
    """A small count bound trims allowed calls only: every blocked and labeled call
    stays, until it is older than blocked_days."""
    log = make_log(redis_url, max_records=LOG_SHARDS, blocked_days=10, batch_max=256)
    log.start()
    for i in range(4800):  # ~300 allowed records a shard: MAXLEN ~ drops whole nodes
        number = f"+3361400{i:04d}"
        log.record(ScreenRequest(number, OUT), allowed(number), 0)
        if i % 15 == 0:
            log.record(ScreenRequest(number, OUT), blocked(number), 0)
        if i % 24 == 0:
            labeled = Decision(Result.LABELED, number=number, list_name="lab", match=number)
            log.record(ScreenRequest(number, IN), labeled, 0)
    assert await log.flush()
    kept = [rec for rec in stream(r) if rec.result is not Result.ALLOWED]
    assert len(kept) == 320 + 200
    assert bounded_len(r) < 4800 - 1000  # allowed ones were trimmed by count
    real = time.time()
    log.clock = lambda: real + 11 * 86400  # eleven days later: past blocked_days
    for _ in range(LOG_SHARDS):  # each batch trims its shards and one more in turn
        log.record(ScreenRequest("+33614099999", OUT), allowed("+33614099999"), 0)
        assert await log.flush()
    await log.stop()
    assert kept_len(r) < 100  # whole nodes trimmed by age (the newest may stay)


async def test_age_retention_trims_old_records_and_keeps_counters(
    redis_url: str, r: redis.Redis
) -> None:
    log = make_log(redis_url, max_age_s=3600, batch_max=100)
    log.start()
    for i in range(500):
        log.record(ScreenRequest(f"+336120{i:05d}", OUT), allowed(f"+336120{i:05d}"), 0)
    assert await log.flush()
    assert xlen(r) == 500
    real = time.time()
    log.clock = lambda: real + 2 * 3600  # two hours later, every record is past the age
    for _ in range(LOG_SHARDS):  # each batch trims its shards and one more in turn
        log.record(ScreenRequest("+33612099999", OUT), allowed("+33612099999"), 0)
        assert await log.flush()
    await log.stop()
    assert xlen(r) < 100  # whole nodes trimmed (the newest may stay)
    days = {today(), DayClock("UTC").day(real + 2 * 3600)}
    assert sum(sum(counters(r, day).values()) for day in days) == 500 + LOG_SHARDS


async def test_blocked_numbers_of_a_day_are_compact_and_expire(
    redis_url: str, r: redis.Redis
) -> None:
    log = make_log(redis_url, blocked_days=30)
    log.start()
    numbers = 4000
    for i in range(numbers):
        for _ in range(i % 3 + 1):
            number = f"+336130{i:05d}"
            log.record(ScreenRequest(number, IN, "a"), blocked(number), 0)
    await log.stop()
    day = today()
    keys = [
        KEYS.day_listed(day, "a", False, bucket, shard)
        for bucket in range(DAY_LISTED_BUCKETS)
        for shard in range(LOG_SHARDS)
    ]
    assert sum(r.zcard(key) for key in keys) == numbers
    encodings = {r.object("encoding", key) for key in keys}
    assert encodings in ({"listpack"}, {"ziplist"})  # Redis 7 or 6: the compact one
    assert all(29 * 86400 < r.ttl(key) <= 30 * 86400 for key in keys)
    used = sum(r.memory_usage(key) or 0 for key in keys)  # type: ignore[misc]
    assert used / numbers < 20  # bytes a number a day and campaign
    assert r.zscore(*listed_location(KEYS, day, "a", False, "33613000005")) == 3
    assert sum(counters(r).values()) == sum(i % 3 + 1 for i in range(numbers))


async def test_counters_expire_only_when_configured(redis_url: str, r: redis.Redis) -> None:
    log = make_log(redis_url, counter_days=30)
    log.start()
    log.record(ScreenRequest("+33612345678", IN), allowed("+33612345678"), 0)
    await log.stop()
    shard = log_shard("33612345678")
    assert 29 * 86400 < r.ttl(KEYS.day_counters(today(), shard)) <= 30 * 86400
    r.flushall()
    log = make_log(redis_url)
    log.start()
    log.record(ScreenRequest("+33612345678", IN), allowed("+33612345678"), 0)
    await log.stop()
    assert r.ttl(KEYS.day_counters(today(), shard)) == -1


# -- Redis down ------------------------------------------------------------------------------


async def test_redis_down_queues_then_drops_and_counts_never_blocking(
    private_redis: RedisProcess,
) -> None:
    url = private_redis.url
    log = make_log(url, queue_max=300, batch_max=50)
    log.start()
    log.record(ScreenRequest("+33612345678", IN, "a"), allowed("+33612345678"), 0)
    assert await log.flush()
    private_redis.kill()

    calls = 1000
    for i in range(calls):  # record() is synchronous: it cannot wait for Redis
        number = f"+336140{i:05d}"
        decision = blocked(number) if i % 2 else allowed(number)
        log.record(ScreenRequest(number, IN, "a"), decision, 0)
    await until_async(lambda: log.stats().flush_failures >= 1, "the writer to try and fail")
    stats = log.stats()
    assert stats.flush_failures >= 1 and stats.last_error
    assert stats.dropped > 0
    assert stats.queued + stats.dropped == calls  # nothing silently lost
    assert stats.queued <= 300 + 50

    private_redis.start()  # same port, empty
    assert await log.flush(15)
    await log.stop()
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        c = counters(r)
        assert c.pop(DROPPED_FIELD) == stats.dropped
        # every call is counted, dropped ones included (their counters were kept)
        assert c == {"ALLOWED\tinbound\t\ta": 500, "BLOCKED\tinbound\tdnc\ta": 500}
        assert xlen(r) == calls - stats.dropped
        hkey, hfield = first_contact_location(KEYS, "336140" + "00998")
        assert r.hget(hkey, hfield) is not None  # marks of dropped calls were kept too
    finally:
        r.close()


async def test_stop_with_redis_down_gives_up_in_time_and_counts_what_is_left(
    private_redis: RedisProcess,
) -> None:
    log = make_log(private_redis.url)
    log.start()
    private_redis.kill()
    for i in range(20):
        log.record(ScreenRequest(f"+336150{i:05d}", IN), allowed(f"+336150{i:05d}"), 0)
    await asyncio.wait_for(log.stop(timeout=0.5), 5)  # gives up rather than hang
    assert log.stats().dropped == 20


# -- wiring ----------------------------------------------------------------------------------


async def test_logged_screener_records_screened_and_fail_policy_decisions(
    redis_url: str, r: redis.Redis
) -> None:
    screener = Screener.from_settings(make_settings(redis_url, fail_policy=FailPolicy.CLOSED))
    log = make_log(redis_url)
    ticks = iter(time.time() + i / 100 for i in range(100))
    log.clock = lambda: next(ticks)
    log.start()
    logged = LoggedScreener(screener, log)
    decision = await logged.screen(ScreenRequest("+33612345678", OUT, "a", "u1", "Al"))
    assert decision.result is Result.ALLOWED
    failed = logged.fail_decision(ScreenRequest("+33612345679", OUT, "a", "u2"), "overloaded")
    assert failed.failed
    await log.stop()
    await logged.close()
    recs = stream(r)
    assert [(rec.uniqueid, rec.outcome) for rec in recs] == [
        ("u1", Outcome.ALLOWED),
        ("u2", Outcome.UNAVAILABLE),
    ]
    assert recs[0].elapsed_us > 0


def test_the_batch_encoder_is_pure() -> None:
    """The script arguments of a batch, without Redis: records, then the aggregated
    counter, blocked-number, decider and first-contact commands."""
    from callscreen.gateway.attemptlog import encode_batch

    log_settings = LogSettings(max_records=500, max_age_s=3600, counter_days=30, node="n1")
    keys = Keys()
    at = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    blocked = Decision(Result.BLOCKED, number="+33612345678", list_name="dnc", match="+3361*")
    allowed = Decision(Result.ALLOWED, number="+33698765432")
    items = [
        (at, ScreenRequest("+33612345678", Direction.OUTBOUND, "A", "u1"), blocked, 0.001),
        (at + 1, ScreenRequest("+33612345678", Direction.OUTBOUND, "A", "u2"), blocked, 0.001),
        (at + 2, ScreenRequest("+33698765432", Direction.INBOUND, "", "u3"), allowed, 0.001),
    ]
    by_shard, calls = encode_batch(
        log_settings, keys, DayClock("UTC"), "n1", at + 7200, 5, items, _Overflow()
    )
    assert calls == 3
    blocked_shard, allowed_shard = log_shard("33612345678"), log_shard("33698765432")
    # each number's records and commands go to its own shard; the age bound rides along
    # on the batch's round-robin shard (5) even with nothing else to do there
    assert set(by_shard) == {blocked_shard, allowed_shard, 5}
    min_id = f"{int((at + 7200 - 3600) * 1000)}-0"
    per_shard = -(-500 // LOG_SHARDS)
    commands: list[list[str | int]] = []
    records: list[str | int] = []
    kept_min_id = f"{int((at + 7200 - 1830 * 86400) * 1000)}-0"
    kinds: list[str | int] = []
    indexed: list[str | int] = []
    for shard, args in by_shard.items():
        count = int(args[0])
        assert args[1:4] == [per_shard, min_id, kept_min_id]
        assert args[4:7] == [keys.log_base(shard), 1830 * 86400, 3600]
        kinds += args[7 : 7 + 3 * count : 3]
        indexed += args[8 : 7 + 3 * count : 3]
        records += args[9 : 7 + 3 * count : 3]
        rest = args[7 + 3 * count :]
        while rest:
            n = int(rest[0])
            commands.append(rest[1 : n + 1])
            rest = rest[n + 1 :]
    assert len(records) == 3 and all(isinstance(r, str) for r in records)
    assert sum("33612345678" in str(r) for r in records) == 2
    # blocked records go to the stream kept by age (B), allowed ones to the bounded one
    # (A); each to its number's attempt index
    assert sorted(kinds) == ["A", "B", "B"]
    assert sorted(indexed) == ["33612345678", "33612345678", "33698765432"]
    day = "20270115"
    counted = {c[2]: c[3] for c in commands if c[0] == "HINCRBY"}
    assert counted == {"BLOCKED\toutbound\tdnc\tA": 2, "ALLOWED\tinbound\t\t": 1}
    assert ["EXPIRE", keys.day_counters(day, blocked_shard), 30 * 86400] in commands
    [zincr] = [c for c in commands if c[0] == "ZINCRBY"]
    assert zincr[2:] == [2, "33612345678"]
    assert zincr[1].startswith(keys.log_base(blocked_shard) + ":log:b:" + day)
    # the decider of the blocked number, the first contact of the allowed one
    assert sorted(c[0] for c in commands if c[0] in ("HSET", "HSETNX")) == ["HSET", "HSETNX"]


async def test_each_number_has_an_attempt_index_trimmed_with_its_records(
    redis_url: str, r: redis.Redis
) -> None:
    """A number's attempts are read from its index (newest first, with totals by
    outcome), whose entries go with their records: the count bound trims the allowed
    ones, the blocked one stays; the index expires with its longest-lived record."""
    from callscreen.reports.report import LogQuery, recent_attempts
    from callscreen.services.logshards import number_attempts
    from tests.support.blocking import SyncAdmin

    log = make_log(redis_url, max_records=LOG_SHARDS, blocked_days=30, batch_max=50)
    log.start()
    number, digits = "+33615000001", "33615000001"
    log.record(ScreenRequest(number, OUT, "", "first"), blocked(number), 0)
    for i in range(600):
        log.record(ScreenRequest(number, OUT, "", f"a{i}"), allowed(number), 0)
    failed = Decision(Result.BLOCKED, number=number, reason="screening unavailable", failed=True)
    later = time.time() + 1
    log.clock = lambda: later
    log.record(ScreenRequest(number, IN, "", "last"), failed, 0)
    other = "+33615000033"  # another number of the same shard
    assert log_shard(other[1:]) == log_shard(digits)
    log.record(ScreenRequest(other, OUT, "", "other"), allowed(other), 0)
    assert await log.flush()
    await log.stop()

    index, kept = KEYS.attempt_index(int(digits)), KEYS.kept_index(int(digits))
    shard = log_shard(digits)
    in_stream = sum(
        1 for _, data in r.xrange(KEYS.attempt_log(shard)) if data["v1"].split("\t")[2] == number
    )
    assert 1 <= in_stream < 300  # the count bound trimmed whole nodes
    # the trimmed allowed records left the index; the evidence is in the kept one
    assert len(r.lrange(index, 0, -1)) == in_stream
    assert [e[0] for e in r.lrange(kept, 0, -1)] == ["F", "B"]  # newest first
    assert 29 * 86400 < r.ttl(kept) <= 30 * 86400
    # the allowed calls' stream is full: its index expires with twice its span, a day
    assert 86400 <= r.ttl(index) <= 86400 + 60
    assert 86400 <= r.ttl(KEYS.attempt_index(int(other[1:]))) <= 86400 + 60

    settings = make_settings(redis_url)
    with SyncAdmin(settings) as admin:
        found = admin.run(number_attempts(admin.ctx.table, digits, 5, totals=True))
        assert [rec.uniqueid for rec in found.records] == ["last", "a599", "a598", "a597", "a596"]
        assert found.more and found.totals == {
            Outcome.UNAVAILABLE: 1,
            Outcome.ALLOWED: in_stream,
            Outcome.BLOCKED: 1,
        }
        query = LogQuery(number=number, outcome=Outcome.BLOCKED)
        recs, _ = admin.run(recent_attempts(admin.ctx.table, query, 10))
        assert [rec.uniqueid for rec in recs] == ["first", "last"]  # oldest first
        # `log --number` reads the indexes, not the streams: without them, nothing
        r.delete(index, kept)
        recs, _ = admin.run(recent_attempts(admin.ctx.table, query, 10))
        assert recs == []
