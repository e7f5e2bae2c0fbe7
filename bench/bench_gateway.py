"""The gateway under load, against the obvious alternatives, in one run.

    .venv/bin/python bench/bench_gateway.py [--entries 1000000] [--sessions 20000]

What it does, all on loopback:

1. starts a private redis-server and loads ``--entries`` entries into several lists
   (block, label, allow, campaign-only, prefixes) with the CSV importer — the import
   rate and Redis bytes per entry are printed, for entries that share their reason
   and for entries that each have their own;
2. starts ``callscreen serve`` in its own process (uvloop; the per-call log line off
   unless ``--call-log``), twice: with the attempt log off, then on (the default), and
   drives each with concurrent fake-Asterisk sessions (``tests/support/agiclient.py``):
   sessions/s at 64 concurrent — the attempt log's cost is their ratio — then, with
   the attempt log on, latency and gateway CPU per session at a paced 500 sessions/s
   (``--paced-rate``). The paced figure is the one real Asterisk traffic gives: a PBX
   sends calls one at a time, so each costs the gateway its own event-loop wake-ups
   (accept, the environment's segments, Redis's reply, Asterisk's reply, the close),
   where the saturated run shares each wake-up among many sessions. In the paced run
   the fake Asterisk writes and closes as Asterisk does (``asterisk_writes``,
   ``tests/agiclient.py``); the saturated run sends each environment in one write
   (with Nagle on, 64 sessions from one event loop stall on delayed ACKs);
3. counts, for each decision, the Redis round trips (the gateway's own counter,
   logged at shutdown) and the AGI commands (seen by the fake Asterisk); and Redis's
   own CPU per call (``/proc`` of redis-server over the saturated runs): the lookup
   (the run with the attempt log off), the log (the run with it on, minus that), and
   as their floor, in the same run, one ``HMGET`` of a number's candidate prefixes
   per call; then (also alone with ``--redis-only``) side by side, one at a time and by
   64 concurrent callers on one pipelined connection (as the gateway sends lookups),
   Redis's process CPU and its ``INFO commandstats`` time per call of (a) that
   ``HMGET``, (b) an ``EVALSHA_RO`` of a script returning a constant, (c) the lookup,
   with the Redis commands the lookup ran;
4. runs the same load against a naive gateway (the same FastAGI server, but one
   Redis GET per candidate prefix, a key per entry) and the classic process-per-call
   AGI entry point (``callscreen-agi``), and prints the ratios.

Nothing here is asserted: it prints figures. The load generator, the gateway and Redis
share this machine's cores, so absolute numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import with_services  # noqa: E402
from tests.support.agiclient import FakeAsterisk, build_env  # noqa: E402
from tests.support.redisproc import RedisProcess, free_port  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Direction, Status  # noqa: E402
from callscreen.services.bulk import Bulk  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402
from callscreen.services.importer import ImportOptions, import_file  # noqa: E402

HOST = "127.0.0.1"
REGION = "FR"


# ------------------------------------------------------------------ the table


@dataclass
class Loaded:
    entries: int = 0
    seconds: float = 0.0
    shared_bytes: float = 0.0
    own_reason_bytes: float = 0.0
    samples: dict[str, list[str]] = field(default_factory=dict)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def write_csv(path: Path, numbers: list[int], reasons: bool = False) -> None:
    with path.open("w") as out:
        if reasons:
            out.write("number,reason\n")
            for i, n in enumerate(numbers):
                out.write(f"+{n},complaint ticket {i}\n")
        else:
            out.write("".join(f"+{n}\n" for n in numbers))


def load_table(settings: Settings, client: redis.Redis, entries: int, tmp: Path) -> Loaded:
    """Several lists, ``entries`` entries in all, through the CSV importer."""
    rng = random.Random(7)
    pool = rng.sample(range(33_600_000_000, 33_800_000_000), entries + 200_000)
    exact = entries - 1000  # and 1,000 prefixes
    split = {
        "dnc": int(exact * 0.6),
        "suspects": int(exact * 0.3),
        "spring-dnc": int(exact * 0.08),
    }
    split["vip"] = exact - sum(split.values())
    loaded = Loaded()

    async def create(s: Services) -> None:
        await s.lists.create_list("dnc", Action.BLOCK, Direction.BOTH)
        await s.lists.create_list("suspects", Action.LABEL, Direction.INBOUND)
        await s.lists.create_list("spring-dnc", Action.BLOCK, campaign_only=True)
        await s.lists.create_list("vip", Action.ALLOW)
        await s.lists.create_list("premium", Action.BLOCK)
        await s.lists.create_list("tickets", Action.BLOCK)
        await s.campaigns.assign("spring", ["spring-dnc"])

    with_services(settings, create)
    table = Bulk(settings)
    options = ImportOptions(approve=Status.ACTIVE, reason="bulk load", by="bench")
    before = used_memory(client)
    offset = 0
    started = time.perf_counter()
    for name, count in split.items():
        numbers = pool[offset : offset + count]
        offset += count
        path = tmp / f"{name}.csv"
        write_csv(path, numbers)
        import_file(table, name, str(path), options)
        loaded.samples[name] = [f"+{n}" for n in numbers[:2000]]
    # 1,000 prefixes: +3389x... premium-rate ranges
    prefixes = [f"+3389{i:03d}*" for i in range(1000)]
    path = tmp / "premium.csv"
    path.write_text("\n".join(prefixes) + "\n")
    import_file(table, "premium", str(path), options)
    loaded.seconds = time.perf_counter() - started
    loaded.entries = entries
    loaded.shared_bytes = (used_memory(client) - before) / entries
    loaded.samples["premium"] = [f"+3389{i:03d}1234" for i in range(1000)]
    loaded.samples["none"] = [f"+{n}" for n in pool[offset : offset + 2000]]
    # entries that each carry their own reason (one batch record each)
    own = pool[offset + 2000 : offset + 2000 + 100_000]
    path = tmp / "tickets.csv"
    write_csv(path, own, reasons=True)
    before = used_memory(client)
    import_file(table, "tickets", str(path), options)
    loaded.own_reason_bytes = (used_memory(client) - before) / len(own)
    table.close()
    return loaded


def load_naive(client: redis.Redis, loaded: Loaded, entries: int) -> float:
    """The naive schema in db 1: one key per entry, value ``list|action``."""
    rng = random.Random(7)
    pool = rng.sample(range(33_600_000_000, 33_800_000_000), entries + 200_000)
    naive = redis.Redis(**{**client.connection_pool.connection_kwargs, "db": 1})
    before = used_memory(naive)
    pipe = naive.pipeline(transaction=False)
    for i, n in enumerate(pool[:entries]):
        pipe.set(str(n), "dnc|block")
        if i % 10_000 == 0:
            pipe.execute()
    for i in range(1000):
        pipe.set(f"3389{i:03d}*", "premium|block")
    pipe.execute()
    per_entry = (used_memory(naive) - before) / entries
    naive.close()
    return per_entry


# ------------------------------------------------------------------ load


@dataclass
class Run:
    name: str
    sessions: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    commands: int = 0
    max_commands: int = 0
    errors: int = 0
    results: dict[str, int] = field(default_factory=dict)
    round_trips: float | None = None

    @property
    def rate(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def workload(loaded: Loaded, n: int) -> list[tuple[str, ...]]:
    """A mix of blocked, labeled, allowed, campaign and unlisted calls."""
    rng = random.Random(11)
    calls = []
    kinds = ["dnc", "suspects", "spring-dnc", "vip", "premium", "none", "none", "none"]
    for _ in range(n):
        kind = rng.choice(kinds)
        number = rng.choice(loaded.samples[kind])
        direction = rng.choice(("inbound", "outbound"))
        campaign = "spring" if kind == "spring-dnc" or rng.random() < 0.2 else ""
        calls.append((direction, number, campaign) if campaign else (direction, number))
    return calls


async def one(fake: FakeAsterisk, args: tuple[str, ...], run: Run) -> None:
    started = time.perf_counter()
    try:
        result = await fake.call(args=args)
    except Exception:
        run.errors += 1
        return
    run.latencies.append(time.perf_counter() - started)
    run.commands += result.command_count
    run.max_commands = max(run.max_commands, result.command_count)
    value = result.variables.get("CALLSCREEN_RESULT", "?")
    run.results[value] = run.results.get(value, 0) + 1


async def saturate(port: int, calls: list[tuple[str, ...]], concurrency: int, name: str) -> Run:
    # The saturated run counts commands without parsing them, to leave the cores to
    # the gateway; the paced run parses every answer as Asterisk would.
    fake = FakeAsterisk(HOST, port, parse=False, timeout=10)
    run = Run(name)
    queue = iter(calls)

    async def worker() -> None:
        for args in queue:
            await one(fake, args, run)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    run.sessions = len(run.latencies)
    return run


async def paced(port: int, calls: list[tuple[str, ...]], rate: float, name: str) -> Run:
    fake = FakeAsterisk(HOST, port, parse=True, timeout=10, asterisk_writes=True)
    run = Run(name)
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i, args in enumerate(calls):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(fake, args, run)))
    await asyncio.gather(*tasks)
    run.seconds = loop.time() - start
    run.sessions = len(run.latencies)
    return run


# ------------------------------------------------------------------ gateways


class GatewayProcess:
    """``callscreen serve`` (or the naive variant) in its own process."""

    def __init__(self, env: dict[str, str], argv: list[str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "CALLSCREEN_LISTEN_PORT": str(self.port)}
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process

    def __enter__(self) -> GatewayProcess:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with __import__("socket").create_connection((HOST, self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start:\n" + self.output())

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)

    def cpu_seconds(self) -> float:
        """CPU seconds of the gateway, its worker processes included."""
        assert self.proc is not None
        return process_cpu(self.proc.pid)


@dataclass
class Measured:
    saturated: Run
    paced: Run | None
    cpu_per_session: float
    redis_cpu_per_session: float = 0.0
    paced_cpu_per_session: float | None = None


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children still running (workers)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(c) for c in children.read().split()]
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


REDIS_URL = ""  # the bench's redis-server, for Redis CPU per call


def redis_cpu() -> float:
    """Redis's own CPU seconds so far (INFO cpu: getrusage, microsecond resolution)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def measure(
    env: dict[str, str],
    argv: list[str],
    calls: list[tuple[str, ...]],
    args: argparse.Namespace,
    name: str,
    run_async: Callable[[Coroutine[Any, Any, Run]], Run],
    paced_calls: list[tuple[str, ...]] | None = None,
) -> Measured:
    """One gateway process: a warm-up, the saturated run, and optionally the paced one."""
    with GatewayProcess(env, argv) as gw:
        run_async(saturate(gw.port, calls[:500], args.concurrency, "warm-up"))
        cpu0 = gw.cpu_seconds()
        rcpu0 = redis_cpu()
        sat = run_async(saturate(gw.port, calls, args.concurrency, name))
        cpu = gw.cpu_seconds() - cpu0
        rcpu = redis_cpu() - rcpu0
        pace = None
        paced_cpu = None
        if paced_calls:
            label = f"  paced {args.paced_rate:.0f}/s"
            cpu0 = gw.cpu_seconds()
            pace = run_async(paced(gw.port, paced_calls, args.paced_rate, label))
            paced_cpu = (gw.cpu_seconds() - cpu0) / max(pace.sessions, 1) * 1e6
    stats = gateway_stats(gw.output())
    if stats:
        answered, trips = stats
        sat.round_trips = trips / answered
        if pace is not None:
            pace.round_trips = sat.round_trips
    sessions = max(sat.sessions, 1)
    return Measured(sat, pace, cpu / sessions * 1e6, rcpu / sessions * 1e6, paced_cpu)


def gateway_stats(text: str) -> tuple[int, int] | None:
    """Calls answered and Redis round trips, summed over the workers' shutdown lines."""
    pattern = r"stopped(?: \(worker \d+\))?: (\d+) calls answered, (\d+) Redis round trips"
    found = re.findall(pattern, text)
    if not found:
        return None
    return sum(int(a) for a, _ in found), sum(int(b) for _, b in found)


async def classic_run(settings_env: dict[str, str], calls: list[tuple[str, ...]]) -> Run:
    """``callscreen-agi`` as Asterisk runs a classic AGI: one process per call."""
    exe = str(Path(sys.executable).with_name("callscreen-agi"))
    env = {**os.environ, **settings_env}
    run = Run("classic AGI (process per call)")
    sem = asyncio.Semaphore(4)

    async def one_call(args: tuple[str, ...]) -> None:
        async with sem:
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                exe, *args,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(build_env(network=False, args=args))
            await proc.stdin.drain()
            line = await proc.stdout.readline()
            proc.stdin.write(b"200 result=0\n")
            await proc.stdin.drain()
            proc.stdin.close()
            await proc.wait()
            if line.startswith(b"EXEC MSet"):
                run.latencies.append(time.perf_counter() - started)
                run.commands += 1
                run.max_commands = 1
            else:
                run.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_call(args) for args in calls))
    run.seconds = time.perf_counter() - started
    run.sessions = len(run.latencies)
    return run


# ------------------------------------------------------------------ report


def show(runs: list[Run], base: Run) -> None:
    print(
        f"{'variant':44} {'sessions':>8} {'sess/s':>8} {'p50 µs':>8} {'p99 µs':>8} "
        f"{'p99.9 µs':>9} {'redis/dec':>9} {'agi/dec':>7} {'ratio':>6}"
    )
    for run in runs:
        rt = f"{run.round_trips:.2f}" if run.round_trips is not None else "-"
        agi = f"{run.commands / run.sessions:.2f}" if run.sessions else "-"
        ratio = f"{run.rate / base.rate:.2f}" if base.rate else "-"
        print(
            f"{run.name:44} {run.sessions:>8} {run.rate:>8.0f} {run.pct(0.5):>8.0f} "
            f"{run.pct(0.99):>8.0f} {run.pct(0.999):>9.0f} {rt:>9} {agi:>7} {ratio:>6}"
        )
        if run.errors:
            print(f"{'':44} errors: {run.errors}")


#: What a lookup costs beyond the floor, measured apart in the same run (``redis_costs``):
#: an ``EVALSHA_RO`` of a script that returns a constant, sent with the lookup's own keys
#: and arguments (the price of running any script), and a script that does the floor's
#: ``HMGET`` and returns its reply (the price of one Redis call made from Lua).
TRIVIAL_SCRIPT = "#!lua flags=no-writes\nreturn 1\n"
HMGET_SCRIPT = (
    "#!lua flags=no-writes\n"
    "local p = {}\n"
    "for k = 1, #ARGV[6] do p[k] = string.sub(ARGV[6], 1, k) end\n"
    "return redis.call('HMGET', KEYS[1], unpack(p))\n"
)

#: the probes of ``redis_costs``, in the order printed
PROBES = ("floor", "const", "hmget_lua", "lookup", "plain", "cold")
PROBE_NAMES = {
    "floor": "(a) HMGET of the candidate prefixes (the floor)",
    "const": "(b) EVALSHA_RO of a script returning a constant",
    "hmget_lua": "    EVALSHA_RO of a script doing (a)'s HMGET",
    "lookup": "(c) the lookup (EVALSHA_RO of lookup.lua)",
    "plain": "    plain reads of lk, n:B, n:p, one round trip",
    "cold": "    HGET of the number's exact bucket of one list",
}
#: the command commandstats counts each probe under (the one the client sends)
PROBE_COMMAND = {
    "floor": "hmget",
    "const": "evalsha_ro",
    "hmget_lua": "evalsha_ro",
    "lookup": "evalsha_ro",
    "plain": "",  # three commands: their time summed
    "cold": "hget",
}


@dataclass
class Cost:
    """Redis's own figures for one probe at one concurrency, per call."""

    cpu: float  # µs of redis-server process CPU (INFO cpu), I/O included
    usec: float  # µs of command time (INFO commandstats usec_per_call), no I/O
    inner_calls: float = 0.0  # Redis commands the script ran, per call
    inner_usec: float = 0.0  # µs of them (commandstats of the commands a script calls)
    inner: dict[str, float] = field(default_factory=dict)  # command -> calls per call


def commandstats(url: str) -> dict[str, dict[str, float]]:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): value for name, value in info.items()}


def reset_stats(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.config_resetstat()
    finally:
        client.close()


async def redis_costs(
    url: str, loaded: Loaded, calls: list[tuple[str, ...]], rounds: int = 3
) -> dict[str, Any]:
    """Redis's own CPU per operation, each measured alone in this run, one at a time and
    by 64 concurrent callers over one pipelined connection (as the gateway sends
    lookups): (a) one ``HMGET`` of a number's candidate prefixes (the floor), (b) an
    ``EVALSHA_RO`` of a script returning a constant, (c) the lookup script, and for
    scale a script doing (a) and one ``HGET`` of a cold exact bucket; each as process
    CPU (``INFO cpu``) and as command time (``INFO commandstats``, which also counts
    the commands a script runs), the least of ``rounds`` rounds that alternate the
    probes (other work on a shared box only ever adds to a figure). Then the attempt
    log's writes per call (batched as the gateway batches them) and its Redis bytes per
    logged call."""
    from callscreen.callpath.decision import Decision, ScreenRequest
    from callscreen.callpath.leanredis import LeanRedis
    from callscreen.callpath.screener import Screener
    from callscreen.core.model import Result
    from callscreen.gateway.attemptlog import CallLog
    from callscreen.schema.attempts import LogSettings
    from callscreen.schema.keys import DEFAULT_BUCKETS, Keys, bucket_of
    from callscreen.schema.scripts import Script

    settings = Settings(_env_file=None, redis_url=url, default_region=REGION)  # type: ignore[call-arg]
    client = LeanRedis.from_url(url, command_timeout=10)
    premium = int(await client.call("HGET", "{cs}:lists", "premium") or 1)
    hkey = f"{{cs}}:p:{premium}"
    screener = Screener.from_settings(settings)
    lk = Keys(settings.key_tag).lookup
    trivial, in_lua = Script(TRIVIAL_SCRIPT), Script(HMGET_SCRIPT)
    requests = [
        (call[1].lstrip("+"), Direction(call[0]), call[2] if len(call) > 2 else "")
        for call in calls
    ]

    def script_args(request: tuple[str, Direction, str]) -> list[str]:
        # the lookup's own arguments (base, direction, campaign, now, all, number)
        return ["{cs}", request[1].value, request[2], str(int(time.time())), "0", request[0]]

    async def hmget(request: tuple[str, Direction, str]) -> None:
        digits = request[0]
        await client.call("HMGET", hkey, *(digits[:k] for k in range(1, len(digits) + 1)))

    async def const(request: tuple[str, Direction, str]) -> None:
        await client.evalsha(trivial, [lk], script_args(request), read_only=True)

    async def hmget_lua(request: tuple[str, Direction, str]) -> None:
        await client.evalsha(in_lua, [hkey], script_args(request), read_only=True)

    async def lookup(request: tuple[str, Direction, str]) -> None:
        await screener.lookup(request[0], request[1], request[2])

    buckets = DEFAULT_BUCKETS
    lengths = [
        int(n) for n in str(await client.call("HGET", lk, "pl") or b"", "ascii").split(",") if n
    ]

    async def plain(request: tuple[str, Direction, str]) -> None:
        # the least a decision made by the client from plain commands would read, in one
        # round trip: which lists apply, which hold the number, which hold its prefixes
        digits, direction, campaign = request
        bucket, hfield = bucket_of(int(digits), buckets)
        applies = [f"g:{direction.value}", f"c:{direction.value}:{campaign}" if campaign else "v"]
        prefixes = [digits[:n] for n in lengths if n <= len(digits)]
        reads = [
            client.call("HMGET", lk, "v", "buckets", "pl", *applies),
            client.call("HGET", f"{{cs}}:n:{bucket}", str(hfield)),
        ]
        if prefixes:
            reads.append(client.call("HMGET", "{cs}:n:p", *prefixes))
        await asyncio.gather(*reads)

    dnc = int(await client.call("HGET", "{cs}:lists", "dnc") or 1)

    async def cold(request: tuple[str, Direction, str]) -> None:
        bucket, hfield = bucket_of(int(request[0]), buckets)
        await client.call("HGET", f"{{cs}}:e:{dnc}:{bucket}", str(hfield))

    probes: dict[str, Callable[[tuple[str, Direction, str]], Any]] = {
        "floor": hmget,
        "const": const,
        "hmget_lua": hmget_lua,
        "lookup": lookup,
        "plain": plain,
        "cold": cold,
    }
    for request in requests[:200]:  # scripts loaded, connections up
        for probe in probes.values():
            await probe(request)

    async def run(concurrency: int, name: str) -> Cost:
        queue = iter(requests)
        one = probes[name]

        async def worker() -> None:
            for request in queue:
                await one(request)

        await asyncio.to_thread(reset_stats, url)
        cpu0 = await asyncio.to_thread(redis_cpu)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        idle_share = idle * (time.perf_counter() - started)
        cpu = (await asyncio.to_thread(redis_cpu) - cpu0 - idle_share) / len(requests) * 1e6
        stats = await asyncio.to_thread(commandstats, url)
        top = PROBE_COMMAND[name]
        sent = stats.get(top, {}).get("calls", 0) or 1
        cost = Cost(cpu, float(stats.get(top, {}).get("usec", 0)) / sent)
        if not top:
            measuring = ("info", "config|resetstat", "config")
            usec = sum(float(v["usec"]) for c, v in stats.items() if c not in measuring)
            cost.usec = usec / len(requests)
        if top.startswith("evalsha"):
            # what the script ran: every command counted but those sent by a client
            # (this probe's own, and the INFO/CONFIG of the measurement itself)
            for command, value in stats.items():
                if command in (top, "info", "config|resetstat", "config"):
                    continue
                cost.inner[command] = float(value["calls"]) / sent
                cost.inner_calls += float(value["calls"]) / sent
                cost.inner_usec += float(value["usec"]) / sent
        return cost

    # Redis's CPU while idle (its cron: ~10 wake-ups a second), taken off each probe:
    # one at a time, a probe lasts seconds, and that would count as calls' cost
    cpu0 = await asyncio.to_thread(redis_cpu)
    await asyncio.sleep(2)
    idle = (await asyncio.to_thread(redis_cpu) - cpu0) / 2
    out: dict[str, Any] = {"idle": idle, "rounds": rounds}
    for _round in range(rounds):
        for concurrency in (1, 64):
            for name in PROBES:
                cost = await run(concurrency, name)
                best = out.setdefault(f"{name}_{concurrency}", cost)
                best.cpu, best.usec = min(best.cpu, cost.cpu), min(best.usec, cost.usec)
    await screener.close()
    await client.close()

    sync = redis.Redis.from_url(url)
    before = used_memory(sync)
    log = CallLog(LogSettings(node="bench"), LeanRedis.from_url(url), own_client=True)
    rng = random.Random(3)
    kinds = ["dnc", "suspects", "vip", "none", "none", "none"]
    n = len(calls)
    cpu0 = await asyncio.to_thread(redis_cpu)
    log.start()
    for i in range(n):
        kind = rng.choice(kinds)
        number = rng.choice(loaded.samples[kind])
        if kind == "dnc":
            decision = Decision(Result.BLOCKED, number, "dnc", number, "bulk load")
        elif kind == "suspects":
            decision = Decision(Result.LABELED, number, "suspects", number, "bulk load")
        else:
            decision = Decision(Result.ALLOWED, number)
        request = ScreenRequest(number, Direction.OUTBOUND, "spring", f"1700000000.{i}")
        log.record(request, decision, 0)
        if i % 200 == 199:
            await asyncio.sleep(0.001)  # calls arrive over time: batches as in a gateway
    assert await log.flush(60)
    out["log"] = (await asyncio.to_thread(redis_cpu) - cpu0) / n * 1e6
    await log.stop()
    out["log_bytes"] = (used_memory(sync) - before) / n
    sync.close()
    return out


def parse_cpus(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def show_costs(costs: dict[str, Any]) -> None:
    floor1, floor64 = costs["floor_1"], costs["floor_64"]
    print(
        f"Redis CPU per call, each measured alone in this run, the least of "
        f"{costs['rounds']} rounds (µs): process CPU (INFO cpu, "
        f"I/O included, less its idle {costs['idle'] * 1e3:.1f} ms/s) / command time "
        "(INFO commandstats usec_per_call)"
    )
    print(f"{'':50} {'1 at a time':>17} {'64 concurrent':>17}")
    for name in PROBES:
        one, many = costs[f"{name}_1"], costs[f"{name}_64"]
        print(
            f"{PROBE_NAMES[name]:50} {one.cpu:>8.1f} / {one.usec:>6.2f} "
            f"{many.cpu:>8.1f} / {many.usec:>6.2f}"
        )
    for concurrency in (1, 64):
        cost = costs[f"lookup_{concurrency}"]
        inner = ", ".join(f"{c} {n:.2f}" for c, n in sorted(cost.inner.items()))
        print(
            f"  the lookup's own commands ({concurrency} at a time): {cost.inner_calls:.2f} a "
            f"call ({inner}), {cost.inner_usec:.2f} µs of its {cost.usec:.2f}"
        )
    lookup1, lookup64 = costs["lookup_1"], costs["lookup_64"]
    print(
        f"  lookup / floor, process CPU: {lookup1.cpu / floor1.cpu:.2f}× one at a time, "
        f"{lookup64.cpu / floor64.cpu:.2f}× by 64; goal ≤ 1.5×. A constant script / floor: "
        f"{costs['const_1'].cpu / floor1.cpu:.2f}× and "
        f"{costs['const_64'].cpu / floor64.cpu:.2f}×"
    )
    print(
        f"  attempt log {costs['log']:.1f} per call, batched "
        f"({costs['log'] / floor1.cpu:.2f}× the one-at-a-time floor; goal ≤ 1×); "
        f"{costs['log_bytes']:.0f} B of Redis per logged call"
    )


def side_by_side(one: Measured, many: Measured, workers: int) -> None:
    print(f"{'':28} {'1 process':>12} {f'{workers} workers':>12}")
    rows = [
        ("sessions/s (64 concurrent)", one.saturated.rate, many.saturated.rate, "{:.0f}"),
        ("p50 µs", one.saturated.pct(0.5), many.saturated.pct(0.5), "{:.0f}"),
        ("p99 µs", one.saturated.pct(0.99), many.saturated.pct(0.99), "{:.0f}"),
        ("gateway CPU µs/session", one.cpu_per_session, many.cpu_per_session, "{:.0f}"),
        ("Redis CPU µs/session", one.redis_cpu_per_session, many.redis_cpu_per_session, "{:.1f}"),
    ]
    for label, a, b, fmt in rows:
        print(f"{label:28} {fmt.format(a):>12} {fmt.format(b):>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--paced-rate", type=float, default=500.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--classic-sessions", type=int, default=100)
    parser.add_argument("--call-log", action="store_true", help="per-call INFO log line on")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the Redis CPU probes (the least kept)"
    )
    parser.add_argument(
        "--redis-only",
        action="store_true",
        help="only load the table and print Redis's CPU per call (lookup, floor, log)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also run `serve --workers N` and print it beside one process (skips the "
        "naive and classic variants)",
    )
    parser.add_argument(
        "--gateway-cpus", default="", help="taskset CPU list for the gateway (e.g. 0-1)"
    )
    parser.add_argument(
        "--client-cpus", default="", help="CPU list for this load generator (e.g. 1)"
    )
    args = parser.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, parse_cpus(args.client_cpus))

    try:
        import uvloop

        run_async = uvloop.run
    except ImportError:
        run_async = asyncio.run

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = RedisProcess(tmp / "redis")
        server.start()
        global REDIS_URL
        REDIS_URL = server.url
        try:
            client = redis.Redis(port=server.port)
            settings_env = {
                "CALLSCREEN_REDIS_URL": server.url,
                "CALLSCREEN_DEFAULT_REGION": REGION,
                "CALLSCREEN_LISTEN_HOST": HOST,
                "CALLSCREEN_LOG_LEVEL": "INFO",  # for the shutdown statistics
                "CALLSCREEN_LOG_CALLS": "true" if args.call_log else "false",
                "CALLSCREEN_DEADLINE_MS": "1000",
                "CALLSCREEN_METRICS_PORT": "0",
            }
            settings = Settings(_env_file=None, redis_url=server.url, default_region=REGION)  # type: ignore[call-arg]
            print(f"loading {args.entries:,} entries ...", flush=True)
            loaded = load_table(settings, client, args.entries, tmp)
            print(
                f"import: {loaded.entries:,} entries in {loaded.seconds:.1f} s = "
                f"{loaded.entries / loaded.seconds:,.0f} entries/s (CSV importer, approved)"
            )
            print(
                f"redis memory: {loaded.shared_bytes:.1f} B/entry with a shared reason, "
                f"{loaded.own_reason_bytes:.1f} B/entry with a reason of its own"
            )
            naive_bytes = load_naive(client, loaded, args.entries)
            print(f"naive schema (key per entry): {naive_bytes:.1f} B/entry")

            calls = workload(loaded, args.sessions)
            if args.redis_only:
                show_costs(run_async(redis_costs(server.url, loaded, calls, args.rounds)))
                return
            paced_calls = workload(loaded, int(args.paced_rate * args.paced_seconds))
            runs: list[Run] = []
            serve = [sys.executable, "-m", "callscreen", "serve"]
            if args.gateway_cpus:
                serve = ["taskset", "-c", args.gateway_cpus, *serve]
            log_state = "per-call log line on" if args.call_log else "per-call log line off"
            off = measure(
                {**settings_env, "CALLSCREEN_CALLLOG_ENABLED": "false"},
                serve, calls, args, f"callscreen, attempt log off ({log_state})", run_async,
            )  # fmt: skip
            on = measure(
                settings_env, serve, calls, args,
                f"callscreen, attempt log on ({log_state})", run_async, paced_calls,
            )  # fmt: skip
            runs += [off.saturated, on.saturated]
            if on.paced is not None:
                runs.append(on.paced)
            sat, pace = off.saturated, on.paced
            if args.workers > 1:
                many = measure(
                    settings_env, [*serve, "--workers", str(args.workers)], calls, args,
                    f"callscreen, {args.workers} workers, attempt log on", run_async,
                )  # fmt: skip
                runs.append(many.saturated)
                print()
                show(runs, sat)
                print()
                taskset = f"taskset -c {args.gateway_cpus}" if args.gateway_cpus else "any CPU"
                client = args.client_cpus or "any CPU"
                print(f"gateway on {taskset}, load generator on {client}, Redis on any CPU:")
                side_by_side(on, many, args.workers)
                return
            naive_argv = [sys.executable, str(ROOT / "bench" / "naive_gateway.py")]
            naive = measure(
                settings_env, naive_argv, calls, args,
                "naive (GET per candidate prefix)", run_async, paced_calls,
            )  # fmt: skip
            runs.append(naive.saturated)
            if naive.paced is not None:
                runs.append(naive.paced)
            classic = run_async(classic_run(settings_env, calls[: args.classic_sessions]))
            runs.append(classic)
            print()
            show(runs, sat)
            print()
            print(
                f"gateway CPU per session: {off.cpu_per_session:.0f} µs (attempt log off), "
                f"{on.cpu_per_session:.0f} µs (on), naive {naive.cpu_per_session:.0f} µs"
            )
            if on.paced_cpu_per_session is not None:
                print(
                    f"gateway CPU per session at a paced {args.paced_rate:.0f}/s (attempt log on): "
                    f"{on.paced_cpu_per_session:.0f} µs — the figure to compare with "
                    "bench/bench_asterisk.py's gateway column at the same rate"
                )
            cost = 1 - on.saturated.rate / off.saturated.rate
            print(f"attempt log cost: {cost:.1%} fewer sessions/s")

            costs = run_async(redis_costs(server.url, loaded, calls, args.rounds))
            show_costs(costs)
            lookup = off.redis_cpu_per_session
            logcost = on.redis_cpu_per_session - off.redis_cpu_per_session
            print(
                f"  in the gateway runs: {lookup:.1f} per call with the log off, "
                f"{on.redis_cpu_per_session:.1f} with it on (difference {logcost:.1f})"
            )
            if pace is not None:
                print(f"results of the paced run: {dict(sorted(pace.results.items()))}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
