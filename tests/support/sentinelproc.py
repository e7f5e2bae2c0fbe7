"""Redis Sentinel for the tests and the soak: a primary, a replica and one Sentinel,
all real processes on loopback, and a failover on demand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests.support.polling import until
from tests.support.redisproc import (
    RedisProcess,
    free_port,
    redis_server_binary,
    terminate,
    wait_replicated,
)

SERVICE = "callscreen"


class SentinelSet:
    """``primary`` and ``replica`` redis-servers and one Sentinel (quorum 1) watching
    them as service ``callscreen``. :meth:`failover` promotes the replica; the roles
    of :attr:`primary` and :attr:`replica` are swapped to match."""

    def __init__(self, workdir: Path, *extra: str, service: str = SERVICE) -> None:
        self.workdir = workdir
        self.service = service
        self.primary = RedisProcess(workdir / "a", None, *extra)
        self.replica = RedisProcess(workdir / "b", None, *extra)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the Sentinel, for ``CALLSCREEN_REDIS_SENTINELS``."""
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def primary_port(self) -> int:
        with self.client() as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", self.service)
        return int(port)

    def start(self) -> None:
        self.primary.start()
        replicaof = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.extra = (*self.replica.extra, *replicaof)
        self.replica.start()
        self.wait_replicated()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 10000\n"
        )
        self.proc = subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def replica_known() -> bool:
            with self.client() as sentinel:
                replicas = sentinel.execute_command("SENTINEL", "replicas", self.service)
            return any(
                int(r["port"]) == self.replica.port and "disconnected" not in r["flags"]
                for r in (_pairs(item) for item in replicas)
            )

        until(
            replica_known, "the Sentinel to see the replica", timeout=10, ignore=(redis.RedisError,)
        )

    def wait_replicated(self, timeout: float = 10) -> None:
        """Until the replica has everything the primary has."""
        wait_replicated(self.primary.port, self.replica.port, timeout)

    def failover(self, *, kill: bool = False, timeout: float = 15) -> None:
        """Make the replica the primary, and wait until it is: ``SENTINEL FAILOVER``,
        or with ``kill`` a SIGKILL of the primary, which the Sentinel notices after
        ``down-after-milliseconds`` (1 s). One failover per set: the Sentinel takes
        about ten seconds more to accept the old primary as a replica again."""
        old, new = self.primary, self.replica
        if kill:
            old.kill()
        else:
            with self.client() as sentinel:
                sentinel.execute_command("SENTINEL", "FAILOVER", self.service)

        def promoted() -> bool:
            with redis.Redis(port=new.port, socket_timeout=2, decode_responses=True) as r:
                role = r.execute_command("ROLE")[0]
            return role == "master" and self.primary_port() == new.port

        until(promoted, "the failover", timeout=timeout, ignore=(redis.RedisError,))
        self.primary, self.replica = new, old

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
        self.replica.stop()
        self.primary.stop()


def _pairs(item: list[str]) -> dict[str, str]:
    return dict(zip(item[::2], item[1::2], strict=True))
