"""LeanRedis against redis-py asyncio, side by side: the same EVALSHA (one HMGET in Lua).

Starts its own redis-server on a free port, then for each event loop (default asyncio,
uvloop) and each client measures:

- one caller, one call at a time: p50/p99 of the round trip;
- 64 concurrent tasks: throughput (ops/s), p50/p99 per call, and the client process's
  CPU time per call (Redis runs in its own process and is not counted).

Rounds alternate the clients and the median round is printed, since a shared 2-core
machine drifts by 15-20 % from run to run. About 20 s with the defaults.

    python bench/bench_redis_client.py [--rounds 5] [--seq 4000] [--conc 16000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.redisproc
sys.path.insert(0, str(ROOT / "src"))

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import uvloop  # noqa: E402
from tests.support.redisproc import RedisProcess, redis_server_binary  # noqa: E402

from callscreen.callpath.leanredis import LeanRedis, Script  # noqa: E402

TASKS = 64
KEY = "{cs}:bench"
SCRIPT = Script("return redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2], ARGV[3])")
FIELDS = ("33123456789", "3312345", "331")
EXPECTED = [b"blocked", None, b"labeled"]

Call = Callable[[], Awaitable[object]]


@dataclass
class Figures:
    seq_p50: float
    seq_p99: float
    ops: float
    conc_p50: float
    conc_p99: float
    cpu_per_op: float


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # ns -> µs


async def measure(call: Call, n_seq: int, n_conc: int) -> Figures:
    for _ in range(200):  # warm up: connections, script cache, allocator
        await call()
    seq: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(n_seq):
        start = clock()
        await call()
        seq.append(clock() - start)

    conc: list[int] = []
    per_task = n_conc // TASKS

    async def worker() -> None:
        for _ in range(per_task):
            start = clock()
            await call()
            conc.append(clock() - start)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * TASKS
    return Figures(
        pct(seq, 0.5),
        pct(seq, 0.99),
        done / wall,
        pct(conc, 0.5),
        pct(conc, 0.99),
        cpu / done * 1e6,
    )


async def run_loop(url: str, port: int, rounds: int, n_seq: int, n_conc: int) -> dict[str, Figures]:
    lean = LeanRedis.from_url(url)
    # redis-py as it is normally used: a pool, so 64 tasks get up to 64 connections.
    pyr = redis.asyncio.Redis(port=port)
    await pyr.script_load(SCRIPT.source)

    async def lean_call() -> object:
        return await lean.evalsha(SCRIPT, [KEY], FIELDS)

    async def pyr_call() -> object:
        return await pyr.evalsha(SCRIPT.sha1, 1, KEY, *FIELDS)

    clients: dict[str, Call] = {"LeanRedis": lean_call, "redis-py": pyr_call}
    try:
        for name, call in clients.items():
            reply = await call()
            assert reply == EXPECTED, (name, reply)
        results: dict[str, list[Figures]] = {name: [] for name in clients}
        for i in range(rounds):
            order = list(clients) if i % 2 == 0 else list(reversed(clients))
            for name in order:
                results[name].append(await measure(clients[name], n_seq, n_conc))
        return {
            name: sorted(figs, key=lambda f: f.ops)[len(figs) // 2]
            for name, figs in results.items()
        }
    finally:
        await lean.close()
        await pyr.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seq", type=int, default=4000, help="sequential calls per round")
    parser.add_argument("--conc", type=int, default=16000, help="concurrent calls per round")
    args = parser.parse_args()

    binary = redis_server_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    server = RedisProcess(Path(tempfile.mkdtemp(prefix="cs-bench-")))
    server.start()
    try:
        with redis.Redis(port=server.port) as r:
            r.hset(KEY, mapping={FIELDS[0]: "blocked", FIELDS[2]: "labeled", "other": "x"})
        print(f"{version.split(' sha=')[0].strip()} on port {server.port}")
        print(
            f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, "
            f"uvloop {uvloop.__version__}; EVALSHA of one HMGET (3 fields); "
            f"median of {args.rounds} rounds, {args.seq} sequential + {args.conc} "
            f"concurrent calls each"
        )
        header = (
            f"{'loop':8} {'client':10} {'seq p50':>8} {'seq p99':>8} "
            f"{'ops/s@64':>9} {'p50@64':>8} {'p99@64':>8} {'CPU/op':>8}"
        )
        print(header)
        print("-" * len(header))
        factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
            "asyncio": asyncio.new_event_loop,
            "uvloop": uvloop.new_event_loop,
        }
        for loop_name, factory in factories.items():
            with asyncio.Runner(loop_factory=factory) as runner:
                figures = runner.run(
                    run_loop(server.url, server.port, args.rounds, args.seq, args.conc)
                )
            for name, f in figures.items():
                print(
                    f"{loop_name:8} {name:10} {f.seq_p50:6.0f}µs {f.seq_p99:6.0f}µs "
                    f"{f.ops:9,.0f} {f.conc_p50:6.0f}µs {f.conc_p99:6.0f}µs "
                    f"{f.cpu_per_op:6.1f}µs"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
