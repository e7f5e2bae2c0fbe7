"""History export benchmark: events/s and peak memory of ``history --export``'s merge.

    python bench/bench_history_export.py                 # 20 lists x 50,000 events
    python bench/bench_history_export.py --lists 200 --events 5000

Starts its own redis-server (as the tests do), fills the trail with records shaped as
the services write them (a single-entry ``add`` each, ids spread over a year, every
stream interleaved with the others), then runs the service's export to /dev/null,
twice: the whole trail, and resumed from the cursor of its middle event. Peak memory
is the process's peak RSS (``ru_maxrss``, the interpreter included), which should not
grow with the trail's length (each stream is read a page at a time): compare two
``--events`` sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.schema.keys import Keys  # noqa: E402
from callscreen.services.context import Actor, Context  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402

YEAR_MS = 365 * 86400 * 1000


def fill(client: redis.Redis, keys: Keys, lists: int, events: int) -> None:
    """``events`` records in each of ``lists`` list trails, plus the global trail."""
    start = int(time.time() * 1000) - YEAR_MS
    step = max(1, YEAR_MS // (events * lists))
    client.set(keys.list_seq, lists)
    pipe = client.pipeline(transaction=False)
    for list_id in range(1, lists + 1):
        client.hset(keys.list(list_id), mapping={"name": f"list-{list_id}"})
        pipe.xadd(keys.admin_history, {"op": "create", "by": "bench", "list": f"list-{list_id}"})
        for n in range(events):
            ms = start + (n * lists + list_id) * step
            fields = {
                "op": "add",
                "by": "alice",
                "via": "cli:root@pbx1",
                "list": f"list-{list_id}",
                "r": "asked us to stop",
                "n": "1",
                "e": f"+336{(list_id * events + n) % 100_000_000:08d}",
                "b": str(list_id * events + n),
            }
            pipe.xadd(keys.history(list_id), fields, id=f"{ms}-0")
            if len(pipe) >= 5000:
                pipe.execute()
    pipe.execute()


async def export(settings: Settings, after: str | None) -> tuple[int, float, int, str]:
    services = Services(Context.connect(settings, Actor("bench", "bench")))
    count, last = 0, ""
    started = time.perf_counter()
    try:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            async for event in services.history.export(after, settle_s=0):
                sink.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                count += 1
                last = str(event.cursor)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    finally:
        await services.close()
    return count, seconds, peak, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--events", type=int, default=50_000, help="events per list")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        server = RedisProcess(Path(tmp) / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            settings = Settings(redis_url=server.url)
            started = time.perf_counter()
            fill(client, Keys(settings.key_tag), args.lists, args.events)
            total = args.lists * (args.events + 1)
            print(f"filled {total:,} events in {time.perf_counter() - started:.1f} s")
            count, seconds, peak, _last = asyncio.run(export(settings, None))
            print(
                f"whole trail: {count:,} events in {seconds:.1f} s "
                f"({count / seconds:,.0f} events/s), peak RSS {peak / 2**20:.1f} MiB"
            )
            middle_ms = int(time.time() * 1000) - YEAR_MS // 2
            half, seconds, peak, _last = asyncio.run(export(settings, f"{middle_ms}-0@0"))
            print(
                f"resumed from the middle: {half:,} events in {seconds:.1f} s "
                f"({half / seconds:,.0f} events/s), peak RSS {peak / 2**20:.1f} MiB"
            )
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
