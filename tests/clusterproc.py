"""A small Redis Cluster for the tests: three primaries on loopback ports, slots split
evenly by ``redis-cli --cluster create``, all real processes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.redisproc import RedisProcess, free_port


def _until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cluster_available() -> bool:
    """Whether redis-cli (for ``--cluster create``) is installed."""
    return shutil.which("redis-cli") is not None


class ClusterSet:
    """``size`` cluster-enabled redis-servers joined into one Cluster with no replicas."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--cluster-node-timeout", "2000"]
        # the bus port is the port + 10000 unless set: a free port of its own instead
        self.nodes = [
            RedisProcess(workdir / f"n{i}", None, *options, "--cluster-port", str(free_port()))
            for i in range(size)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        for node in self.nodes:
            client = self.client(node.port)
            try:
                _until(
                    lambda c=client: c.cluster("info")["cluster_state"] == "ok",  # type: ignore[misc]
                    20,
                    f"the Cluster to be ok at {node.port}",
                )
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def port_of_slot(self, slot: int) -> int:
        """The port of the primary that serves ``slot``."""
        client = self.client(self.nodes[0].port)
        try:
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        finally:
            client.close()
        raise LookupError(f"no node serves slot {slot}")
