"""The HTTP API under load, and what that load does to the gateway beside it.

    .venv/bin/python bench/bench_api.py [--entries 1000000] [--seconds 10]

All on loopback, each part in its own process (Redis, ``callscreen api``,
``callscreen serve``, the load generators):

1. loads ``--entries`` entries into a block list with the CSV importer;
2. ``POST /lists/{id}/entries`` of 10,000 entries with one reason (goal < 1 s), into a
   fresh list each time;
3. ``POST /check`` of 10,000 numbers (half listed) against those entries (goal < 1 s),
   and, in this process, the same numbers' split between parsing and the pipelined
   lookups through the gateway's screener;
4. the unfiltered first page of ``GET /lists/{id}/entries`` at that size (goal p99
   < 20 ms);
5. requests/s of ``GET /lists/{id}/entries/{number}`` with 32 concurrent clients
   (another process), and the gateway's screening latency at a paced 500 calls/s,
   alone and during that load, side by side.

Nothing is asserted: it prints figures. Every process shares this machine's cores, so
absolute numbers are a floor; say which box they came from when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.polling import until  # noqa: E402
from tests.support.redisproc import RedisProcess, free_port  # noqa: E402

import bench_gateway as gw  # noqa: E402
from callscreen.callpath.decision import ScreenRequest  # noqa: E402
from callscreen.callpath.leanredis import LeanRedis  # noqa: E402
from callscreen.callpath.screener import Screener  # noqa: E402
from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.errors import InvalidNumber  # noqa: E402
from callscreen.core.model import Action, Direction, Status  # noqa: E402
from callscreen.core.numbers import parse_entry_fast, read_call_number  # noqa: E402
from callscreen.services import apikeys  # noqa: E402
from callscreen.services.context import Actor, Context  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402
from callscreen.services.importer import ImportOptions  # noqa: E402

HOST = "127.0.0.1"


def valid(number: int) -> bool:
    try:
        parse_entry_fast(f"+{number}", "US")
    except InvalidNumber:
        return False
    return True


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ApiProcess:
    """``callscreen api`` in its own process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "CALLSCREEN_API_PORT": str(self.port), "CALLSCREEN_LOG_LEVEL": "WARNING"}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> ApiProcess:
        exe = str(Path(sys.executable).with_name("callscreen"))
        self.proc = subprocess.Popen([exe, "api"], env={**os.environ, **self.env})

        def up() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        until(up, "the API to answer", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)


async def hammer(url: str, key: str, list_id: int, numbers: list[str], seconds: float) -> None:
    """32 clients reading one entry each, for ``seconds``; prints requests/s."""
    headers = {"Authorization": f"Bearer {key}"}
    done = 0
    errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def worker(seed: int) -> None:
            nonlocal done, errors
            rng = random.Random(seed)
            while time.monotonic() < stop:
                r = await client.get(f"/api/v1/lists/{list_id}/entries/{rng.choice(numbers)}")
                if r.status_code == 200:
                    done += 1
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(32)))
        took = time.monotonic() - started
    print(f"{done / took:.0f} {errors}", flush=True)


async def prepare(settings: Settings, path: Path, entries: int) -> tuple[int, str]:
    """The list ``dnc`` loaded from ``path`` (active) and a key with every scope."""
    services = Services(Context.connect(settings, Actor("bench", "bench")))
    try:
        dnc = (await services.lists.create_list("dnc", Action.BLOCK, Direction.BOTH)).id
        started = time.perf_counter()
        options = ImportOptions(approve=Status.ACTIVE, reason="bulk")
        await services.transfer.import_file("dnc", str(path), options)
        print(f"loaded {entries:,} entries in {time.perf_counter() - started:.1f} s")
        scopes = [s.value for s in apikeys.KeyScope]
        return dnc, (await services.apikeys.create("bench", scopes))[1]
    finally:
        await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="of each load phase")
    parser.add_argument("--hammer", nargs=4, metavar=("URL", "KEY", "LIST", "NUMBERS"))
    parser.add_argument(
        "--check-only", action="store_true", help="only the bulk add and POST /check parts"
    )
    args = parser.parse_args()
    if args.hammer:
        url, key, list_id, numbers_file = args.hammer
        numbers = Path(numbers_file).read_text().split()
        asyncio.run(hammer(url, key, int(list_id), numbers, args.seconds))
        return

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis_proc = RedisProcess(tmp / "redis")
        redis_proc.start()
        env = {
            "CALLSCREEN_REDIS_URL": redis_proc.url,
            "CALLSCREEN_SPOOL_DIR": "",
            "CALLSCREEN_LOG_CALLS": "false",
            "CALLSCREEN_METRICS_PORT": "0",
            "CALLSCREEN_API_DATA_DIR": str(tmp / "api"),
        }
        settings = Settings(_env_file=None, redis_url=redis_proc.url, spool_dir="")  # type: ignore[call-arg]
        try:
            run(args, settings, env, tmp)
        finally:
            redis_proc.stop()


def run(args: argparse.Namespace, settings: Settings, env: dict[str, str], tmp: Path) -> None:
    print(f"box: {os.cpu_count()} cores (shared by Redis, the API, the gateway, the clients)")
    rng = random.Random(3)
    # numbers phonenumbers finds valid (about 80 % of this range): the importer refuses
    # the others
    pool = [
        n
        for n in rng.sample(range(33_600_000_000, 33_800_000_000), args.entries * 13 // 10 + 60_000)
        if valid(n)
    ]
    listed = pool[: args.entries]
    unlisted_pool = pool[args.entries :]
    unlisted = unlisted_pool[:8_000]
    fresh = unlisted_pool[8_000:]  # for the bulk adds
    path = tmp / "dnc.csv"
    gw.write_csv(path, listed)
    dnc, key = asyncio.run(prepare(settings, path, len(listed)))
    headers = {"Authorization": f"Bearer {key}"}

    with (
        ApiProcess(env) as api,
        httpx.Client(base_url=api.url + "/api/v1", headers=headers, timeout=120) as c,
    ):
        # 2. bulk add
        times = []
        for i in range(3):
            list_id = c.post("/lists", json={"name": f"crm{i}", "action": "block"}).json()["id"]
            body = {
                "entries": [{"number": f"+{n}"} for n in fresh[i * 10_000 : (i + 1) * 10_000]],
                "reason": "crm sync",
            }
            started = time.perf_counter()
            r = c.post(f"/lists/{list_id}/entries", json=body)
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        print(
            f"POST entries, 10,000 new entries: median {ms(statistics.median(times))}, "
            f"best {ms(min(times))} (goal < 1 s)"
        )

        # 3. check
        numbers = [f"+{n}" for n in listed[:5000]] + [f"+{n}" for n in unlisted[:5000]]
        assert len(numbers) == 10_000
        random.Random(5).shuffle(numbers)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            r = c.post("/check", json={"numbers": numbers, "direction": "outbound"})
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        print(
            f"POST /check, 10,000 numbers against {len(listed):,} entries: median "
            f"{ms(statistics.median(times))}, best {ms(min(times))} (goal < 1 s); "
            f"{r.json()['counts']}"
        )
        parts = asyncio.run(split(settings, numbers))
        print(
            f"  in one process: parsing {ms(parts['parse'])}; lookups (Redis and the client) "
            f"one number a script call, pipelined {ms(parts['one'])}, 8 numbers a call "
            f"{ms(parts['chunk8'])}, 32 {ms(parts['chunk32'])}, 128 {ms(parts['chunk128'])}; "
            f"the check service's decide_many (32 a call; parse, lookups, precedence) "
            f"{ms(parts['decide_many'])}"
        )
        if args.check_only:
            return

        # 4. entries page
        times = []
        for _ in range(5):
            started = time.perf_counter()
            r = c.get(f"/lists/{dnc}/entries", params={"limit": 50})
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        print(
            f"GET entries (first page of 50, unfiltered) at {len(listed):,} entries: "
            f"p99 {ms(pct(times, 0.99))}, median {ms(statistics.median(times))} "
            "(goal p99 < 20 ms)"
        )

        # 5. API load beside the gateway
        numbers_file = tmp / "numbers.txt"
        numbers_file.write_text("\n".join(f"+{n}" for n in listed[:20_000]))
        samples = {
            "listed": [f"+{n}" for n in listed[:2000]],
            "unlisted": [f"+{n}" for n in unlisted[:2000]],
        }
        pick = random.Random(9)
        calls: list[tuple[str, ...]] = [
            (
                pick.choice(("inbound", "outbound")),
                pick.choice(samples[pick.choice(("listed", "unlisted"))]),
            )
            for _ in range(int(500 * args.seconds))
        ]
        gateway_env = {**os.environ, **env}
        argv = [str(Path(sys.executable).with_name("callscreen")), "serve"]
        with gw.GatewayProcess(gateway_env, argv) as gateway:
            asyncio.run(gw.saturate(gateway.port, calls[:500], 16, "warm-up"))
            alone = asyncio.run(gw.paced(gateway.port, calls, 500, "alone"))
            load = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--seconds",
                    str(args.seconds + 2),
                    "--hammer",
                    api.url,
                    key,
                    str(dnc),
                    str(numbers_file),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)  # let the load reach its pace before measuring beside it
            beside = asyncio.run(gw.paced(gateway.port, calls, 500, "beside"))
            out, _ = load.communicate(timeout=args.seconds + 60)
        rate, errors = out.split()
        print(
            f"GET /lists/{{id}}/entries/{{number}}, 32 concurrent clients: {float(rate):,.0f} "
            f"requests/s ({errors} errors)"
        )
        print("gateway screening at a paced 500 calls/s:")
        for name, measured in (("alone", alone), ("during the API load", beside)):
            print(
                f"  {name:22} p50 {measured.pct(0.5):7.0f} µs  p99 {measured.pct(0.99):7.0f} µs"
                f"  ({measured.sessions} calls, {measured.errors} errors)"
            )


async def split(settings: Settings, numbers: list[str]) -> dict[str, float]:
    """Parsing alone, then the lookups alone: one script call per number (pipelined on
    one connection) and ``chunk`` numbers a call (as the check service sends them); then
    the whole ``decide_many`` the service runs (parse, lookups, precedence)."""
    started = time.perf_counter()
    digits = [read_call_number(n, settings.default_region).digits for n in numbers]
    out = {"parse": time.perf_counter() - started}
    client = LeanRedis.from_settings(settings)
    screener = Screener(settings, client)
    try:
        await screener.decide(ScreenRequest(numbers[0], Direction.OUTBOUND))  # connect
        started = time.perf_counter()
        await asyncio.gather(*(screener.lookup(d, Direction.OUTBOUND, "") for d in digits))
        out["one"] = time.perf_counter() - started
        for chunk in (8, 32, 128):
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    screener.lookup_many(digits[i : i + chunk], Direction.OUTBOUND, "")
                    for i in range(0, len(digits), chunk)
                )
            )
            out[f"chunk{chunk}"] = time.perf_counter() - started
        started = time.perf_counter()
        await screener.decide_many(numbers, Direction.OUTBOUND)
        out["decide_many"] = time.perf_counter() - started
    finally:
        await client.close()
    return out


if __name__ == "__main__":
    main()
