"""What screening costs a real Asterisk: CPU per call from /proc, and the highest clean rate.

    .venv/bin/python bench/bench_asterisk.py --pid "$(cat /var/run/asterisk/asterisk.pid)" \\
        --conf-dir /etc/asterisk/callscreen-bench [--ami 127.0.0.1:5038 --user U --secret S]

It *uses* an Asterisk that is already running on this machine; it never builds,
installs or starts one. It needs:

- an AMI user allowed to ``Originate``, ``Command`` and ``DBPut`` (``write = call,
  system, originate`` or ``all``), given by ``--ami``/``--user``/``--secret``;
- the Asterisk's PID (``--pid`` or ``--pidfile``), to read its CPU time from /proc;
- a directory the dialplan ``#include``s or ``#tryinclude``s (``--conf-dir``, e.g.
  ``#tryinclude callscreen-bench/*.conf`` in extensions.conf): the bench writes the
  shipped ``extensions_callscreen.conf`` and its own ``callscreen-bench.conf`` there,
  then runs ``dialplan reload``.

Without a reachable Asterisk it prints why and exits 0 (it is a benchmark, not a test).

What it does:

1. starts a private redis-server with ``--entries`` entries (the same lists as
   ``bench/bench_gateway.py``) and ``callscreen serve`` on a free port (attempt log on,
   per-call log line off); puts ``--astdb-entries`` numbers in AstDB family
   ``blacklist`` for ``BLACKLIST()``;
2. runs, ``--runs`` times in alternated order, paced AMI originates of Local
   channels at ``--rate`` calls/s for ``--seconds`` into four contexts:
   ``Hangup()`` only; ``BLACKLIST()``; one bare FastAGI call to the gateway (one
   command, no Gosub); the shipped ``callscreen-inbound`` routine. For each run: the
   Asterisk CPU per call (utime + stime of its PID, every thread, from the first
   originate until its last channel is gone), the gateway's and Redis's CPU per call;
3. prints the medians with their spread (min–max) and the ratios, then the
   sustained-rate check: each rate of ``--rates`` for ``BLACKLIST()`` and the routine,
   clean when every call was answered by the gateway with outcome ``ok`` and no
   fail-policy answer (routine), every channel gone within 2 s of the last originate,
   and no originate refused.

The load generator's AMI session logs in with ``Events: off``: it receives no events,
so it does not make Asterisk raise ``Newexten``/``VarSet`` for every priority. The
generator, the gateway, Redis and Asterisk share this machine's cores: absolute
figures are a floor; compare variants within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import HOST, REGION, GatewayProcess, Loaded, load_table  # noqa: E402
from tests.support.redisproc import RedisProcess, free_port  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402

DIALPLAN = ROOT / "asterisk" / "extensions_callscreen.conf"

#: The bench's own contexts. Each is what a site would write around the screening,
#: down to the Hangup() that ends the Local channel's ;2 half.
BENCH_CONF = """\
; Written by bench/bench_asterisk.py; safe to delete.
[callscreen-bench-bare]
exten => _X.,1,Hangup()
exten => _+X.,1,Hangup()

[callscreen-bench-blacklist]
exten => _X.,1,GotoIf($[${BLACKLIST()}]?blocked)
 same => n,Hangup()
 same => n(blocked),Hangup(21)
exten => _+X.,1,GotoIf($[${BLACKLIST()}]?blocked)
 same => n,Hangup()
 same => n(blocked),Hangup(21)

[callscreen-bench-agi]
exten => _X.,1,AGI(${CALLSCREEN_URL}/screen,inbound,${CALLERID(num)},bench)
 same => n,Hangup()
exten => _+X.,1,AGI(${CALLSCREEN_URL}/screen,inbound,${CALLERID(num)},bench)
 same => n,Hangup()

[callscreen-bench-routine]
exten => _X.,1,Gosub(callscreen-inbound,s,1(bench))
 same => n,Hangup()
exten => _+X.,1,Gosub(callscreen-inbound,s,1(bench))
 same => n,Hangup()
"""

VARIANTS = {
    "bare": ("callscreen-bench-bare", "Hangup() only"),
    "blacklist": ("callscreen-bench-blacklist", "BLACKLIST() on AstDB"),
    "agi": ("callscreen-bench-agi", "bare FastAGI call, one command"),
    "routine": ("callscreen-bench-routine", "shipped callscreen-inbound"),
}
GATEWAY_VARIANTS = frozenset({"agi", "routine"})
#: The sustained rate the issue asks for (calls/s), for the CPU budget line.
GOAL_RATE = 900.0


# ------------------------------------------------------------------ AMI


class AmiError(Exception):
    """The AMI refused an action or went away."""


class Ami:
    """A minimal AMI client: actions pipelined over one connection, responses matched
    by ActionID; events are off for the session."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[str, asyncio.Future[dict[str, str | list[str]]]] = {}
        self.ids = itertools.count(1)
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, host: str, port: int, user: str, secret: str) -> Ami:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3)
        banner = await asyncio.wait_for(reader.readline(), 3)
        if not banner.startswith(b"Asterisk Call Manager"):
            raise AmiError(f"not an AMI banner: {banner!r}")
        ami = cls(reader, writer)
        ami.task = asyncio.get_running_loop().create_task(ami._read())
        response = await ami.action("Login", Username=user, Secret=secret, Events="off")
        if response.get("Response") != "Success":
            raise AmiError(f"login refused: {response.get('Message')}")
        return ami

    def send(self, action: str, **headers: str) -> asyncio.Future[dict[str, str | list[str]]]:
        action_id = str(next(self.ids))
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in headers.items():
            if key == "Variables":
                lines += [f"Variable: {pair}" for pair in value.split("|")]
            else:
                lines.append(f"{key}: {value}")
        future: asyncio.Future[dict[str, str | list[str]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[action_id] = future
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return future

    async def action(self, action: str, **headers: str) -> dict[str, str | list[str]]:
        future = self.send(action, **headers)
        await self.writer.drain()
        return await asyncio.wait_for(future, 10)

    async def command(self, command: str) -> list[str]:
        response = await self.action("Command", Command=command)
        output = response.get("Output", [])
        return output if isinstance(output, list) else [output]

    async def _read(self) -> None:
        message: dict[str, str | list[str]] = {}
        try:
            while True:
                raw = await self.reader.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line:
                    key, _, value = line.partition(": ")
                    if key == "Output":
                        output = message.setdefault("Output", [])
                        assert isinstance(output, list)
                        output.append(value)
                    else:
                        message[key] = value
                    continue
                action_id = message.get("ActionID")
                if isinstance(action_id, str) and "Response" in message:
                    future = self.pending.pop(action_id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                message = {}
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(AmiError("AMI connection closed"))

    async def close(self) -> None:
        with contextlib.suppress(AmiError, TimeoutError):
            await asyncio.wait_for(self.action("Logoff"), 2)
        self.writer.close()
        if self.task is not None:
            self.task.cancel()


# ------------------------------------------------------------------ measuring


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_totals(port: int) -> dict[str, float]:
    """The gateway's counters, ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("callscreen_") and "_total" in line:
            key, _, value = line.rpartition(" ")
            totals[key] = float(value)
    return totals


def counter_delta(before: dict[str, float], after: dict[str, float], prefix: str) -> dict[str, int]:
    return {
        key: int(after[key] - before.get(key, 0.0))
        for key in after
        if key.startswith(prefix) and after[key] != before.get(key, 0.0)
    }


_COUNT = re.compile(r"(\d+) active channels?")
_PROCESSED = re.compile(r"(\d+) calls? processed")


async def channel_counts(ami: Ami) -> tuple[int, int]:
    """(active channels, calls processed so far)."""
    text = " ".join(await ami.command("core show channels count"))
    active = _COUNT.search(text)
    processed = _PROCESSED.search(text)
    if active is None or processed is None:
        raise AmiError(f"unexpected 'core show channels count' output: {text!r}")
    return int(active.group(1)), int(processed.group(1))


@dataclass
class Sample:
    variant: str
    rate: float
    calls: int = 0
    processed: int = 0
    refused: int = 0
    drain_s: float = 0.0
    asterisk_us: float = 0.0
    gateway_us: float | None = None
    redis_us: float | None = None
    answered_ok: int | None = None
    not_ok: dict[str, int] = field(default_factory=dict)
    fail_answers: int | None = None
    overrun: bool = False  # stopped early: Asterisk had fallen behind
    load: float = 0.0  # the box's 1-minute load average at the end of the run

    @property
    def clean(self) -> bool:
        if self.overrun or self.refused or self.processed < self.calls or self.drain_s > 2.0:
            return False
        if self.answered_ok is not None:
            return self.answered_ok == self.calls and not self.not_ok and not self.fail_answers
        return True


@dataclass
class Bench:
    ami: Ami
    pid: int
    numbers: list[str]
    gateway: GatewayProcess | None = None
    metrics_port: int = 0
    redis_pid: int | None = None

    def cycle(self) -> Iterator[str]:
        return itertools.cycle(self.numbers)

    async def run(self, variant: str, rate: float, seconds: float) -> Sample:
        context, _ = VARIANTS[variant]
        sample = Sample(variant, rate)
        numbers = self.cycle()
        url = f"agi://{HOST}:{self.gateway.port}" if self.gateway is not None else ""
        total = int(rate * seconds)
        _, processed0 = await channel_counts(self.ami)
        metrics0 = metric_totals(self.metrics_port) if self.gateway is not None else {}
        gw0 = self.gateway.cpu_seconds() if self.gateway is not None else 0.0
        redis0 = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        cpu0 = cpu_seconds(self.pid)
        loop = asyncio.get_running_loop()
        start = loop.time()
        futures = []
        sent = 0
        next_check = int(rate / 2)
        while sent < total:
            due = min(total, int((loop.time() - start) * rate) + 1)
            while sent < due:
                number = next(numbers)
                futures.append(
                    self.ami.send(
                        "Originate",
                        Channel=f"Local/{number.lstrip('+')}@{context}",
                        Application="NoOp",
                        CallerID=f'"Bench" <{number}>',
                        Async="true",
                        Variables=f"CALLSCREEN_URL={url}" if url else "X=1",
                    )
                )
                sent += 1
            await self.ami.writer.drain()
            await asyncio.sleep(0.005)
            if sent >= next_check:
                # Past about two seconds' worth of calls in progress Asterisk is not
                # keeping up: stop before it runs out of threads and descriptors.
                next_check += max(int(rate / 2), 1)
                active, _ = await channel_counts(self.ami)
                if active > 4 * rate:
                    sample.overrun = True
                    total = sent
                    break
        last = loop.time()
        responses = await asyncio.gather(*futures, return_exceptions=True)
        sample.refused = sum(
            1 for r in responses if isinstance(r, BaseException) or r.get("Response") != "Success"
        )
        while True:
            active, processed = await channel_counts(self.ami)
            if active == 0 or loop.time() - last > 30:
                break
            await asyncio.sleep(0.05)
        sample.drain_s = loop.time() - last
        sample.load = os.getloadavg()[0]
        sample.calls = total
        sample.asterisk_us = (cpu_seconds(self.pid) - cpu0) / total * 1e6
        if self.redis_pid:
            sample.redis_us = (cpu_seconds(self.redis_pid) - redis0) / total * 1e6
        sample.processed = processed - processed0
        if self.gateway is not None and variant in GATEWAY_VARIANTS:
            sample.gateway_us = (self.gateway.cpu_seconds() - gw0) / total * 1e6
            # the last answers' replies may still be on their way
            deadline = loop.time() + 5
            while True:
                metrics1 = metric_totals(self.metrics_port)
                calls = counter_delta(metrics0, metrics1, "callscreen_calls_total")
                if sum(calls.values()) >= total or loop.time() > deadline:
                    break
                await asyncio.sleep(0.1)
            sample.answered_ok = sum(n for key, n in calls.items() if 'outcome="ok"' in key)
            sample.not_ok = {k: n for k, n in calls.items() if 'outcome="ok"' not in k}
            fails = counter_delta(metrics0, metrics1, "callscreen_fail_answers_total")
            sample.fail_answers = sum(fails.values())
        else:
            sample.redis_us = None
        return sample


# ------------------------------------------------------------------ set-up


async def fill_astdb(ami: Ami, numbers: list[str]) -> None:
    """``numbers`` in AstDB family ``blacklist`` (skipped when the last one is there)."""
    marker = await ami.action("DBGet", Family="blacklist", Key=numbers[-1])
    if marker.get("Response") == "Success":
        return
    for start in range(0, len(numbers), 2000):
        batch = [
            ami.send("DBPut", Family="blacklist", Key=n, Val="1")
            for n in numbers[start : start + 2000]
        ]
        await ami.writer.drain()
        await asyncio.gather(*batch)


def call_numbers(loaded: Loaded, astdb: list[str], count: int) -> list[str]:
    """Inbound caller IDs: blocked, labeled, allowed and unlisted numbers of the table,
    one in eight also in AstDB's blacklist, shuffled with a fixed seed."""
    rng = random.Random(5)
    kinds = ["dnc", "suspects", "vip", "premium", "none", "none", "none"]
    numbers = [rng.choice(loaded.samples[rng.choice(kinds)]) for _ in range(count)]
    for i in range(0, count, 8):
        numbers[i] = rng.choice(astdb)
    return numbers


def show(samples: dict[str, list[Sample]], rate: float, seconds: float, runs: int) -> None:
    def spread(values: list[float]) -> str:
        if not values:
            return "–"
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"

    print()
    print(
        f"CPU per call at {rate:.0f} calls/s, {seconds:.0f} s runs, median (min–max) "
        f"of {runs} alternated runs"
    )
    header = (
        f"| {'variant':34} | {'Asterisk µs/call':>22} | {'gateway µs':>18} | {'Redis µs':>14} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part) + 0) for part in header.split("|")[1:-1]) + "|")
    for variant, (_, title) in VARIANTS.items():
        rows = samples.get(variant, [])
        if not rows:
            continue
        gw = [s.gateway_us for s in rows if s.gateway_us is not None]
        rd = [s.redis_us for s in rows if s.redis_us is not None and variant in GATEWAY_VARIANTS]
        print(
            f"| {title:34} | {spread([s.asterisk_us for s in rows]):>22} | "
            f"{spread(gw):>18} | {spread(rd):>14} |"
        )
    # A run in which Asterisk fell behind (channels piling up while the box was busy
    # with other work) costs more per call whatever the dialplan: the ratios are
    # given over every run and over the clean runs only.
    for label, keep in (("all runs", lambda s: True), ("clean runs", lambda s: s.clean)):
        med = {
            v: statistics.median(x.asterisk_us for x in rows if keep(x))
            for v, rows in samples.items()
            if any(keep(x) for x in rows)
        }
        ratios = []
        if "agi" in med and "routine" in med:
            ratios.append(
                f"routine / bare FastAGI call {med['routine'] / med['agi']:.2f} (goal ≤ 1.2)"
            )
        if "bare" in med and "routine" in med:
            ratios.append(f"routine - Hangup() only {med['routine'] - med['bare']:,.0f} µs")
        if "blacklist" in med and "routine" in med:
            ratios.append(f"routine / BLACKLIST() {med['routine'] / med['blacklist']:.2f}")
        counts = {v: sum(1 for x in rows if keep(x)) for v, rows in samples.items()}
        print(f"{label} {counts}: " + "; ".join(ratios))
    routine = samples.get("routine", [])
    if routine:
        # What the goal's rate asks of the box's cores, from the routine's own runs.
        per_call = statistics.median(
            s.asterisk_us + (s.gateway_us or 0.0) + (s.redis_us or 0.0) for s in routine
        )
        print(
            f"CPU per routine call, Asterisk + gateway + Redis: {per_call:,.0f} µs: "
            f"{GOAL_RATE:.0f} calls/s need {per_call * GOAL_RATE / 1e6:.2f} of this box's "
            f"{os.cpu_count()} cores (the load generator not counted)"
        )
    loads = [s.load for rows in samples.values() for s in rows]
    if loads:
        print(f"load average (1 min) at the end of the runs: {min(loads):.1f}–{max(loads):.1f}")
    unclean = [s for rows in samples.values() for s in rows if not s.clean]
    for s in unclean:
        print(f"  not clean: {describe(s)}")


def describe(s: Sample) -> str:
    parts = [
        f"{s.variant} at {s.rate:.0f}/s: {s.calls} originated, {s.processed} processed",
        f"refused {s.refused}",
        f"drain {s.drain_s:.2f} s",
        f"load {s.load:.1f}",
    ]
    if s.overrun:
        parts.append("stopped early: more than 2 s of calls in progress")
    if s.answered_ok is not None:
        parts.append(f"gateway ok {s.answered_ok}, fail answers {s.fail_answers}")
        if s.not_ok:
            parts.append(f"other outcomes {s.not_ok}")
    return "; ".join(parts)


async def bench(args: argparse.Namespace, tmp: Path) -> int:
    host, _, port = args.ami.rpartition(":")
    try:
        ami = await Ami.connect(host, int(port), args.user, args.secret)
    except (OSError, TimeoutError, AmiError) as exc:
        print(f"skipped: no Asterisk AMI reachable at {args.ami} ({exc})")
        return 0
    pid = args.pid
    if pid is None and args.pidfile:
        pid = int(Path(args.pidfile).read_text().strip())
    if pid is None or not Path(f"/proc/{pid}/stat").exists():
        print("skipped: give the PID of that Asterisk (--pid or --pidfile) on this machine")
        await ami.close()
        return 0
    version = " ".join(await ami.command("core show version"))
    print(f"Asterisk: {version.strip()} (PID {pid})")

    conf_dir = Path(args.conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(DIALPLAN, conf_dir / DIALPLAN.name)
    (conf_dir / "callscreen-bench.conf").write_text(BENCH_CONF)
    await ami.command("dialplan reload")
    shown = " ".join(await ami.command("dialplan show callscreen-bench-routine"))
    if "callscreen-inbound" not in shown:
        print(f"the bench contexts did not load: is {conf_dir}/*.conf included? ({shown[:200]})")
        await ami.close()
        return 1

    rng = random.Random(3)
    astdb = [f"+3361{n:07d}" for n in rng.sample(range(10_000_000), args.astdb_entries)]
    print(f"AstDB: {len(astdb):,} numbers in family 'blacklist' ...", flush=True)
    await fill_astdb(ami, astdb)

    server = RedisProcess(tmp / "redis")
    server.start()
    try:
        client = redis.Redis(port=server.port)
        settings = Settings(_env_file=None, redis_url=server.url, default_region=REGION)  # type: ignore[call-arg]
        print(f"Redis: loading {args.entries:,} entries ...", flush=True)
        # load_table runs the services in an event loop of its own: not in this one
        loaded = await asyncio.to_thread(load_table, settings, client, args.entries, tmp)
        client.close()
        metrics_port = free_port()
        env = {
            "CALLSCREEN_REDIS_URL": server.url,
            "CALLSCREEN_DEFAULT_REGION": REGION,
            "CALLSCREEN_LISTEN_HOST": HOST,
            "CALLSCREEN_LOG_CALLS": "false",
            "CALLSCREEN_METRICS_PORT": str(metrics_port),
            "CALLSCREEN_AMI_HOST": "",
        }
        argv = [sys.executable, "-m", "callscreen", "serve"]
        with GatewayProcess(env, argv) as gateway:
            runner = Bench(
                ami,
                pid,
                call_numbers(loaded, astdb, 20_000),
                gateway,
                metrics_port,
                server.proc.pid if server.proc is not None else None,
            )
            print(f"gateway: PID {gateway.proc.pid if gateway.proc else '?'}, port {gateway.port}")
            for variant in VARIANTS:  # warm-up: caches, the gateway's first connection
                await runner.run(variant, min(args.rate, 200), 1)
            samples: dict[str, list[Sample]] = {}
            order = list(args.variants)
            for round_ in range(args.runs):
                for variant in order[round_ % len(order) :] + order[: round_ % len(order)]:
                    sample = await runner.run(variant, args.rate, args.seconds)
                    samples.setdefault(variant, []).append(sample)
                    gw = f", gateway {sample.gateway_us:.0f} µs" if sample.gateway_us else ""
                    print(
                        f"  run {round_ + 1} {variant:9} Asterisk {sample.asterisk_us:,.0f} µs/call"
                        f"{gw}, load {sample.load:.1f}"
                        f"{'' if sample.clean else '  NOT CLEAN: ' + describe(sample)}",
                        flush=True,
                    )
            show(samples, args.rate, args.seconds, args.runs)
            if args.rates:
                print()
                print(f"sustained rate ({args.seconds:.0f} s per point):")
                for variant in ("blacklist", "routine"):
                    best = 0.0
                    for rate in args.rates:
                        sample = await runner.run(variant, rate, args.seconds)
                        state = "clean" if sample.clean else "NOT clean"
                        gw = f", gateway {sample.gateway_us:.0f} µs" if sample.gateway_us else ""
                        print(
                            f"  {variant:9} {rate:6.0f}/s {state:9} Asterisk "
                            f"{sample.asterisk_us:,.0f} µs/call{gw}; {describe(sample)}",
                            flush=True,
                        )
                        if not sample.clean:
                            break
                        best = rate
                    print(f"  {variant}: highest clean rate tried {best:.0f}/s")
    finally:
        server.stop()
        await ami.close()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ami", default="127.0.0.1:5038", help="AMI host:port")
    parser.add_argument("--user", default=os.environ.get("CALLSCREEN_BENCH_AMI_USER", "bench"))
    parser.add_argument("--secret", default=os.environ.get("CALLSCREEN_BENCH_AMI_SECRET", "bench"))
    parser.add_argument("--pid", type=int, help="the Asterisk's PID")
    parser.add_argument("--pidfile", help="or the file holding it")
    parser.add_argument("--conf-dir", required=True, help="a directory the dialplan includes")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--astdb-entries", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=600.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--variants",
        type=lambda text: text.split(","),
        default=list(VARIANTS),
        help="comma-separated, of: " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",") if r],
        default=[900.0, 1000.0, 1200.0],
        help="sustained-rate points, comma-separated ('' to skip)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    with tempfile.TemporaryDirectory() as tmpdir:
        sys.exit(run(bench(args, Path(tmpdir))))


if __name__ == "__main__":
    main()
