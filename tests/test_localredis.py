"""``callscreen serve --local-redis``: a private Redis only when none is configured,
on a unix socket under var/redis, stopped on exit or found again after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support.agiclient import FakeAsterisk
from tests.support.polling import until_async
from tests.support.redisproc import free_port

HOST = "127.0.0.1"

pytestmark = pytest.mark.slow


def start_serve(cwd: Path, port: int, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = cwd / f"serve-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    full = {
        **clean,
        "CALLSCREEN_LISTEN_HOST": HOST,
        "CALLSCREEN_LISTEN_PORT": str(port),
        "CALLSCREEN_METRICS_PORT": "0",
        "CALLSCREEN_DEFAULT_REGION": "FR",
        "CALLSCREEN_SPOOL_DIR": "",
        **env,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callscreen", "serve", "--local-redis"],
            cwd=cwd, env=full, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, log


def listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def answers(socket_path: Path) -> bool:
    client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, OSError):
        return False
    finally:
        client.close()


async def test_a_configured_redis_that_does_not_answer_is_never_replaced(
    tmp_path: Path,
) -> None:
    """Fail-closed with the real Redis down: every call BLOCKED, no stand-in started."""
    port = free_port()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc, log = start_serve(
        tmp_path, port, CALLSCREEN_REDIS_URL=dead, CALLSCREEN_FAIL_POLICY="closed"
    )
    try:
        await until_async(lambda: listening(port) or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, log.read_text()
        fake = FakeAsterisk(HOST, port)
        results = [
            (await fake.call(args=("inbound", number))).variables["CALLSCREEN_RESULT"]
            for number in ("+33123456789", "+33612345678", "+14155550100")
        ]
        assert results == ["BLOCKED"] * 3
        assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    assert "--local-redis ignored: a Redis is configured" in text
    assert "starting a local redis-server" not in text


async def test_the_private_redis_is_on_a_socket_and_outlives_no_serve(tmp_path: Path) -> None:
    """No Redis configured: a private one on var/redis/redis.sock, stopped on exit;
    after a SIGKILL the next start finds it and stops it in turn."""
    sock = tmp_path / "var" / "redis" / "redis.sock"
    port = free_port()
    proc, log = start_serve(tmp_path, port)
    await until_async(lambda: listening(port) or proc.poll() is not None, timeout=20)
    assert proc.poll() is None, log.read_text()
    assert answers(sock)
    assert "export CALLSCREEN_REDIS_URL=unix://" in log.read_text()
    fake = FakeAsterisk(HOST, port)
    assert (await fake.call(args=("inbound", "+33123456789"))).variables[
        "CALLSCREEN_RESULT"
    ] == "ALLOWED"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not answers(sock)

    # killed outright: its Redis survives it, and the next start takes it over
    proc, log = start_serve(tmp_path, port)
    await until_async(lambda: answers(sock) and listening(port), timeout=20)
    proc.kill()
    proc.wait()
    assert answers(sock)
    port = free_port()
    proc, log = start_serve(tmp_path, port)
    await until_async(lambda: listening(port) or proc.poll() is not None, timeout=20)
    assert "still runs on" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    await until_async(lambda: not answers(sock), timeout=10)
