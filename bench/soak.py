"""Soak and fault suite: the gateway on its worst day, bounded in time, loopback only.

    .venv/bin/python bench/soak.py            # everything, about 6 minutes on 2 cores
    .venv/bin/python bench/soak.py --quick    # the same phases scaled down, under 2 minutes

Each phase starts ``callscreen serve`` in a process of its own (uvloop, per-call log
line off, metrics on a free loopback port) over real redis-servers it starts, loads
a table through the admin service, and drives the gateway with fake-Asterisk
sessions (``tests/support/agiclient.py``'s faithful MSet parser reads every answer):

a. **steady**: ``--sessions`` (200,000) sessions at a steady ``--rate`` (1,000/s);
   the gateway's resident memory is read after the warm-up, half-way and at the end;
b. **redis restarts**: a Redis with an append-only file killed (SIGKILL) and
   restarted twice during ``--restart-sessions`` sessions;
c. **sentinel failover**: a primary, a replica and a Sentinel; the primary is
   killed during ``--failover-sessions`` sessions and the Sentinel promotes the
   replica (``--failover command`` uses ``SENTINEL FAILOVER`` instead);
d. **hostile**: ``--connections`` (2,000) connections open at once, 10 % of them
   hostile (slow-loris, idle, garbage, oversized lines, Asterisks that never
   reply), beside a quiet run with the normal connections only. Normal sessions
   keep their channel ``--hold`` seconds before replying, so that many stay open;
e. **fuzz**: hypothesis, for ``--fuzz-seconds``, on the AGI session, environment
   and reply parsers, the MSet escaping, and number normalization;
f. **floods** (``tests/flood.py`` in a process of its own), each for
   ``--flood-seconds`` with sessions at ``--flood-rate`` beside it:
   *per-peer*: idle sockets from 127.0.0.3–127.0.0.60, reopened as soon as they are
   closed, ``--flood-sockets`` in all (past ``max_connections``, 2,000);
   *opt-outs*: 300 opt-outs against a spool of 5,000 queued call files (300 of them to
   the numbers opted out, cancelled; the others kept);
   *metrics port*: 700 idle connections to the metrics endpoint, reopened as closed.

Asserted (the run fails, exit code 1, listing every failed check): every session got
an answer; every answer right for its number, or — only while Redis was down or
failing over — the fail-policy answer; none of them after recovery; every answer
within the deadline (plus ``--slack-ms`` for the client's own scheduling); every
hostile connection closed by the gateway; the gateway's metrics endpoint counting
exactly the calls made; the gateway exiting 0 on SIGTERM; no fuzz crash. The attempt
log is checked (nothing dropped, every call written) when the gateway runs one.
Timings and memory are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.services import with_services  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.support.agiclient import build_env, mset_variables  # noqa: E402
from tests.support.redisproc import RedisProcess, free_port  # noqa: E402
from tests.support.sentinelproc import SentinelSet  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Direction  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402

HOST = "127.0.0.1"
REGION = "FR"
FAIL_PREFIX = "screening unavailable"

Run = Callable[[Awaitable[Any]], Any]  # runs a coroutine on the soak's event loop


# ------------------------------------------------------------------ checks


class Checks:
    """Assertions that do not stop the run: every failure is listed at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def __call__(self, condition: bool, message: str) -> bool:
        if condition:
            self.passed += 1
        else:
            self.failures.append(message)
            print(f"  FAILED: {message}", flush=True)
        return condition


check = Checks()


# ------------------------------------------------------------------ the table


@dataclass(frozen=True, slots=True)
class Spec:
    """One session: the dialplan's arguments and the answer it must get."""

    direction: str
    number: str
    expected: str


class Table:
    """Lists of every kind, and numbers whose answer is known: exact entries, a
    direction-limited list, prefixes with an allow exception, anonymous callers,
    emergency numbers, numbers on no list."""

    def __init__(self, rng: random.Random, size: int) -> None:
        def numbers(prefix: str, n: int) -> list[str]:
            return [f"{prefix}{d:07d}" for d in rng.sample(range(10_000_000), n)]

        self.dnc = numbers("+3361", size)
        self.suspects = numbers("+3362", size // 2)
        self.inbound_spam = numbers("+3366", size // 4)
        self.unlisted = numbers("+3367", size)
        self.rng = rng

    def load(self, settings: Settings) -> None:
        async def load(s: Services) -> None:
            await s.lists.create_list("dnc", Action.BLOCK)
            await s.lists.create_list("suspects", Action.LABEL)
            await s.lists.create_list("inbound-spam", Action.BLOCK, Direction.INBOUND)
            await s.lists.create_list("premium", Action.BLOCK)
            await s.lists.create_list("partners", Action.ALLOW)
            for name, entries in (
                ("dnc", self.dnc),
                ("suspects", self.suspects),
                ("inbound-spam", self.inbound_spam),
                ("premium", ["+33899*", "+33897*"]),
                ("partners", ["+33899123*"]),
            ):
                for i in range(0, len(entries), 1000):
                    await s.entries.add(name, entries[i : i + 1000], reason=f"soak {name}")

        with_services(settings, load)

    def spec(self) -> Spec:
        rng = self.rng
        direction = "inbound" if rng.random() < 0.5 else "outbound"
        kind = rng.random()
        if kind < 0.25:
            return Spec(direction, rng.choice(self.dnc), "BLOCKED")
        if kind < 0.35:
            return Spec(direction, rng.choice(self.suspects), "LABELED")
        if kind < 0.45:
            expected = "BLOCKED" if direction == "inbound" else "ALLOWED"
            return Spec(direction, rng.choice(self.inbound_spam), expected)
        if kind < 0.52:
            digits = f"{rng.randrange(10**6):06d}"
            expected = "ALLOWED" if digits.startswith("123") else "BLOCKED"  # +33899123*
            return Spec(direction, f"+33899{digits}", expected)
        if kind < 0.55:
            return Spec(direction, f"+33899123{rng.randrange(1000):03d}", "ALLOWED")
        if kind < 0.58:
            return Spec(direction, f"+33897{rng.randrange(10**6):06d}", "BLOCKED")
        if kind < 0.60:
            return Spec("inbound", "anonymous", "ALLOWED")  # anonymous policy: allow
        if kind < 0.61:
            return Spec("outbound", "112", "ALLOWED")  # emergency: never blocked
        return Spec(direction, rng.choice(self.unlisted), "ALLOWED")

    def specs(self) -> Iterator[Spec]:
        while True:
            yield self.spec()


def gateway_settings(**values: object) -> Settings:
    return Settings(_env_file=None, default_region=REGION, **values)  # type: ignore[arg-type]


# ------------------------------------------------------------------ fake Asterisk


class _Call(asyncio.Protocol):
    """One FastAGI session as Asterisk runs it: the environment at once, the answer
    line read, ``200 result=0`` after ``hold`` seconds, then the gateway closes."""

    def __init__(self, env: bytes, hold: float, done: asyncio.Future[None]) -> None:
        self.env = env
        self.hold = hold
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.line: bytes | None = None
        self.sent = 0.0
        self.answered = 0.0
        self.closed_by_server = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent = time.perf_counter()
        self.transport.write(self.env)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.line is not None:
            return
        self.buffer += data
        end = self.buffer.find(b"\n")
        if end < 0:
            return
        self.line = self.buffer[: end + 1]
        self.answered = time.perf_counter()
        if self.hold:
            asyncio.get_running_loop().call_later(self.hold, self._reply)
        else:
            self._reply()

    def _reply(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"200 result=0\n")

    def eof_received(self) -> bool:
        self.closed_by_server = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.closed_by_server = True
        if not self.done.done():
            self.done.set_result(None)


@dataclass(slots=True)
class Outcome:
    started: float  # perf_counter
    latency: float | None  # env sent -> answer line, None: no answer
    status: str  # right | failed | wrong | unanswered
    result: str = ""
    detail: str = ""


def judge(spec: Spec, call: _Call | None, error: str = "") -> Outcome:
    if call is None or call.line is None:
        started = call.sent if call is not None else time.perf_counter()
        return Outcome(started, None, "unanswered", detail=error or "closed without an answer")
    latency = call.answered - call.sent
    try:
        variables = mset_variables(call.line)
    except ValueError as exc:
        return Outcome(call.sent, latency, "wrong", detail=f"not an MSet: {exc}")
    result = variables.get("CALLSCREEN_RESULT", "")
    reason = variables.get("CALLSCREEN_REASON", "")
    if reason.startswith(FAIL_PREFIX) and result == "UNSCREENED":
        return Outcome(call.sent, latency, "failed", result, reason)
    if result == spec.expected:
        return Outcome(call.sent, latency, "right", result)
    detail = f"{spec.direction} {spec.number}: {result} ({reason}), expected {spec.expected}"
    return Outcome(call.sent, latency, "wrong", result, detail)


async def session(port: int, spec: Spec, uid: str, hold: float = 0.0) -> Outcome:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    env = build_env(port=port, args=(spec.direction, spec.number), uniqueid=uid)
    call = _Call(env, hold, done)
    try:
        transport, _ = await loop.create_connection(lambda: call, HOST, port)
    except OSError as exc:
        return judge(spec, None, f"connect: {exc}")
    try:
        async with asyncio.timeout(10 + hold):
            await done
    except TimeoutError:
        transport.abort()
        return judge(spec, None, "no close within 10 s")
    return judge(spec, call)


# ------------------------------------------------------------------ the gateway


class GatewayProcess:
    """``callscreen serve`` in its own process, on free loopback ports."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        self.env = {
            **clean,
            "CALLSCREEN_LISTEN_HOST": HOST,
            "CALLSCREEN_LISTEN_PORT": str(self.port),
            "CALLSCREEN_METRICS_HOST": HOST,
            "CALLSCREEN_METRICS_PORT": str(self.metrics_port),
            "CALLSCREEN_DEFAULT_REGION": REGION,
            "CALLSCREEN_LOG_CALLS": "false",
            **env,
        }
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callscreen", "serve"],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the gateway exited:\n" + self.output())
            try:
                fetch(f"http://{HOST}:{self.metrics_port}/metrics")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start:\n" + self.output()) from None
                time.sleep(0.1)

    def rss_mb(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = fetch(f"http://{HOST}:{self.metrics_port}/metrics")
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_note(gateway: GatewayProcess, since: tuple[float, float], sessions: int) -> str:
    """CPU per session of the gateway and of this load generator since ``since``."""
    gateway_cpu = gateway.cpu_seconds() - since[0]
    client_cpu = own_cpu_seconds() - since[1]
    n = max(sessions, 1)
    return (
        f"CPU per session: gateway {gateway_cpu / n * 1e6:.0f} µs, "
        f"load generator {client_cpu / n * 1e6:.0f} µs"
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def metric_sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


# ------------------------------------------------------------------ results


@dataclass
class PhaseResult:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    deadline: float = 0.2
    rss: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def latencies(self) -> list[float]:
        return sorted(o.latency for o in self.outcomes if o.latency is not None)

    def pct(self, q: float) -> float:
        values = self.latencies()
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    def in_deadline(self, slack: float) -> int:
        limit = self.deadline + slack
        return sum(1 for o in self.outcomes if o.latency is not None and o.latency <= limit)


def common_checks(result: PhaseResult, slack: float, *, fails_allowed: bool = False) -> None:
    name = result.name
    n = len(result.outcomes)
    unanswered = [o for o in result.outcomes if o.status == "unanswered"]
    check(
        not unanswered,
        f"{name}: {len(unanswered)} of {n} sessions got no answer"
        + (f" (first: {unanswered[0].detail})" if unanswered else ""),
    )
    wrong = [o for o in result.outcomes if o.status == "wrong"]
    check(
        not wrong,
        f"{name}: {len(wrong)} wrong answers" + (f" (first: {wrong[0].detail})" if wrong else ""),
    )
    late = n - len(unanswered) - result.in_deadline(slack)
    check(
        late == 0,
        f"{name}: {late} answers later than the deadline + {slack * 1000:g} ms "
        f"(slowest {max(result.latencies(), default=0) * 1000:.0f} ms)",
    )
    if not fails_allowed:
        check(result.count("failed") == 0, f"{name}: {result.count('failed')} fail-policy answers")


def metrics_checks(result: PhaseResult, gateway: GatewayProcess, extra_answered: int = 0) -> None:
    """The gateway's own counts equal the client's (what `curl /metrics` shows)."""
    samples = gateway.metrics()
    answered = sum(1 for o in result.outcomes if o.latency is not None) + extra_answered
    calls = metric_sum(samples, "callscreen_calls_total", script="screen")
    decided = metric_sum(samples, "callscreen_decisions_total", script="screen")
    fails = metric_sum(samples, "callscreen_fail_answers_total", script="screen")
    check(calls == answered, f"{result.name}: metrics count {calls:.0f} calls, made {answered}")
    check(
        decided + fails == answered,
        f"{result.name}: metrics {decided:.0f} decisions + {fails:.0f} fail answers, "
        f"made {answered}",
    )
    check(
        fails == result.count("failed"),
        f"{result.name}: metrics {fails:.0f} fail answers, seen {result.count('failed')}",
    )
    by_result = Counter(o.result for o in result.outcomes if o.status == "right")
    for value, n in by_result.items():
        got = metric_sum(samples, "callscreen_decisions_total", script="screen", result=value)
        if extra_answered == 0:
            check(got == n, f"{result.name}: metrics {got:.0f} {value}, seen {n}")
    if any(name == "callscreen_log_backlog" for name, _ in samples):
        wait_for_log(gateway, result, answered)
    else:
        result.notes.append("attempt log: not run by this gateway (not checked)")


def wait_for_log(gateway: GatewayProcess, result: PhaseResult, answered: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        samples = gateway.metrics()
        backlog = metric_sum(samples, "callscreen_log_backlog")
        if backlog == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    written = metric_sum(samples, "callscreen_log_written_total")
    dropped = metric_sum(samples, "callscreen_log_dropped_total")
    check(
        backlog == 0 and dropped == 0,
        f"{result.name}: attempt log backlog {backlog:.0f}, dropped {dropped:.0f}",
    )
    check(written >= answered, f"{result.name}: attempt log wrote {written:.0f} of {answered}")
    result.notes.append(f"attempt log: {written:.0f} written, {dropped:.0f} dropped")


def outage_checks(result: PhaseResult, events: list[tuple[str, float]]) -> None:
    """Fail answers only between a fault and the first right answer once Redis is back
    (restarted, or failed over); none for a call started after that."""
    outcomes = sorted(result.outcomes, key=lambda o: o.started)
    faults = [t for kind, t in events if kind == "fault"]
    ups = [t for kind, t in events if kind == "up"]
    for i, (fault, up) in enumerate(zip(faults, ups, strict=False)):
        after = [o for o in outcomes if o.started >= up and o.status == "right"]
        if not check(bool(after), f"{result.name}: screening never resumed after fault {i + 1}"):
            continue
        recovered = after[0].started + (after[0].latency or 0)
        failed = [
            o
            for o in outcomes
            if fault <= o.started + (o.latency or 0)
            and o.started < recovered
            and o.status == "failed"
        ]
        result.notes.append(
            f"fault {i + 1}: Redis back after {up - fault:.2f} s, right answers after "
            f"{recovered - fault:.2f} s; {len(failed)} fail answers"
        )
        nxt = faults[i + 1] if i + 1 < len(faults) else float("inf")
        late = [o for o in outcomes if recovered <= o.started < nxt and o.status == "failed"]
        check(
            not late,
            f"{result.name}: {len(late)} fail answers after recovery from fault {i + 1}"
            + (f" (first: {late[0].detail})" if late else ""),
        )
    first = faults[0] if faults else float("inf")
    # a call in flight when Redis went away may fail: only those answered before count
    early = [o for o in outcomes if o.started + (o.latency or 0) < first and o.status == "failed"]
    check(
        not early,
        f"{result.name}: {len(early)} fail answers before any fault"
        + (f" (first: {early[0].detail})" if early else ""),
    )


# ------------------------------------------------------------------ load shapes


async def steady(
    port: int,
    specs: Iterator[Spec],
    n: int,
    rate: float,
    result: PhaseResult,
    at_progress: dict[float, Callable[[], object]] | None = None,
) -> None:
    """``n`` sessions started at a steady ``rate`` (open loop), with callbacks run in
    the background when given fractions of them have started."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Outcome]] = set()
    hooks = sorted((at_progress or {}).items())
    background: list[asyncio.Task[object]] = []
    start = loop.time()
    for i in range(n):
        while hooks and i >= hooks[0][0] * n:
            hook = hooks.pop(0)[1]
            background.append(loop.create_task(asyncio.to_thread(hook)))
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(session(port, next(specs), f"soak.{i}"))
        pending.add(task)
        task.add_done_callback(lambda t: (pending.discard(t), result.outcomes.append(t.result())))
    while pending:
        await asyncio.sleep(0.05)
    for task in background:
        await task


# ------------------------------------------------------------------ floods


def start_flood(port: int, *args: str) -> subprocess.Popen[bytes]:
    """``tests/flood.py`` in a process of its own; returns once its sockets are open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.flood", "idle", HOST, str(port), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # {"ready": N}
    return proc


def flood_counts(proc: subprocess.Popen[bytes]) -> str:
    out, _ = proc.communicate(timeout=120)
    return out.decode().strip().splitlines()[-1] if out.strip() else "{}"


def phase_floods(args: argparse.Namespace, tmp: Path, run: Run) -> list[PhaseResult]:
    seconds, rate = args.flood_seconds, args.flood_rate
    n = int(seconds * rate)
    print(f"\n[f] floods: {seconds:g} s each, {n:,} sessions beside each", flush=True)
    redis_server = RedisProcess(tmp / "f-redis")
    redis_server.start()
    results: list[PhaseResult] = []
    spool = tmp / "f-spool"
    spool.mkdir()
    try:
        table = Table(random.Random(6), args.table_size)
        table.load(gateway_settings(redis_url=redis_server.url))
        base = {
            "CALLSCREEN_REDIS_URL": redis_server.url,
            "CALLSCREEN_DEADLINE_MS": str(args.deadline_ms),
            "CALLSCREEN_SPOOL_DIR": str(spool),
            "CALLSCREEN_OPTOUT_BURST": "1000",
        }

        # per-peer idle flood
        result = PhaseResult("f per-peer idle flood", deadline=args.deadline_ms / 1000)
        gateway = GatewayProcess(tmp / "f1-gw", base)
        gateway.start()
        try:
            per_source = max(1, args.flood_sockets // 58)
            flood = start_flood(
                gateway.port, "--per-source", str(per_source), "--seconds", str(seconds)
            )
            run(steady(gateway.port, table.specs(), n, rate, result))
            result.notes.append(f"{58 * per_source:,} idle sockets: {flood_counts(flood)}")
            samples = gateway.metrics()
            closed = sum(
                metric_sum(samples, "callscreen_unanswered_total", reason=r)
                for r in ("evicted", "idle")
            )
            result.notes.append(f"idle connections closed by the gateway: {closed:,.0f}")
            common_checks(result, args.slack_ms / 1000)
        finally:
            check(gateway.stop() == 0, "f per-peer: the gateway did not exit 0")
        results.append(result)

        # opt-out flood against 5,000 queued call files
        result = PhaseResult("f opt-outs, 5,000 call files", deadline=args.deadline_ms / 1000)
        opted = [f"+3368{i:07d}" for i in range(300)]
        when = time.time() + 3600
        for i, number in enumerate(opted + [f"+3369{i:07d}" for i in range(4700)]):
            path = spool / f"call-{i:05d}.call"
            path.write_text(f"Channel: PJSIP/{number}@trunk\nContext: out\nExtension: s\n")
            os.utime(path, (when, when))
        gateway = GatewayProcess(tmp / "f2-gw", base)
        gateway.start()
        try:

            async def opt_outs() -> list[Outcome]:
                await asyncio.sleep(0.2)
                out: list[Outcome] = []
                for start in range(0, len(opted), 10):
                    batch = opted[start : start + 10]
                    out += await asyncio.gather(
                        *(optout_session(gateway.port, number) for number in batch)
                    )
                return out

            async def both() -> list[Outcome]:
                optouts, _ = await asyncio.gather(
                    opt_outs(), steady(gateway.port, table.specs(), n, rate, result)
                )
                return optouts

            optouts = run(both())
            blocked = sum(1 for o in optouts if o.result == "BLOCKED")
            check(blocked == 300, f"f opt-outs: {blocked} of 300 opt-outs recorded")
            deadline = time.monotonic() + 120
            while len(list(spool.glob("*.call"))) > 4700 and time.monotonic() < deadline:
                time.sleep(0.2)
            left = len(list(spool.glob("*.call")))
            check(left == 4700, f"f opt-outs: {left} call files left, 4,700 expected")
            result.notes.append(f"300 opt-outs recorded; call files left {left:,} of 5,000")
            common_checks(result, args.slack_ms / 1000)
        finally:
            check(gateway.stop() == 0, "f opt-outs: the gateway did not exit 0")
        results.append(result)

        # metrics-port flood
        result = PhaseResult("f metrics-port flood", deadline=args.deadline_ms / 1000)
        gateway = GatewayProcess(tmp / "f3-gw", base)
        gateway.start()
        try:
            flood = start_flood(
                gateway.metrics_port,
                "--per-source", "14", "--sources", "127.0.0.3-127.0.0.52",
                "--seconds", str(seconds), "--reopen-delay", "0.05",
            )  # fmt: skip
            run(steady(gateway.port, table.specs(), n, rate, result))
            result.notes.append(f"700 idle metrics connections: {flood_counts(flood)}")
            common_checks(result, args.slack_ms / 1000)
        finally:
            check(gateway.stop() == 0, "f metrics: the gateway did not exit 0")
        results.append(result)
    finally:
        redis_server.stop()
    return results


async def optout_session(port: int, number: str) -> Outcome:
    """One opt-out: ``Outcome.result`` is its answer's result."""
    spec = Spec("outbound", number, "BLOCKED")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    env = build_env(port=port, script="optout", args=("outbound", number), uniqueid="o")
    call = _Call(env, 0.0, done)
    try:
        transport, _ = await loop.create_connection(lambda: call, HOST, port)
    except OSError as exc:
        return judge(spec, None, f"connect: {exc}")
    try:
        async with asyncio.timeout(10):
            await done
    except TimeoutError:
        transport.abort()
        return judge(spec, None, "no close within 10 s")
    return judge(spec, call)


# ------------------------------------------------------------------ phases


def phase_steady(args: argparse.Namespace, tmp: Path, run: Run) -> PhaseResult:
    print(f"\n[a] steady: {args.sessions:,} sessions at {args.rate:,.0f}/s", flush=True)
    redis_server = RedisProcess(tmp / "a-redis")
    redis_server.start()
    result = PhaseResult("a steady", deadline=args.deadline_ms / 1000)
    try:
        table = Table(random.Random(1), args.table_size)
        table.load(gateway_settings(redis_url=redis_server.url))
        gateway = GatewayProcess(
            tmp / "a-gw",
            {
                "CALLSCREEN_REDIS_URL": redis_server.url,
                "CALLSCREEN_DEADLINE_MS": str(args.deadline_ms),
            },
        )
        gateway.start()
        try:
            warm = PhaseResult("warm-up")
            run(steady(gateway.port, table.specs(), min(2000, args.sessions), args.rate, warm))
            result.rss.append(gateway.rss_mb())
            cpu = (gateway.cpu_seconds(), own_cpu_seconds())
            half = args.sessions // 2
            run(steady(gateway.port, table.specs(), half, args.rate, result))
            result.rss.append(gateway.rss_mb())
            run(steady(gateway.port, table.specs(), args.sessions - half, args.rate, result))
            result.rss.append(gateway.rss_mb())
            result.notes.append(cpu_note(gateway, cpu, len(result.outcomes)))
            common_checks(result, args.slack_ms / 1000)
            # memory: what the second half added, against allocator noise
            grown = result.rss[-1] - result.rss[1]
            check(
                grown <= max(5.0, 0.05 * result.rss[1]),
                f"a steady: RSS grew {grown:.1f} MB over the second half",
            )
            everything = PhaseResult(result.name, warm.outcomes + result.outcomes)
            metrics_checks(everything, gateway)
            result.notes += everything.notes
        finally:
            check(gateway.stop() == 0, "a steady: the gateway did not exit 0 on SIGTERM")
    finally:
        redis_server.stop()
    return result


def phase_restarts(args: argparse.Namespace, tmp: Path, run: Run) -> PhaseResult:
    n = args.restart_sessions
    print(f"\n[b] Redis (appendonly) killed and restarted twice during {n:,} sessions", flush=True)
    redis_server = RedisProcess(
        tmp / "b-redis", None, "--appendonly", "yes", "--appendfsync", "everysec"
    )
    redis_server.start()
    result = PhaseResult("b redis restarts", deadline=args.deadline_ms / 1000)
    events: list[tuple[str, float]] = []
    try:
        table = Table(random.Random(2), args.table_size)
        table.load(gateway_settings(redis_url=redis_server.url))
        gateway = GatewayProcess(
            tmp / "b-gw",
            {
                "CALLSCREEN_REDIS_URL": redis_server.url,
                "CALLSCREEN_DEADLINE_MS": str(args.deadline_ms),
            },
        )
        gateway.start()

        def restart() -> None:
            events.append(("fault", time.perf_counter()))
            redis_server.kill()
            time.sleep(args.down_s)
            redis_server.start()  # same port and directory: the AOF is read back
            events.append(("up", time.perf_counter()))

        try:
            run(
                steady(
                    gateway.port, table.specs(), n, args.rate, result, {0.25: restart, 0.6: restart}
                )
            )
            common_checks(result, args.slack_ms / 1000, fails_allowed=True)
            outage_checks(result, events)
            check(len([e for e in events if e[0] == "up"]) == 2, "b: Redis did not restart twice")
            samples = gateway.metrics()
            noscript = metric_sum(samples, "callscreen_redis_noscript_total")
            check(noscript >= 3, f"b: {noscript:.0f} NOSCRIPT replies handled, expected 3")
            result.notes.append(f"NOSCRIPT answered by sending the script: {noscript:.0f} times")
            metrics_checks(result, gateway)
        finally:
            check(gateway.stop() == 0, "b: the gateway did not exit 0 on SIGTERM")
    finally:
        redis_server.stop()
    return result


def phase_failover(args: argparse.Namespace, tmp: Path, run: Run) -> PhaseResult:
    n = args.failover_sessions
    how = "SENTINEL FAILOVER" if args.failover == "command" else "primary killed"
    print(f"\n[c] Sentinel failover ({how}) during {n:,} sessions", flush=True)
    sentinels = SentinelSet(tmp / "c-sentinel")
    sentinels.start()
    result = PhaseResult("c sentinel failover", deadline=args.deadline_ms / 1000)
    events: list[tuple[str, float]] = []
    try:
        settings = gateway_settings(
            redis_url="redis://127.0.0.1:1/0", redis_sentinels=[sentinels.address]
        )
        table = Table(random.Random(3), args.table_size)
        table.load(settings)
        sentinels.wait_replicated()
        old = sentinels.primary.port
        gateway = GatewayProcess(
            tmp / "c-gw",
            {
                "CALLSCREEN_REDIS_URL": "redis://127.0.0.1:1/0",
                "CALLSCREEN_REDIS_SENTINELS": sentinels.address,
                "CALLSCREEN_DEADLINE_MS": str(args.deadline_ms),
            },
        )
        gateway.start()

        def failover() -> None:
            events.append(("fault", time.perf_counter()))
            sentinels.failover(kill=args.failover == "kill")
            events.append(("up", time.perf_counter()))

        try:
            run(steady(gateway.port, table.specs(), n, args.rate, result, {0.3: failover}))
            common_checks(result, args.slack_ms / 1000, fails_allowed=True)
            outage_checks(result, events)
            check(sentinels.primary.port != old, "c: the Sentinel did not fail over")
            result.notes.append(f"primary moved from port {old} to {sentinels.primary.port}")
            metrics_checks(result, gateway)
        finally:
            check(gateway.stop() == 0, "c: the gateway did not exit 0 on SIGTERM")
    finally:
        sentinels.stop()
    return result


HOSTILE_KINDS = ("slowloris", "idle", "garbage", "oversized", "noreply")


async def hostile_connection(port: int, kind: str, rng: random.Random) -> tuple[bool, float, bool]:
    """One hostile connection; returns (closed by the gateway, seconds it lasted,
    whether it got an answer line)."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False, 0.0, False
    got_answer = False
    try:
        async with asyncio.timeout(8):
            if kind == "slowloris":
                env = build_env(port=port)
                for byte in env[:-1]:
                    writer.write(bytes((byte,)))
                    await writer.drain()
                    try:
                        async with asyncio.timeout(0.1):
                            if await reader.read(1024) == b"":
                                break
                    except TimeoutError:
                        continue
            elif kind == "garbage":
                writer.write(rng.randbytes(256))
            elif kind == "oversized":
                writer.write(b"agi_network: " + b"x" * 10_000)
            elif kind == "noreply":
                writer.write(build_env(port=port, args=("inbound", "+33670000000")))
                got_answer = bool(await reader.readline())
            while await reader.read(65536):
                pass
        closed = True
    except TimeoutError:
        closed = False
    except ConnectionError:
        closed = True  # reset by the gateway
    finally:
        writer.close()
    return closed, time.perf_counter() - started, got_answer


async def hostile_run(
    port: int,
    specs: Iterator[Spec],
    normal: int,
    hostile: int,
    seconds: float,
    hold: float,
    result: PhaseResult,
    hostile_log: Counter[str],
    sample: Callable[[], float],
) -> tuple[int, float]:
    """``normal`` looping sessions (staggered over ``hold``) and ``hostile`` looping
    attackers for ``seconds``; returns the answers the attackers got, and the most
    connections the gateway reported open."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    answered_hostile = 0
    peak = 0.0
    counter = 0

    async def normal_worker(i: int) -> None:
        nonlocal counter
        await asyncio.sleep(hold * i / max(normal, 1))
        while loop.time() < end:
            counter += 1
            result.outcomes.append(await session(port, next(specs), f"n.{counter}", hold))

    async def hostile_worker(i: int) -> None:
        nonlocal answered_hostile
        rng = random.Random(i)
        kind = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
        await asyncio.sleep(hold * i / max(hostile, 1))
        while loop.time() < end:
            closed, _, answer = await hostile_connection(port, kind, rng)
            hostile_log[f"{kind} closed by the gateway" if closed else f"{kind} NOT closed"] += 1
            answered_hostile += answer
            await asyncio.sleep(0.1)

    async def sampler() -> None:
        nonlocal peak
        while loop.time() < end:
            await asyncio.sleep(0.5)
            peak = max(peak, await asyncio.to_thread(sample))

    lags: list[float] = []

    async def lag() -> None:
        while loop.time() < end:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    await asyncio.gather(
        *(normal_worker(i) for i in range(normal)),
        *(hostile_worker(i) for i in range(hostile)),
        sampler(),
        lag(),
    )
    lags.sort()
    if lags:
        result.notes.append(
            f"load generator's own loop lag: p99 {lags[int(0.99 * len(lags))] * 1000:.1f} ms, "
            f"max {lags[-1] * 1000:.1f} ms (part of the latencies above)"
        )
    return answered_hostile, peak


def phase_hostile(args: argparse.Namespace, tmp: Path, run: Run) -> list[PhaseResult]:
    total = args.connections
    hostile = int(total * args.hostile_share)
    normal = total - hostile
    cap = int(total * 1.25)
    print(
        f"\n[d] {total:,} connections at once: quiet ({normal:,} normal), then "
        f"{normal:,} normal + {hostile:,} hostile; {args.hostile_seconds:g} s each, "
        f"max_connections {cap:,}",
        flush=True,
    )
    redis_server = RedisProcess(tmp / "d-redis")
    redis_server.start()
    results: list[PhaseResult] = []
    try:
        table = Table(random.Random(4), args.table_size)
        table.load(gateway_settings(redis_url=redis_server.url))
        gateway = GatewayProcess(
            tmp / "d-gw",
            {
                "CALLSCREEN_REDIS_URL": redis_server.url,
                "CALLSCREEN_DEADLINE_MS": str(args.deadline_ms),
                "CALLSCREEN_MAX_CONNECTIONS": str(cap),
            },
        )
        gateway.start()

        def open_connections() -> float:
            return metric_sum(gateway.metrics(), "callscreen_connections_open")

        try:
            # warm-up, not measured: the gateway's first time at this many connections
            warm = PhaseResult("d warm-up", deadline=args.deadline_ms / 1000)
            warm_log: Counter[str] = Counter()
            run(
                hostile_run(
                    gateway.port,
                    table.specs(),
                    normal,
                    0,
                    2 * args.hold + 1,
                    args.hold,
                    warm,
                    warm_log,
                    open_connections,
                )
            )
            common_checks(warm, args.slack_ms / 1000)
            quiet = PhaseResult(f"d quiet ({normal} conns)", deadline=args.deadline_ms / 1000)
            quiet_log: Counter[str] = Counter()
            cpu = (gateway.cpu_seconds(), own_cpu_seconds())
            _, peak = run(
                hostile_run(
                    gateway.port,
                    table.specs(),
                    normal,
                    0,
                    args.hostile_seconds,
                    args.hold,
                    quiet,
                    quiet_log,
                    open_connections,
                )
            )
            quiet.notes.append(f"at most {peak:.0f} connections open")
            quiet.notes.append(cpu_note(gateway, cpu, len(quiet.outcomes)))
            common_checks(quiet, args.slack_ms / 1000)
            loud = PhaseResult(f"d hostile ({normal}+{hostile})", deadline=args.deadline_ms / 1000)
            hostile_log: Counter[str] = Counter()
            cpu = (gateway.cpu_seconds(), own_cpu_seconds())
            answered, peak = run(
                hostile_run(
                    gateway.port,
                    table.specs(),
                    normal,
                    hostile,
                    args.hostile_seconds,
                    args.hold,
                    loud,
                    hostile_log,
                    open_connections,
                )
            )
            loud.notes.append(f"at most {peak:.0f} connections open")
            loud.notes.append(cpu_note(gateway, cpu, len(loud.outcomes)))
            loud.notes.append(
                "hostile connections: "
                + ", ".join(f"{n} {k}" for k, n in sorted(hostile_log.items()))
            )
            common_checks(loud, args.slack_ms / 1000)
            not_closed = sum(n for k, n in hostile_log.items() if "NOT" in k)
            check(not_closed == 0, f"d: {not_closed} hostile connections not closed by the gateway")
            both = PhaseResult("d", warm.outcomes + loud.outcomes + quiet.outcomes)
            metrics_checks(both, gateway, extra_answered=answered)
            results += [quiet, loud]
        finally:
            check(gateway.stop() == 0, "d: the gateway did not exit 0 on SIGTERM")
    finally:
        redis_server.stop()
    return results


def phase_fuzz(args: argparse.Namespace) -> str:
    """Hypothesis on the parsers, for a bounded time; returns the summary line."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from callscreen.callpath.decision import VARIABLES
    from callscreen.callpath.protocol import (
        MAX_COMMAND_BYTES,
        AgiSession,
        ReplyParser,
        derive_env,
        mset_command,
    )
    from callscreen.core.errors import InvalidInput, ProtocolError
    from callscreen.core.numbers import (
        NumberKind,
        is_never_blocked_outbound,
        parse_entry,
        read_call_number,
    )

    print(f"\n[e] fuzzing for {args.fuzz_seconds:g} s", flush=True)
    env = build_env()
    lines = env.decode().splitlines()
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
    wire = st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda cut, junk: env[:cut] + junk, st.integers(0, len(env)), st.binary(max_size=200)
        ),
        st.builds(lambda a, b: a + b"\n\n" + b, st.binary(max_size=300), st.binary(max_size=300)),
    )
    regions = st.sampled_from(["FR", "US", "GB", "DE", "IN", "BR", "JP", "ZZ"])
    numberish = st.one_of(
        text,
        st.from_regex(r"\A[+0-9 ()*.#-]{0,25}\Z"),
        st.from_regex(r"\A(sip:|tel:)?\+?[0-9]{1,18}(@[a-z.]{0,10})?\Z"),
    )
    examples: Counter[str] = Counter()
    quick = settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )

    @quick
    @given(chunks=st.lists(wire, max_size=6), reply=st.binary(max_size=300))
    def agi_session(chunks: list[bytes], reply: bytes) -> None:
        examples["AgiSession"] += 1
        session = AgiSession(max_line_bytes=512, max_env_lines=64)
        try:
            for chunk in chunks:
                session.feed(chunk)
            if session.env is not None:
                session.send(b"EXEC MSet x\n")
                session.feed(reply)
        except ProtocolError:
            pass

    @quick
    @given(extra=st.lists(text, max_size=20), cut=st.integers(0, len(lines)))
    def env_lines(extra: list[str], cut: int) -> None:
        examples["derive_env"] += 1
        try:
            derived = derive_env([*lines[:cut], *extra, *lines[cut:]])
        except ProtocolError:
            return  # refused, as documented (e.g. an empty line before the name)
        derived.script  # noqa: B018 - computed on access
        derived.arg(1)

    @quick
    @given(replies=st.lists(text, max_size=10))
    def reply_parser(replies: list[str]) -> None:
        examples["ReplyParser"] += 1
        parser = ReplyParser(max_lines=16)
        try:
            for line in replies:
                parser.feed_line(line)
        except ProtocolError:
            pass

    @quick
    @given(values=st.fixed_dictionaries(dict.fromkeys(VARIABLES, text)))
    def mset(values: dict[str, str]) -> None:
        examples["mset_command"] += 1
        command = mset_command(values)
        assert len(command) <= MAX_COMMAND_BYTES and command.count(b"\n") == 1
        assert list(mset_variables(command)) == list(values)

    @quick
    @given(raw=numberish, region=regions)
    def numbers(raw: str, region: str) -> None:
        examples["numbers"] += 1
        call = read_call_number(raw, region)
        # read_call_number catches everything: this reason means an exception was hidden
        assert not call.reason.startswith("unreadable number "), call.reason
        if call.kind is NumberKind.NUMBER:
            # phonenumbers reads up to 17 national digits without validating: the call
            # path screens them as they are (E.164's 15 is not enforced there)
            assert call.digits.isdigit() and len(call.digits) <= 20, call
        is_never_blocked_outbound(raw, region)
        try:
            entry = parse_entry(raw, region)
        except InvalidInput:
            return
        assert entry.digits.isdigit(), entry
        if not entry.is_prefix:  # an entry written as X matches a call presenting X
            assert call.kind is NumberKind.NUMBER and call.digits == entry.digits, (call, entry)

    targets = [agi_session, env_lines, reply_parser, mset, numbers]
    end = time.monotonic() + args.fuzz_seconds
    crashes: list[str] = []
    while time.monotonic() < end and not crashes:
        for target in targets:
            try:
                target()
            except Exception as exc:  # hypothesis re-raises the shrunk failure
                crashes.append(f"{target.__name__}: {type(exc).__name__}: {exc}")
    check(not crashes, "e: fuzzing found: " + "; ".join(crashes))
    total = sum(examples.values())
    detail = ", ".join(f"{k} {n:,}" for k, n in examples.items())
    return f"{total:,} examples ({detail}), {len(crashes)} crashes"


# ------------------------------------------------------------------ main


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children inherit it
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def report(
    results: list[PhaseResult], fuzz: str | None, deadline: float, slack: float, seconds: float
) -> None:
    print("\n" + "=" * 100)
    print(
        f"{'phase':28} {'sessions':>9} {'in deadline':>11} {'fail ans.':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  RSS MB (start -> end)"
    )
    for r in results:
        rss = " -> ".join(f"{v:.1f}" for v in r.rss) if r.rss else "-"
        slowest = max(r.latencies(), default=float("nan")) * 1000
        print(
            f"{r.name:28} {len(r.outcomes):>9,} {r.in_deadline(slack):>11,} "
            f"{r.count('failed'):>9,} {r.pct(0.5):>7.2f} {r.pct(0.99):>7.2f} "
            f"{slowest:>7.1f}  {rss}"
        )
        for note in r.notes:
            print(f"{'':30}{note}")
    if fuzz is not None:
        print(f"{'e fuzz':28} {fuzz}")
    print(
        f"\ndeadline + slack: {deadline * 1000:g} + "
        f"{slack * 1000:g} ms; {check.passed} checks passed, {len(check.failures)} failed; "
        f"{seconds:.0f} s in all"
    )
    for failure in check.failures:
        print(f"FAILED: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every phase scaled down")
    parser.add_argument("--phases", default="abcdef", help="which phases, e.g. ab (default abcdef)")
    parser.add_argument("--sessions", type=int, help="phase a sessions (200,000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="sessions/s in a, b, c")
    parser.add_argument("--restart-sessions", type=int, help="phase b sessions (30,000)")
    parser.add_argument("--down-s", type=float, default=1.0, help="Redis down this long in b")
    parser.add_argument("--failover-sessions", type=int, help="phase c sessions (20,000)")
    parser.add_argument("--failover", choices=("kill", "command"), default="kill")
    parser.add_argument("--connections", type=int, default=2000, help="phase d connections")
    parser.add_argument("--hostile-share", type=float, default=0.1)
    parser.add_argument("--hostile-seconds", type=float, help="each run of d (20)")
    parser.add_argument(
        "--hold",
        type=float,
        default=1.5,
        help="d: a normal session replies after this long (< reply timeout)",
    )
    parser.add_argument("--fuzz-seconds", type=float, help="phase e (60)")
    parser.add_argument("--flood-seconds", type=float, help="each flood of f (30)")
    parser.add_argument("--flood-rate", type=float, default=200.0, help="sessions/s in f")
    parser.add_argument("--flood-sockets", type=int, default=2400, help="f per-peer sockets")
    parser.add_argument("--deadline-ms", type=int, default=200)
    parser.add_argument(
        "--slack-ms",
        type=float,
        default=100.0,
        help="allowed beyond the deadline for the client's own delays",
    )
    parser.add_argument("--table-size", type=int, default=4000, help="exact entries per list")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data directory")
    args = parser.parse_args()
    scale = {
        "sessions": (200_000, 20_000),
        "restart_sessions": (30_000, 10_000),
        "failover_sessions": (20_000, 8_000),
        "hostile_seconds": (20.0, 8.0),
        "fuzz_seconds": (60.0, 10.0),
        "flood_seconds": (30.0, 6.0),
    }
    for name, (full, quick) in scale.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)

    try:
        import uvloop

        runner: asyncio.Runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    fds = raise_fd_limit()
    print(f"soak: phases {args.phases}, open files limit {fds:,}, loopback only", flush=True)
    started = time.monotonic()
    results: list[PhaseResult] = []
    fuzz: str | None = None
    slack = args.slack_ms / 1000
    with runner, tempfile.TemporaryDirectory(prefix="callscreen-soak-") as tmpdir:
        tmp = Path(tempfile.mkdtemp(prefix="callscreen-soak-")) if args.keep else Path(tmpdir)
        if args.keep:
            print(f"logs and data kept in {tmp}")
        run = runner.run
        try:
            if "a" in args.phases:
                results.append(phase_steady(args, tmp, run))
            if "b" in args.phases:
                results.append(phase_restarts(args, tmp, run))
            if "c" in args.phases:
                results.append(phase_failover(args, tmp, run))
            if "d" in args.phases:
                results += phase_hostile(args, tmp, run)
            if "e" in args.phases:
                fuzz = phase_fuzz(args)
            if "f" in args.phases:
                results += phase_floods(args, tmp, run)
        except KeyboardInterrupt:
            check(False, "interrupted")
    report(results, fuzz, args.deadline_ms / 1000, slack, time.monotonic() - started)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
