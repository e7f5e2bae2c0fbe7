"""The number page's time: ``callscreen number`` (the service under it) for a number held
by 20 lists, with 10,000 logged attempts of its own among other traffic.

    python bench/bench_number.py                       # 20 lists, 10,000 attempts
    python bench/bench_number.py --lists 50 --attempts 50000 --other 200000

Starts its own redis-server (as the tests do). Sets up ``--lists`` lists holding the
number (half exactly, half through prefixes; a third campaign-only, assigned to three
campaigns; one entry pending, one removed) and as many lists that do not, then pushes
``--attempts`` decisions for the number and ``--other`` for other numbers through a
real :class:`~callscreen.gateway.attemptlog.CallLog`. Prints the median and p95 of
:meth:`NumberService.card <callscreen.services.numbers.NumberService.card>` over
``--repeat`` runs (goal: under 100 ms), and the page's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.services import with_services  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.callpath.decision import Decision, ScreenRequest  # noqa: E402
from callscreen.callpath.leanredis import LeanRedis  # noqa: E402
from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Direction, Result, Status  # noqa: E402
from callscreen.gateway.attemptlog import CallLog  # noqa: E402
from callscreen.schema.attempts import LogSettings  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402

NUMBER = "+33612345678"


async def setup(services: Services, lists: int) -> None:
    actions = [Action.BLOCK, Action.LABEL, Action.ALLOW]
    campaign_lists: list[str] = []
    for i in range(lists):
        name = f"holds-{i:02d}"
        campaign_only = i % 3 == 2
        await services.lists.create_list(
            name, actions[i % 3], Direction.BOTH, campaign_only=campaign_only
        )
        if campaign_only:
            campaign_lists.append(name)
        entry = NUMBER if i % 2 == 0 else NUMBER[: 4 + i % 8] + "*"
        await services.entries.add(name, [entry], reason=f"reason {i}", source="bench")
        other = f"+3361{i:07d}"
        await services.lists.create_list(f"other-{i:02d}", Action.BLOCK, Direction.BOTH)
        await services.entries.add(f"other-{i:02d}", [other], reason="someone else")
    await services.entries.remove("holds-00", [NUMBER], reason="bench removal")
    await services.entries.add("holds-02", [NUMBER], reason="pending", status=Status.PENDING)
    for c in range(3):
        await services.campaigns.assign(f"camp{c}", campaign_lists)


async def push(url: str, attempts: int, other: int) -> None:
    log = CallLog(LogSettings(node="bench"), LeanRedis.from_url(url), own_client=True)
    log.start()
    rng = random.Random(7)
    mine = set(rng.sample(range(attempts + other), attempts))
    for i in range(attempts + other):
        if i in mine:
            number, result = NUMBER, rng.choice([Result.BLOCKED, Result.ALLOWED, Result.LABELED])
        else:
            number, result = f"+3362{rng.randrange(10**7):07d}", Result.ALLOWED
        if result is Result.ALLOWED:
            decision = Decision(result, number)
        else:
            decision = Decision(result, number, "holds-04", number, "reason 4")
        request = ScreenRequest(number, Direction.OUTBOUND, f"camp{i % 3}", f"u{i}")
        log.record(request, decision, 0.0002)
        if i % 256 == 255:
            await asyncio.sleep(0)
    assert await log.flush(300)
    await log.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--other", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp))
        server.start()
        try:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, redis_url=server.url, default_region="FR", cascade_wait_s=0
            )
            with_services(settings, lambda s: setup(s, args.lists))
            asyncio.run(push(server.url, args.attempts, args.other))

            async def timed(services: Services) -> tuple[list[float], int, dict[str, object]]:
                times = []
                card = await services.numbers.card(NUMBER)  # warm: scripts loaded
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    card = await services.numbers.card(NUMBER)
                    times.append(time.perf_counter() - start)
                data = card.to_json()
                return times, len(json.dumps(data)), data

            times, size, data = with_services(settings, timed)
            held = [x for x in data["lists"]]  # type: ignore[union-attr]
            log = data["log"]  # type: ignore[index]
            times.sort()
            print(
                f"number page: {len(held)} lists hold it, "
                f"{len(data['decisions'])} decisions, "  # type: ignore[arg-type]
                f"{log['total']:,} attempts kept ({args.other:,} calls of other numbers)"  # type: ignore[index]
            )
            print(
                f"  card(): median {statistics.median(times) * 1000:.1f} ms, "
                f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.1f} ms over {args.repeat} runs "
                f"(goal < 100 ms); JSON {size / 1024:.0f} kB"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
