"""callscreen on a real Redis Cluster (three primaries started by the test): the lookup
follows MOVED to the primary of ``{cs}`` and stays one round trip a call, and the attempt
log spreads over the primaries, each shard's script sent to its own slot's node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Result
from callscreen.gateway.attemptlog import CallLog
from callscreen.schema.attempts import LogSettings
from callscreen.schema.keys import LOG_SHARDS, Keys, key_slot, log_shard
from tests.support.blocking import SyncAdmin as Admin
from tests.support.clusterproc import ClusterSet, cluster_available

pytestmark = pytest.mark.skipif(not cluster_available(), reason="redis-cli is not installed")
KEYS = Keys("cs")
OUT = Direction.OUTBOUND


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSet]:
    nodes = ClusterSet(tmp_path_factory.mktemp("cluster"))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def settings_for(port: int) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=f"redis://127.0.0.1:{port}/0", default_region="FR"
    )


def test_key_slots_match_the_cluster_and_the_log_spreads(cluster: ClusterSet) -> None:
    client = cluster.client(cluster.nodes[0].port)
    try:
        for key in ("{cs}:meta", KEYS.attempt_log(5), KEYS.first_contact(12345), "plain"):
            assert client.cluster("keyslot", key) == key_slot(key)
    finally:
        client.close()
    ports = {cluster.port_of_slot(key_slot(KEYS.attempt_log(s))) for s in range(LOG_SHARDS)}
    assert ports == {node.port for node in cluster.nodes}  # every primary holds shards


async def test_lookups_and_log_writes_on_a_cluster(cluster: ClusterSet) -> None:
    home = cluster.port_of_slot(key_slot(KEYS.meta))
    elsewhere = next(node.port for node in cluster.nodes if node.port != home)
    # the lists live under {cs}: the admin side talks to that slot's primary
    with Admin(settings_for(home)) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", ["+33612345678", "+3389*"], reason="opt-out")

    # the gateway is pointed at another node: its first lookup is MOVED, then it stays
    screener = Screener.from_settings(settings_for(elsewhere))
    try:
        first = await screener.screen(ScreenRequest("+33612345678", OUT))
        assert (first.result, first.list_name, first.failed) == (Result.BLOCKED, "dnc", False)
        assert screener.client.moved == 1 and screener.client.target.port == home
        before = screener.client.requests
        for number, result in (("+33612345678", Result.BLOCKED), ("+33890000000", Result.BLOCKED),
                               ("+33612345679", Result.ALLOWED)):  # fmt: skip
            decision = await screener.screen(ScreenRequest(number, OUT))
            assert decision.result is result and not decision.failed
        assert screener.client.requests - before == 3  # one round trip a decision
    finally:
        await screener.close()

    log = CallLog(
        LogSettings(flush_interval_s=0.01, node="gw-cluster"),
        LeanRedis.from_url(f"redis://127.0.0.1:{elsewhere}/0", command_timeout=5),
        own_client=True,
    )
    log.start()
    numbers = [f"+3361200{i:04d}" for i in range(300)]
    for i, number in enumerate(numbers):
        decision = (
            Decision(Result.BLOCKED, number, "dnc", number)
            if i % 3 == 0
            else Decision(Result.ALLOWED, number)
        )
        log.record(ScreenRequest(number, OUT, "spring", f"u{i}"), decision, 0)
    assert await log.flush(20)
    stats = log.stats()
    await log.stop()
    assert (stats.written, stats.refused, stats.dropped) == (300, 0, 0)
    # each shard's records on the primary of its own slot, and nowhere else
    total = 0
    for shard in range(LOG_SHARDS):
        stream = KEYS.attempt_log(shard)
        client = cluster.client(cluster.port_of_slot(key_slot(stream)))
        try:
            # blocked calls in the stream kept by age, in the same slot
            assert key_slot(KEYS.kept_log(shard)) == key_slot(stream)
            n = int(client.xlen(stream)) + int(client.xlen(KEYS.kept_log(shard)))
            expected = sum(1 for number in numbers if log_shard(number[1:]) == shard)
            assert n == expected
            total += n
            counts = client.hgetall(next(iter(client.keys("*:log:c:*")), "none"))
            assert counts or expected == 0
        finally:
            client.close()
    assert total == 300
