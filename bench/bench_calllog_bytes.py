"""The attempt log's Redis bytes (and CPU) per logged call, by stream: the records of allowed calls
(bounded by ``calllog_max_records``) and those of blocked and labeled calls (kept by age
only, ``calllog_blocked_days``), and what each call adds to its number's attempt index.

    python bench/bench_calllog_bytes.py                  # 100,000 calls over 10,000 numbers
    python bench/bench_calllog_bytes.py --calls 500000 --numbers 50000

Starts its own redis-server (as the tests do), pushes the calls through a real
:class:`~callscreen.gateway.attemptlog.CallLog` and prints ``used_memory`` deltas.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.callpath.decision import Decision, ScreenRequest  # noqa: E402
from callscreen.callpath.leanredis import LeanRedis  # noqa: E402
from callscreen.core.model import Direction, Result  # noqa: E402
from callscreen.gateway.attemptlog import CallLog  # noqa: E402
from callscreen.schema.attempts import LogSettings  # noqa: E402
from callscreen.schema.keys import LOG_SHARDS, Keys  # noqa: E402


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])  # type: ignore[index]


def redis_cpu(r: redis.Redis) -> float:
    """Redis's own CPU seconds so far (user + system, INFO cpu)."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])  # type: ignore[index]


def key_bytes(r: redis.Redis, pattern: str) -> tuple[int, int]:
    """Total MEMORY USAGE of the keys matching ``pattern``, and how many there are."""
    total = count = 0
    for name in r.scan_iter(match=pattern, count=1000):
        total += int(r.memory_usage(name, samples=0) or 0)
        count += 1
    return total, count


async def push(url: str, result: Result, calls: int, numbers: list[str], seed: int) -> None:
    log = CallLog(LogSettings(node="bench"), LeanRedis.from_url(url), own_client=True)
    log.start()
    rng = random.Random(seed)
    for i in range(calls):
        number = rng.choice(numbers)
        if result is Result.ALLOWED:
            decision = Decision(Result.ALLOWED, number)
        else:
            decision = Decision(result, number, "dnc", number, "asked us to stop")
        request = ScreenRequest(number, Direction.OUTBOUND, "spring", f"1700000000.{i}")
        log.record(request, decision, 0.0002)
        if i % 200 == 199:
            await asyncio.sleep(0)
    assert await log.flush(120)
    await log.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--numbers", type=int, default=10_000)
    args = parser.parse_args()
    numbers = [f"+336{n:08d}" for n in range(10_000_000, 10_000_000 + args.numbers)]
    keys = Keys()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp))
        server.start()
        try:
            r = redis.Redis.from_url(server.url)
            print(f"{args.calls:,} calls of each kind over {args.numbers:,} numbers")
            for result, stream in ((Result.ALLOWED, ""), (Result.BLOCKED, ":k")):
                r.flushall()
                before = used(r)
                cpu = redis_cpu(r)
                asyncio.run(push(server.url, result, args.calls, numbers, 1))
                cpu = redis_cpu(r) - cpu
                total = used(r) - before
                streams = sum(
                    int(r.memory_usage(keys.log_base(s) + ":log" + stream, samples=0) or 0)
                    for s in range(LOG_SHARDS)
                )
                index, indexed = key_bytes(r, "{cs.log.*}:log:n*")
                print(
                    f"{result.value:>8}: {cpu / args.calls * 1e6:5.1f} µs of Redis CPU and "
                    f"{total / args.calls:6.1f} B of Redis per call in all; "
                    f"the stream {streams / args.calls:5.1f} B a record"
                    + (
                        f"; the attempt index {index / args.calls:5.1f} B a call "
                        f"({index / max(1, indexed):.0f} B a number, {indexed:,} numbers)"
                        if indexed
                        else ""
                    )
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
