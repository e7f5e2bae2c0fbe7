"""Operating the gateway: the fast versions of the soak's fault cases (``bench/soak.py``),
graceful restarts and reloads through real signals, the metrics endpoint fetched as
``curl`` would, and ``callscreen health``'s exit codes. Real redis-servers, a real
Sentinel, the gateway over TCP — in this process or as ``callscreen serve``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.core.config import Settings
from callscreen.core.model import Action
from callscreen.gateway.serve import Gateway, Part, exposure_warnings, raise_fd_limit
from callscreen.gateway.serve import run as serve_run
from tests.support.agiclient import FakeAsterisk, build_env, mset_variables
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until_async as until
from tests.support.redisproc import RedisProcess, free_port
from tests.support.sentinelproc import SentinelSet

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent

# number -> what every call gets, inbound and outbound (all lists apply to both)
EXPECTED = {
    "+33123456789": "BLOCKED",  # exact entry
    "+33899000000": "BLOCKED",  # under a blocked prefix
    "+33899123456": "ALLOWED",  # a longer allow prefix inside it
    "+33611111111": "LABELED",
    "+33655555555": "ALLOWED",  # on no list
}


def ops_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": url,
        "listen_host": HOST,
        "listen_port": 0,
        "metrics_port": 0,
        "default_region": "FR",
        "deadline_ms": 5_000,
        "env_timeout_ms": 1000,
        "shutdown_grace_s": 2.0,
        "log_calls": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def load_lists(settings: Settings) -> None:
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33123456789"], reason="asked us to stop")
        admin.create_list("premium", Action.BLOCK)
        admin.add("premium", ["+33899*"], reason="premium rate")
        admin.create_list("partners", Action.ALLOW)
        admin.add("partners", ["+33899123*"], reason="partner line")
        admin.create_list("suspects", Action.LABEL)
        admin.add("suspects", ["+33611111111"], reason="complaints")


def workload(n: int) -> list[tuple[str, str]]:
    numbers = list(EXPECTED)
    return [(("inbound", "outbound")[i % 2], numbers[i % len(numbers)]) for i in range(n)]


async def one_call(port: int, direction: str, number: str) -> dict[str, str]:
    result = await FakeAsterisk(HOST, port).call(args=(direction, number))
    assert result.command_count == 1, result
    return result.variables


async def run_calls(
    port: int, calls: Sequence[tuple[str, str]], concurrency: int = 20
) -> list[dict[str, str]]:
    answers: list[dict[str, str]] = [{} for _ in calls]
    queue = iter(enumerate(calls))

    async def worker() -> None:
        for i, (direction, number) in queue:
            answers[i] = await one_call(port, direction, number)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def right(answer: dict[str, str], number: str) -> bool:
    return answer["CALLSCREEN_RESULT"] == EXPECTED[number] and (
        "unavailable" not in answer["CALLSCREEN_REASON"]
    )


def failed(answer: dict[str, str]) -> bool:
    """A fail-policy answer (fail open)."""
    return answer["CALLSCREEN_RESULT"] == "UNSCREENED" and answer["CALLSCREEN_REASON"].startswith(
        "screening unavailable"
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# ----------------------------------------------------------------- load and metrics


async def test_a_few_hundred_sessions_counted_by_the_metrics_endpoint(redis_url: str) -> None:
    settings = ops_settings(redis_url, metrics_port=free_port())
    load_lists(settings)
    calls = workload(300)
    async with Gateway(settings, load_settings=lambda: settings) as gateway:
        answers = await run_calls(gateway.server.port, calls)
        text = await asyncio.to_thread(
            fetch, f"http://{HOST}:{settings.metrics_port}/metrics?curl=1"
        )
    for (_, number), answer in zip(calls, answers, strict=True):
        assert right(answer, number), (number, answer)

    samples = parse_metrics(text)
    made = Counter((EXPECTED[number], direction) for direction, number in calls)
    for (result, direction), n in made.items():
        got = metric(
            samples,
            "callscreen_decisions_total",
            script="screen",
            result=result,
            direction=direction,
        )
        assert got == n, (result, direction)
    assert sum(v for (name, _), v in samples.items() if name == "callscreen_decisions_total") == 300
    assert metric(samples, "callscreen_calls_total", script="screen", outcome="ok") == 300
    assert metric(samples, "callscreen_decision_seconds_count") == 300
    assert not any(name == "callscreen_fail_answers_total" for name, _ in samples)
    assert metric(samples, "callscreen_redis_requests_total", client="screening") >= 300
    assert metric(samples, "callscreen_redis_connected", client="screening") == 1
    assert metric(samples, "callscreen_connections_open") == 0
    assert metric(samples, "process_resident_memory_bytes") > 0


async def test_the_served_gateway_logs_every_call_and_takes_opt_outs(redis_url: str) -> None:
    """``callscreen serve``'s parts together: the attempt log records each screened
    call (and the metrics show it), the opt-out route writes through the logged
    screener, and the next call to the opted-out number is blocked."""
    settings = ops_settings(redis_url, metrics_port=free_port())
    load_lists(settings)
    calls = workload(40)
    async with Gateway(settings, load_settings=lambda: settings) as gateway:
        assert gateway.calllog is not None
        answers = await run_calls(gateway.server.port, calls)
        optout = await FakeAsterisk(HOST, gateway.server.port).call(
            args=("outbound", "+33655555555", "spring"), script="optout"
        )
        after = await one_call(gateway.server.port, "outbound", "+33655555555")
        assert await gateway.calllog.flush(5.0)
        stats = gateway.calllog.stats()
        text = await asyncio.to_thread(fetch, f"http://{HOST}:{settings.metrics_port}/metrics")
    for (_, number), answer in zip(calls, answers, strict=True):
        assert right(answer, number), (number, answer)
    assert optout.variables["CALLSCREEN_RESULT"] == "BLOCKED"
    assert optout.variables["CALLSCREEN_LIST"] == settings.optout_list
    assert (after["CALLSCREEN_RESULT"], after["CALLSCREEN_LIST"]) == (
        "BLOCKED",
        settings.optout_list,
    )
    assert stats.written == len(calls) + 1 and stats.dropped == 0
    assert "callscreen_log" in text


async def test_the_metrics_endpoint_answers_only_metrics(redis_url: str) -> None:
    settings = ops_settings(redis_url, metrics_port=free_port())
    async with Gateway(settings, load_settings=lambda: settings):
        base = f"http://{HOST}:{settings.metrics_port}"
        with pytest.raises(urllib.error.HTTPError) as error:
            await asyncio.to_thread(fetch, f"{base}/admin")
        assert error.value.code == 404
        error.value.close()
        assert "callscreen_info" in await asyncio.to_thread(fetch, f"{base}/")
    with pytest.raises(OSError):
        await asyncio.to_thread(fetch, f"{base}/metrics")  # closed with the gateway


# ----------------------------------------------------------------- Redis faults


async def test_redis_killed_and_restarted_screening_resumes(tmp_path: Path) -> None:
    """SIGKILL of a Redis with an append-only file, then a restart on the same port:
    fail-policy answers within the deadline meanwhile, right answers after (the script
    cache is gone: NOSCRIPT, then the script is sent again within the same call)."""
    server = RedisProcess(tmp_path / "redis", None, "--appendonly", "yes")
    server.start()
    try:
        settings = ops_settings(server.url)
        load_lists(settings)
        async with Gateway(settings, load_settings=lambda: settings) as gateway:
            port = gateway.server.port
            for answer, (_, number) in zip(
                await run_calls(port, workload(10)), workload(10), strict=True
            ):
                assert right(answer, number)
            server.kill()
            started = time.monotonic()
            down = await run_calls(port, workload(20), concurrency=5)
            assert all(failed(answer) for answer in down)
            assert time.monotonic() - started < 20 * 0.2 / 5 + 1.0  # each within the deadline
            server.start()  # the same port and data directory: the AOF is read back

            async def recovered() -> bool:
                return right(await one_call(port, "inbound", "+33123456789"), "+33123456789")

            await until(recovered)
            calls = workload(50)
            for answer, (_, number) in zip(await run_calls(port, calls), calls, strict=True):
                assert right(answer, number), (number, answer)
            client = gateway.screener.client
            assert client.noscript >= 2 and client.connects >= 2
    finally:
        server.stop()


async def test_sentinel_failover_screening_resumes_on_the_new_primary(tmp_path: Path) -> None:
    sentinels = SentinelSet(tmp_path)
    sentinels.start()
    try:
        settings = ops_settings(
            "redis://127.0.0.1:1/0", redis_sentinels=[sentinels.address], deadline_ms=300
        )
        load_lists(settings)  # through the Sentinel, on the primary
        sentinels.wait_replicated()
        old_primary = sentinels.primary.port
        async with Gateway(settings, load_settings=lambda: settings) as gateway:
            port = gateway.server.port
            answers: list[tuple[str, dict[str, str]]] = []
            stop = asyncio.Event()

            async def calling() -> None:
                for direction, number in workload(10_000):
                    if stop.is_set():
                        return
                    answers.append((number, await one_call(port, direction, number)))
                    await asyncio.sleep(0.01)  # pacing: a steady trickle of calls, not a flood

            caller = asyncio.create_task(calling())
            await until(lambda: len(answers) >= 10)  # calls are flowing before the failover
            await asyncio.to_thread(sentinels.failover)
            assert sentinels.primary.port != old_primary

            async def on_new_primary() -> bool:
                conn = gateway.screener.client._conn
                return conn is not None and conn.label.endswith(f":{sentinels.primary.port}/0")

            await until(on_new_primary)
            seen = len(answers)
            await until(lambda: len(answers) >= seen + 20)
            stop.set()
            await caller
        assert answers and all(
            right(answer, number) or failed(answer) for number, answer in answers
        )
        assert all(right(answer, number) for number, answer in answers[-20:])
    finally:
        sentinels.stop()


# ----------------------------------------------------------------- limits


async def test_slow_loris_fill_the_cap_then_make_room(redis_url: str) -> None:
    """At max_connections a call takes the slot of the oldest connection still without
    its environment (no queue, no fail-policy answer); above 80 % of the cap, the
    others are closed once ``idle_close_ms`` has passed since their accept."""
    settings = ops_settings(
        redis_url,
        max_connections=5,
        env_timeout_ms=60_000,
        idle_close_ms=1000,
        metrics_port=free_port(),
    )
    load_lists(settings)
    async with Gateway(settings, load_settings=lambda: settings) as gateway:
        server = gateway.server
        port = server.port
        partial = build_env(port=port)[:60]
        holds: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(5):
                reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(partial)
                holds.append((reader, writer))
            await until(lambda: server.active_connections == 5, "the five holds accepted")
            assert right(await one_call(port, "inbound", "+33123456789"), "+33123456789")
            # Swept every idle_close_ms / 2: the holds that came of age are closed
            # together; one that came of age a sweep later (a loaded machine spreads
            # the accepts) finds the server below the share, and keeps env_timeout_ms.
            await until(
                lambda: (
                    server.stats.unanswered.get("idle", 0) > 0 and server.active_connections < 4
                ),
                "the idle holds closed",
            )
            idle = server.stats.unanswered["idle"]
            assert server.stats.unanswered.get("evicted") == 1
            assert idle + server.waiting_connections == 4
            # those closed were closed by the server, not by us
            await until(
                lambda: sum(reader.at_eof() for reader, _ in holds) == 1 + idle,
                "the closed holds to see the end of their stream",
            )
        finally:
            for _, writer in holds:
                writer.close()
        assert right(await one_call(port, "inbound", "+33123456789"), "+33123456789")
        samples = parse_metrics(
            await asyncio.to_thread(fetch, f"http://{HOST}:{settings.metrics_port}/metrics")
        )
    assert metric(samples, "callscreen_unanswered_total", reason="evicted") == 1
    assert metric(samples, "callscreen_unanswered_total", reason="idle") == idle
    cause = {"script": "screen", "result": "UNSCREENED", "direction": "inbound"}
    assert metric(samples, "callscreen_fail_answers_total", cause="overloaded", **cause) == 0


# ----------------------------------------------------------------- reload


async def test_reload_applies_live_settings_only(redis_url: str) -> None:
    dead = ops_settings("redis://127.0.0.1:1/0")
    fresh: list[Settings] = [dead]
    async with Gateway(dead, load_settings=lambda: fresh[0]) as gateway:
        port = gateway.server.port
        assert (await one_call(port, "inbound", "+33123456789"))["CALLSCREEN_RESULT"] == (
            "UNSCREENED"
        )
        fresh[0] = ops_settings(redis_url, fail_policy="closed", deadline_ms=150)
        assert gateway.reload() == ["deadline_ms", "fail_policy"]  # redis_url: at restart
        answer = await one_call(port, "inbound", "+33123456789")
        assert answer["CALLSCREEN_RESULT"] == "BLOCKED" and answer["CALLSCREEN_LABEL"] == ""
        assert "unavailable" in answer["CALLSCREEN_REASON"]
        assert gateway.screener.deadline == gateway.server.deadline == 0.15

        def invalid() -> Settings:
            return Settings(_env_file=None, deadline_ms=0)

        gateway.load_settings = invalid
        assert gateway.reload() == []
        gateway.load_settings = lambda: ops_settings(redis_url, log_level="LOUD")
        assert gateway.reload() == []
        assert gateway.settings.fail_policy == "closed" and gateway.settings.log_level == "INFO"
        assert gateway.metrics.reloads == 1


# ----------------------------------------------------------------- signals


class ServeProcess:
    """``callscreen serve`` in a process of its own, on a free port."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = tmp_path / "serve.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        self.env = {
            **clean,
            "CALLSCREEN_LISTEN_HOST": HOST,
            "CALLSCREEN_LISTEN_PORT": str(self.port),
            "CALLSCREEN_METRICS_PORT": "0",
            "CALLSCREEN_DEFAULT_REGION": "FR",
            **env,
        }
        self.cwd = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> ServeProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callscreen", "serve"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        async def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                return False
            writer.close()
            return True

        await until(listening, timeout=20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.mark.slow
async def test_sigterm_finishes_the_call_in_flight_and_refuses_new_ones(
    tmp_path: Path, redis_url: str
) -> None:
    load_lists(ops_settings(redis_url))
    # the call's environment comes in two halves, seconds apart: a deadline (counted
    # from the accept) long enough for it to be screened all the same
    metrics_port = free_port()
    env = {
        "CALLSCREEN_REDIS_URL": redis_url,
        "CALLSCREEN_ENV_TIMEOUT_MS": "10000",
        "CALLSCREEN_DEADLINE_MS": "10000",
        "CALLSCREEN_METRICS_PORT": str(metrics_port),
    }
    async with ServeProcess(tmp_path, env) as gateway:
        # a call in flight: connected, half of its environment sent
        reader, writer = await asyncio.open_connection(HOST, gateway.port)
        block = build_env(port=gateway.port, args=("inbound", "+33123456789"))
        writer.write(block[:100])
        await writer.drain()

        async def accepted() -> bool:
            try:
                text = await asyncio.to_thread(fetch, f"http://{HOST}:{metrics_port}/metrics")
            except OSError:  # the endpoint may come up after the FastAGI port
                return False
            return metric(parse_metrics(text), "callscreen_connections_open") == 1

        await until(accepted)  # the gateway holds the connection: the call is in flight
        gateway.signal(signal.SIGTERM)

        async def refused() -> bool:
            try:
                _, probe = await asyncio.open_connection(HOST, gateway.port)
            except ConnectionRefusedError:
                return True
            probe.close()
            return False

        await until(refused)
        writer.write(block[100:])
        line = await asyncio.wait_for(reader.readline(), 5)
        assert mset_variables(line)["CALLSCREEN_RESULT"] == "BLOCKED"
        writer.write(b"200 result=0\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert await asyncio.to_thread(gateway.wait) == 0, gateway.output()
        out = gateway.output()
    assert "stopped: 1 calls answered" in out, out


@pytest.mark.slow
async def test_sighup_reloads_the_fail_policy(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("CALLSCREEN_FAIL_POLICY=open\n")
    env = {"CALLSCREEN_REDIS_URL": "redis://127.0.0.1:1/0"}  # down: every call fails
    async with ServeProcess(tmp_path, env) as gateway:
        first = await one_call(gateway.port, "inbound", "+33123456789")
        assert first["CALLSCREEN_RESULT"] == "UNSCREENED"
        dotenv.write_text("CALLSCREEN_FAIL_POLICY=closed\n")
        gateway.signal(signal.SIGHUP)

        async def closed() -> bool:
            answer = await one_call(gateway.port, "inbound", "+33123456789")
            return answer["CALLSCREEN_RESULT"] == "BLOCKED"

        await until(closed)
        gateway.signal(signal.SIGTERM)
        assert await asyncio.to_thread(gateway.wait) == 0
        out = gateway.output()
    assert "reload: fail_policy=closed" in out, out


# ----------------------------------------------------------------- health


async def health(env: dict[str, str], *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["health", "--timeout", "1", *args], env=env, catch_exceptions=False
    )
    return result.exit_code, result.stdout


async def test_health_exit_codes(redis_server: RedisProcess, redis_url: str) -> None:
    settings = ops_settings(redis_url)
    async with Gateway(settings, load_settings=lambda: settings) as gateway:
        env = {
            "CALLSCREEN_REDIS_URL": redis_url,
            "CALLSCREEN_LISTEN_PORT": str(gateway.server.port),
        }
        code, out = await health(env, "--json")
        report = json.loads(out)
        assert code == 0 and report["ok"], out
        assert {c["name"]: c["ok"] for c in report["checks"]} == {"redis": True, "agi": True}

        secret = {**env, "CALLSCREEN_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
        code, out = await health(secret, "--json")
        report = json.loads(out)
        assert code == 1 and not report["ok"]
        assert {c["name"]: c["ok"] for c in report["checks"]} == {"redis": False, "agi": True}
        assert "hunter2" not in out
        code, out = await health(secret)
        assert code == 1 and "FAIL redis" in out and "hunter2" not in out
    code, out = await health(env)  # the gateway is gone: its port refuses
    assert code == 1 and "ok   redis" in out and "FAIL agi" in out


# ----------------------------------------------------------------- components


async def test_parts_start_in_order_and_close_in_reverse(redis_url: str) -> None:
    settings = ops_settings(redis_url)
    events: list[str] = []

    async def close_async() -> None:
        events.append("close extra")

    gateway = Gateway(settings, load_settings=lambda: settings)
    extra = Part("extra", start=lambda: events.append("start extra"), close=close_async)
    gateway.parts.insert(-1, extra)  # before the FastAGI server, as the attempt log goes
    original_close = gateway.server.close

    async def agi_close() -> None:
        events.append("close agi")
        await original_close()

    gateway.parts[-1] = Part("agi", start=gateway.server.start, close=agi_close)
    async with gateway:
        events.append("serving")
        assert gateway.server.sockets
    assert events == ["start extra", "serving", "close agi", "close extra"]


async def test_a_part_that_fails_to_start_closes_those_started(redis_url: str) -> None:
    settings = ops_settings(redis_url)
    closed: list[str] = []

    def boom() -> None:
        raise OSError("address in use")

    gateway = Gateway(settings, load_settings=lambda: settings)
    gateway.parts[1:1] = [
        Part("first", close=lambda: closed.append("first")),
        Part("broken", start=boom, close=lambda: closed.append("broken")),
    ]
    with pytest.raises(OSError, match="address in use"):
        async with gateway:
            pass
    assert closed == ["first"]
    assert gateway.server.sockets == ()  # never started


def test_the_open_files_limit_is_raised_for_max_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"now": (1024, 100_000)}
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: limits.update(now=value))
    assert raise_fd_limit(Settings(_env_file=None, max_connections=3000)) == ""
    assert limits["now"] == (100_000, 100_000)  # the hard limit, always
    limits["now"] = (1024, 6000)
    problem = raise_fd_limit(Settings(_env_file=None, max_connections=3000))
    assert limits["now"] == (6000, 6000)
    assert problem.startswith("open files limited to 6000, but max_connections=3000 needs 6320")


def test_serve_refuses_to_start_without_the_descriptors_it_needs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: None)
    with caplog.at_level(logging.ERROR):
        assert serve_run(Settings(_env_file=None, max_connections=2000)) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "open files limited to 1024, but max_connections=2000 needs 4320" in line


def test_a_port_open_to_everyone_is_warned_about() -> None:
    def warned(**values: Any) -> bool:
        return bool(exposure_warnings(Settings(_env_file=None, **values)))

    assert warned(listen_host="0.0.0.0")
    assert warned(listen_host="192.0.2.10")
    assert not warned(listen_host="0.0.0.0", allowed_clients="10.1.0.0/24")
    assert not warned(listen_host="127.0.0.1") and not warned(listen_host="::1")
    assert not warned(listen_host="localhost")
