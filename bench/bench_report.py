"""Report benchmark: the time of ``callscreen report`` over 10,000,000 logged attempts,
and the attempt-log writer's own cost.

    python bench/bench_report.py                      # 10M attempts, 30 days (the target)
    python bench/bench_report.py --records 1000000    # smaller
    python bench/bench_report.py --blacklisted 500000 # more distinct blocked numbers

Starts its own redis-server (as the tests do) and loads, with pipelined writes and
the encodings of :mod:`callscreen.gateway.attemptlog`, what the writer would have left after
``--records`` screened calls over ``--days`` days:

- the day counters (campaign x list x direction x outcome), exact; calls are 12 %
  blocked, 6 % labeled, 1.5 % unscreened, 0.5 % fail-closed, the rest allowed;
- the day blocked-number sets, built by drawing each blocked/labeled attempt's number
  from ``--blacklisted`` numbers (a skewed draw: some are called often), so the sets'
  scores add up to the counters;
- lists and their entries for those numbers (one batch record per list, created
  before the series ends), and first-contact marks for ``--contacted`` numbers, some
  of the blacklisted ones among them, contacted before or after their blacklisting;
- the stream, at its retention bound (``--stream``, 1M by default) — the report does
  not read it, it is there for memory figures.

Then it times :func:`callscreen.reports.report.build_report` (best of ``--repeat``) for all
campaigns and for one, checks the report's total against the calls loaded and its
lost/never-contacted counts against the ones generated, and prints the figures.

Last, it pushes ``--writer-records`` decisions through a real
:class:`~callscreen.gateway.attemptlog.CallLog` and reports the writer's throughput and its CPU
per record (the gateway's share of the logging cost; the gateway's sessions/s with
logging on and off is measured by the gateway benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from tests.redisproc import RedisProcess  # noqa: E402

from callscreen.callpath.decision import Decision, ScreenRequest  # noqa: E402
from callscreen.callpath.leanredis import LeanRedis  # noqa: E402
from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Direction, EntryRecord, Result, Status  # noqa: E402
from callscreen.gateway.attemptlog import CallLog  # noqa: E402
from callscreen.reports.report import build_report  # noqa: E402
from callscreen.schema.attempts import (  # noqa: E402
    STREAM_FIELD,
    DayClock,
    LogSettings,
    Outcome,
    counter_field,
    day_key,
    decider_location,
    decider_value,
    first_contact_location,
    listed_location,
    pack_fields,
)
from callscreen.schema.keys import bucket_of, log_shard  # noqa: E402
from callscreen.services.table import Table  # noqa: E402

# share of calls by outcome (the rest, after these, is ALLOWED)
SHARES = {
    Outcome.BLOCKED: 0.12,
    Outcome.LABELED: 0.06,
    Outcome.UNSCREENED: 0.015,
    Outcome.UNAVAILABLE: 0.005,
}
BLOCK_LISTS = ["national-dnc", "internal-dnc", "litigators", "opt-out-sms", "fraud"]
LABEL_LISTS = ["spam-reports", "robocallers", "suspicious"]
ALLOW_LISTS = ["exceptions"]


def mobile(n: int) -> str:
    """The n-th of 80M distinct valid French mobiles, scrambled."""
    k = (n * 7919 + 12345) % 80_000_000
    return f"+336{10 + k // 1_000_000:02d}{k % 1_000_000:06d}"


def split(total: int, weights: list[float]) -> list[int]:
    """``total`` split in proportion to ``weights``, exactly (largest remainders)."""
    raw = [total * w / sum(weights) for w in weights]
    parts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[
        : total - sum(parts)
    ]:
        parts[i] += 1
    return parts


class Loader:
    def __init__(self, r: redis.Redis, table: Table, args: argparse.Namespace) -> None:
        self.r = r
        self.table = table
        self.keys = table.keys
        self.args = args
        self.rng = random.Random(7)
        self.clock = DayClock("UTC")
        self.today = self.clock.date_of(time.time())
        self.days = [self.today - timedelta(days=i) for i in range(args.days - 1, -1, -1)]
        self.campaigns = [f"campaign-{i:02d}" for i in range(args.campaigns)]
        self.lost: set[int] = set()  # blacklisted numbers contacted before it
        self.drawn: set[int] = set()  # blacklisted numbers called in the series
        self.blacklisted: list[str] = []
        self.entry_of: dict[str, tuple[str, bool]] = {}  # number -> (list, label?)

    def pipe(self) -> Any:
        return self.r.pipeline(transaction=False)

    def lists(self) -> None:
        """Lists, a batch each, and the blacklisted numbers as their entries."""
        buckets = self.table.buckets
        args = self.args
        self.blacklisted = [mobile(50_000_000 + i) for i in range(args.blacklisted)]
        names = BLOCK_LISTS + LABEL_LISTS
        infos = {}
        for name in names:
            action = Action.BLOCK if name in BLOCK_LISTS else Action.LABEL
            infos[name] = self.table.create_list(name, action, Direction.BOTH)
        for name in ALLOW_LISTS:
            self.table.create_list(name, Action.ALLOW, Direction.BOTH)
        batch = {name: self.table.new_batch("add", f"bench {name}", "bench") for name in names}
        self.batch_at = min(b.at for b in batch.values())
        pipe = self.pipe()
        per_key: dict[str, dict[str, str]] = {}
        deciders: dict[str, dict[str, str]] = {}
        for i, number in enumerate(self.blacklisted):
            name = names[i % len(names)]
            self.entry_of[number] = (name, name in LABEL_LISTS)
            dkey, dfield = decider_location(self.keys, number[1:])
            deciders.setdefault(dkey, {})[dfield] = decider_value(name, number, number)
            bucket, field = bucket_of(int(number[1:]), buckets)
            record = EntryRecord(Status.ACTIVE, batch[name].id).encode()
            per_key.setdefault(self.keys.exact(infos[name].id, bucket), {})[str(field)] = record
        for n, (key, mapping) in enumerate([*per_key.items(), *deciders.items()]):
            pipe.hset(key, mapping=mapping)
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def marks(self) -> None:
        """First contacts: ``--contacted`` ordinary numbers, and 40 % of the blacklisted
        ones (of which three in four before their blacklisting)."""
        args = self.args
        start = time.time() - args.days * 86400
        marks: dict[str, int] = {}
        for i in range(args.contacted):
            marks[mobile(i)[1:]] = int((start + self.rng.random() * args.days * 86400) * 1000)
        for i, number in enumerate(self.blacklisted):
            if i % 5 < 2:
                before = i % 20 < 6  # 6 in 20 of all: three quarters of the 8 in 20 contacted
                at = self.batch_at - 3600 if before else self.batch_at + 1
                marks[number[1:]] = int(at * 1000)
                if before:
                    self.lost.add(i)
        per_key: dict[str, dict[str, int]] = {}
        for digits, ms in marks.items():
            key, field = first_contact_location(self.keys, digits)
            per_key.setdefault(key, {})[field] = ms
        pipe = self.pipe()
        for n, (key, mapping) in enumerate(per_key.items()):
            pipe.hset(key, mapping=mapping)
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def counters_and_sets(self) -> tuple[int, int]:
        """Day counters and blocked-number sets for ``--records`` calls; returns the calls
        loaded and the members written to the sets."""
        args = self.args
        weights = [1.0 / (k + 1) ** 0.8 for k in range(len(self.blacklisted))]  # skewed
        by_label = {False: [], True: []}  # type: dict[bool, list[int]]
        for k, number in enumerate(self.blacklisted):
            by_label[self.entry_of[number][1]].append(k)
        cum = {flag: _cumulative([weights[k] for k in ks]) for flag, ks in by_label.items()}
        per_day = split(args.records, [1.0] * len(self.days))
        total = members = 0
        pipe = self.pipe()
        for day, calls in zip(self.days, per_day, strict=True):
            dkey = day_key(day)
            fields: Counter[str] = Counter()
            for campaign, c_calls in zip(
                self.campaigns, split(calls, [1.0] * len(self.campaigns)), strict=True
            ):
                outcomes = list(SHARES)
                counts = split(c_calls, [*SHARES.values(), 1 - sum(SHARES.values())])
                for outcome, n in zip([*outcomes, Outcome.ALLOWED], counts, strict=True):
                    total += n
                    if outcome in (Outcome.BLOCKED, Outcome.LABELED):
                        label = outcome is Outcome.LABELED
                        ks = by_label[label]
                        drawn = Counter(self.rng.choices(ks, cum_weights=cum[label], k=n))
                        self.drawn.update(drawn)
                        sets: dict[str, dict[str, int]] = {}
                        for k, times in drawn.items():
                            number = self.blacklisted[k]
                            name = self.entry_of[number][0]
                            direction = Direction.OUTBOUND if k % 3 else Direction.INBOUND
                            fields[counter_field(outcome, direction, name, campaign)] += times
                            zkey, member = listed_location(
                                self.keys, dkey, campaign, label, number[1:]
                            )
                            sets.setdefault(zkey, {})[member] = times
                        members += len(drawn)
                        for zkey, mapping in sets.items():
                            pipe.zadd(zkey, mapping)  # type: ignore[arg-type]
                    else:
                        out, inn = split(n, [0.7, 0.3])
                        fields[counter_field(outcome, Direction.OUTBOUND, "", campaign)] += out
                        fields[counter_field(outcome, Direction.INBOUND, "", campaign)] += inn
            # all of a day's counts in shard 0: the reader sums the shards either way
            pipe.hset(self.keys.day_counters(dkey, 0), mapping=dict(fields))  # type: ignore[arg-type]
            pipe.execute()
        return total, members

    def stream(self) -> int:
        """The stream at its bound: ``--stream`` recent records."""
        n = min(self.args.stream, self.args.records)
        now = time.time()
        pipe = self.pipe()
        for i in range(n):
            number = mobile(i % 1_000_000)
            value = pack_fields(
                now - (n - i) * 0.01,
                Direction.OUTBOUND,
                number,
                self.campaigns[i % len(self.campaigns)],
                Result.ALLOWED,
                False,
                "",
                "",
                "",
                f"1700000000.{i}",
                "",
                "gw-1",
                180,
                "",
            )
            stream = self.keys.attempt_log(log_shard(number[1:]))
            pipe.execute_command("XADD", stream, "*", STREAM_FIELD, value)
            if i % 20_000 == 19_999:
                pipe.execute()
        pipe.execute()
        return n


def _cumulative(weights: list[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def time_report(
    table: Table, log: LogSettings, loader: Loader, campaign: str | None, repeat: int
) -> tuple[float, Any]:
    best = float("inf")
    report = None
    for _ in range(repeat):
        started = time.perf_counter()
        report = build_report(table, log, loader.days[0], loader.days[-1], campaign=campaign)
        best = min(best, time.perf_counter() - started)
    return best, report


async def bench_writer(url: str, records: int) -> dict[str, float]:
    """Push ``records`` decisions through a real CallLog; the writer's throughput."""
    client = LeanRedis.from_url(url, command_timeout=10.0)
    log = CallLog(LogSettings(node="bench", queue_max=records + 1), client, own_client=True)
    requests = []
    for i in range(10_000):
        number = mobile(i)
        decision = (
            Decision(Result.BLOCKED, number, "national-dnc", number, "opt-out")
            if i % 8 == 0
            else Decision(Result.ALLOWED, number)
        )
        requests.append(
            (ScreenRequest(number, Direction.OUTBOUND, "c1", f"17.{i}", "Name"), decision)
        )
    started_record = time.perf_counter()
    for i in range(records):
        request, decision = requests[i % len(requests)]
        log.record(request, decision, 0.00018)
    record_s = time.perf_counter() - started_record
    cpu = time.process_time()
    started = time.perf_counter()
    log.start()
    assert await log.flush(600)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await log.stop()
    return {
        "record_us": record_s / records * 1e6,
        "writer_records_per_s": records / wall,
        "writer_cpu_us_per_record": cpu / records * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="calls logged")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument(
        "--blacklisted", type=int, default=100_000, help="distinct blacklisted numbers called"
    )
    parser.add_argument(
        "--contacted", type=int, default=1_000_000, help="numbers with a first-contact mark"
    )
    parser.add_argument(
        "--stream", type=int, default=1_000_000, help="records in the stream (retention)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writer-records", type=int, default=200_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp))
        server.start()
        try:
            run(server.url, args)
        finally:
            server.stop()


def run(url: str, args: argparse.Namespace) -> None:
    settings = Settings(_env_file=None, redis_url=url)  # type: ignore[call-arg]
    r = redis.Redis.from_url(url, decode_responses=True)
    table = Table(settings)
    loader = Loader(r, table, args)
    log = LogSettings()

    t0 = time.perf_counter()
    loader.lists()
    loader.marks()
    before = int(r.info("memory")["used_memory"])  # type: ignore[index]
    calls, members = loader.counters_and_sets()
    after_counters = int(r.info("memory")["used_memory"])  # type: ignore[index]
    streamed = loader.stream()
    after_stream = int(r.info("memory")["used_memory"])  # type: ignore[index]
    load_s = time.perf_counter() - t0
    print(
        f"loaded in {load_s:.1f} s: {calls:,} calls over {args.days} days, "
        f"{args.campaigns} campaigns, {len(BLOCK_LISTS + LABEL_LISTS)} lists"
    )
    print(
        f"  blacklisted numbers {args.blacklisted:,}; (day, campaign, number) blocked or "
        f"labeled {members:,}; first-contact marks {args.contacted + args.blacklisted * 2 // 5:,}"
    )
    print(
        f"  Redis: counters + day numbers {(after_counters - before) / 1e6:.1f} MB; "
        f"stream of {streamed:,} records {(after_stream - after_counters) / 1e6:.1f} MB "
        f"({(after_stream - after_counters) / max(1, streamed):.0f} B a record)"
    )

    for campaign in (None, loader.campaigns[0]):
        seconds, report = time_report(table, log, loader, campaign, args.repeat)
        scope = "all campaigns" if campaign is None else f"campaign {campaign}"
        print(
            f"report, {scope}, {args.days} days: {seconds:.3f} s (best of {args.repeat}); "
            f"total {report.total:,}; blacklisted numbers {report.listed_numbers:,}: "
            f"lost {report.lost_count:,}, never contacted {report.never_contacted_count:,}"
        )
        if campaign is None:
            assert report.total == calls, (report.total, calls)
            expected_lost = len(loader.lost & loader.drawn)
            assert report.lost_count == expected_lost, (report.lost_count, expected_lost)
            assert report.listed_numbers == len(loader.drawn)
            assert report.listed_numbers <= args.blacklisted

    if args.writer_records:
        r.flushall()
        figures = asyncio.run(bench_writer(url, args.writer_records))
        print(
            f"writer: record() {figures['record_us']:.2f} µs on the call path; "
            f"{figures['writer_records_per_s']:,.0f} records/s; "
            f"{figures['writer_cpu_us_per_record']:.1f} µs of gateway CPU a record "
            "(build + encode + send)"
        )
    table.close()
    r.close()


if __name__ == "__main__":
    main()
