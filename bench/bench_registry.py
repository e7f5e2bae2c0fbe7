"""The US do-not-call registry in Redis: load rate, bytes per number, and the gateway with
it loaded beside ordinary entries.

    .venv/bin/python bench/bench_registry.py [--numbers 50000000] [--entries 1000000]
    .venv/bin/python bench/bench_registry.py --numbers 2000000 --entries 200000   # quick

What it does, on loopback with a private redis-server:

1. writes a synthetic registry at the US registry's density: ``--numbers`` numbers, 7.5 %
   of the 10,000 numbers of each exchange listed (so ``--numbers`` / 750 exchanges, spread
   over area codes 201-989), one full file per area code, ten digits a line;
2. loads ``--entries`` ordinary entries into several lists (as ``bench_gateway.py``), then
   drives ``callscreen serve`` with 64 concurrent fake-Asterisk sessions: sessions/s and
   p99 without the registry;
3. loads the registry with ``callscreen registry load us`` (the service behind it) and
   prints the load rate (numbers/s, file reading and parsing included) and Redis bytes
   per registry number;
4. drives the gateway again, a third of the calls now outbound to US numbers of the
   registry's exchanges (listed or not): sessions/s and p99 with the registry loaded.

Nothing is asserted: it prints figures (the load generator, the gateway and Redis share
the machine's cores).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway as bg
from callscreen.core.config import Settings
from callscreen.services.context import Actor, Context
from callscreen.services.registry import FileResult, RegistryService

PER_EXCHANGE = 750  # 7.5 % of an exchange's 10,000 numbers


def write_registry(tmp: Path, numbers: int, seed: int = 5) -> tuple[list[Path], list[str]]:
    """Full files by area code; and a sample of listed and unlisted US numbers (E.164)."""
    rng = random.Random(seed)
    exchanges = max(1, numbers // PER_EXCHANGE)
    all_exchanges = [(npa, nxx) for npa in range(201, 990) for nxx in range(200, 1000)]
    chosen = sorted(rng.sample(all_exchanges, exchanges))
    files: dict[int, list[str]] = {}
    samples: list[str] = []
    written = 0
    for npa, nxx in chosen:
        count = min(PER_EXCHANGE, numbers - written)
        if count <= 0:
            break
        lines = rng.sample(range(10_000), count)
        prefix = f"{npa}{nxx}"
        files.setdefault(npa, []).append("".join(f"{prefix}{line:04d}\n" for line in lines))
        written += count
        if len(samples) < 4000:
            samples.append(f"+1{prefix}{lines[0]:04d}")  # listed
            samples.append(f"+1{prefix}{(lines[0] + 1) % 10_000:04d}")  # probably not
    paths = []
    for npa, chunks in files.items():
        path = tmp / f"{npa}.txt"
        path.write_text("".join(chunks))
        paths.append(path)
    return paths, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=50_000_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    args.paced_rate = 500.0  # measure()'s paced run is not used here
    try:
        import uvloop

        run_async = uvloop.run
    except ImportError:
        import asyncio

        run_async = asyncio.run

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = bg.RedisProcess(tmp / "redis")
        server.start()
        bg.REDIS_URL = server.url
        try:
            client = redis.Redis(port=server.port)
            env = {
                "CALLSCREEN_REDIS_URL": server.url,
                "CALLSCREEN_DEFAULT_REGION": bg.REGION,
                "CALLSCREEN_LISTEN_HOST": bg.HOST,
                "CALLSCREEN_LOG_LEVEL": "INFO",
                "CALLSCREEN_LOG_CALLS": "false",
                "CALLSCREEN_DEADLINE_MS": "1000",
                "CALLSCREEN_METRICS_PORT": "0",
            }
            settings = Settings(_env_file=None, redis_url=server.url, default_region=bg.REGION)  # type: ignore[call-arg]
            print(f"loading {args.entries:,} ordinary entries ...", flush=True)
            loaded = bg.load_table(settings, client, args.entries, tmp)
            serve = [sys.executable, "-m", "callscreen", "serve"]
            calls = bg.workload(loaded, args.sessions)
            before = bg.measure(env, serve, calls, args, "without the registry", run_async)

            print(f"writing a synthetic registry of {args.numbers:,} numbers ...", flush=True)
            started = time.perf_counter()
            regdir = tmp / "registry"
            regdir.mkdir()
            paths, samples = write_registry(regdir, args.numbers)
            print(f"  {len(paths)} area-code files in {time.perf_counter() - started:.0f} s")
            memory = bg.used_memory(client)
            started = time.perf_counter()
            results = run_async(load_registry(settings, [str(p) for p in paths]))
            seconds = time.perf_counter() - started
            listed = sum(r.listed for r in results)
            used = bg.used_memory(client) - memory
            for path in paths:
                path.unlink()
            print(
                f"registry load: {listed:,} numbers in {seconds:.1f} s = "
                f"{listed / seconds:,.0f} numbers/s (files read, parsed and written); "
                f"{used / listed:.2f} B of Redis a registry number "
                f"({used / 2**20:,.0f} MiB)"
            )

            rng = random.Random(9)
            mixed = [
                ("outbound", rng.choice(samples)) if i % 3 == 0 else call
                for i, call in enumerate(calls)
            ]
            after = bg.measure(env, serve, mixed, args, "with the registry", run_async)
            print()
            print(f"{'gateway, 64 concurrent':32} {'sessions/s':>10} {'p50 µs':>8} {'p99 µs':>8}")
            for label, m in (
                (f"{args.entries:,} entries", before),
                (f"+ registry of {listed:,}", after),
            ):
                sat = m.saturated
                print(f"{label:32} {sat.rate:>10.0f} {sat.pct(0.5):>8.0f} {sat.pct(0.99):>8.0f}")
        finally:
            server.stop()


async def load_registry(settings: Settings, paths: list[str]) -> list[FileResult]:
    """``callscreen registry load us PATHS`` through the registry service."""
    ctx = Context.connect(settings, Actor("bench", "bench"))
    try:
        return await RegistryService(ctx).load("us", paths)
    finally:
        await ctx.close()


if __name__ == "__main__":
    main()
