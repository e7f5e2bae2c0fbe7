"""The cascade as a queued plan: the services queue it, the gateway's runner (one per
host, a Redis lock) runs it, merging plans into one spool scan; a command waits for
the report, or runs the queue itself where no gateway runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction
from callscreen.services.cascading import (
    CascadePlan,
    CascadeQueue,
    CascadeRunner,
    RunnerTask,
    host_name,
)
from callscreen.services.table import Table
from tests.support.amihelpers import make_settings, spool_names, write_call_file
from tests.support.blocking import SyncAdmin
from tests.support.polling import until_async

NUM = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
def settings(redis_url: str, spool: Path) -> Settings:
    return make_settings(redis_url, spool_dir=str(spool), node_name="pbx1")


@pytest.fixture
def admin(settings: Settings) -> Iterator[SyncAdmin]:
    service = SyncAdmin(settings)
    service.create_list("dnc", Action.BLOCK)
    yield service
    service.close()


def test_a_block_returns_its_plan_and_the_job_that_ran_it(admin: SyncAdmin, spool: Path) -> None:
    write_call_file(spool, "a.call", f"PJSIP/{NUM}@trunk")
    result = admin.add("dnc", [NUM, "+3361*"])
    plan = result.cascade_plan
    assert plan is not None and result.cascade_job is not None
    assert (plan.list_name, plan.entries, plan.whole_list) == ("dnc", 2, False)
    assert set(plan.targets) == {NUM, "+3361*"} and plan.outbound
    assert result.cascade is not None and [c.file for c in result.cascade.cancelled] == ["a.call"]
    # the report stays readable by job id, per host
    report = admin.run(admin.services.cascades.result(result.cascade_job, "pbx1"))
    assert report == result.cascade
    assert result.to_json()["cascade_plan"]["targets"] == list(plan.targets)


def test_nothing_is_queued_for_what_blocks_nothing(admin: SyncAdmin) -> None:
    admin.create_list("vip", Action.LABEL)
    assert admin.add("vip", [NUM]).cascade_job is None
    admin.create_list("in", Action.BLOCK, Direction.INBOUND)
    inbound = admin.add("in", [NUM])
    assert inbound.cascade_plan is not None and not inbound.cascade_plan.outbound
    assert admin.table.r.xlen(admin.table.keys.cascade_queue) == 1


async def test_the_gateway_runs_the_queue_and_a_command_waits_for_it(
    settings: Settings, spool: Path
) -> None:
    write_call_file(spool, "a.call", f"PJSIP/{NUM}@trunk")
    runner = RunnerTask(settings)
    table = Table(settings)
    queue = CascadeQueue(table)
    await runner.start()
    try:
        await until_async(lambda: queue.runner_active("pbx1"), "the gateway's runner")
        plan = CascadePlan(1, "dnc", 1, (NUM,))
        job = await queue.enqueue(plan)
        report = await queue.wait(job, settings)
        assert report is not None and [c.file for c in report.cancelled] == ["a.call"]
        assert spool_names(spool) == set()
        # a second process of the same host does not run the queue meanwhile
        other = CascadeRunner(settings, table)
        assert await other.run_once() == 0
    finally:
        await runner.close()
        await table.close()
    assert not await _exists(settings, table.keys.cascade_lock("pbx1"))


async def test_plans_waiting_together_are_merged_into_one_scan_and_split_back(
    settings: Settings, spool: Path
) -> None:
    write_call_file(spool, "a.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "b.call", f"PJSIP/{OTHER}@trunk")
    write_call_file(spool, "c.call", "PJSIP/+33611111111@trunk")
    table = Table(settings)
    queue = CascadeQueue(table)
    runner = CascadeRunner(settings, table)
    try:
        await runner._ensure_group("0")  # this host's group, from the start of the stream
        first = await queue.enqueue(CascadePlan(1, "dnc", 1, (NUM,)))
        second = await queue.enqueue(CascadePlan(1, "dnc", 1, ("+3369*",)))
        assert await runner.run_once() == 2
        one = await queue.result(first, host_name(settings))
        two = await queue.result(second, host_name(settings))
        assert one is not None and two is not None
        assert [c.file for c in one.cancelled] == ["a.call"]
        assert [c.file for c in two.cancelled] == ["b.call"]
        assert spool_names(spool) == {"c.call"}
        assert await runner.run_once() == 0  # acknowledged: never run twice
    finally:
        await table.close()


async def test_a_whole_list_plan_matches_what_is_enforced_when_it_runs(
    settings: Settings, spool: Path, admin: SyncAdmin
) -> None:
    admin.add("dnc", ["+3361*"])
    info = admin.table.get_list("dnc")
    write_call_file(spool, "a.call", f"PJSIP/{NUM}@trunk")
    write_call_file(spool, "b.call", f"PJSIP/{OTHER}@trunk")
    table = Table(settings)
    try:
        queue = CascadeQueue(table)
        job = await queue.enqueue(CascadePlan(info.id, "dnc", 1, (), whole_list=True))
        report = await queue.wait(job, settings)  # no gateway here: runs it itself
        assert report is not None and [c.file for c in report.cancelled] == ["a.call"]
        assert [c.entry for c in report.cancelled] == ["+3361*"]
    finally:
        await table.close()


async def _exists(settings: Settings, key: str) -> bool:
    table = Table(settings)
    try:
        return bool(await table.r.exists(key))
    finally:
        await table.close()


async def test_jobs_a_dead_runner_took_are_run_by_the_next(settings: Settings, spool: Path) -> None:
    write_call_file(spool, "a.call", f"PJSIP/{NUM}@trunk")
    table = Table(settings)
    try:
        queue = CascadeQueue(table)
        dead = CascadeRunner(settings, table)
        await dead._ensure_group("0")
        job = await queue.enqueue(CascadePlan(1, "dnc", 1, (NUM,)))
        assert [j for j, _plan in await dead._read(block_ms=None)] == [job]  # then it died
        report = await queue.wait(job, settings)  # no lock held: this process runs it
        assert report is not None and [c.file for c in report.cancelled] == ["a.call"]
        pending = await table.r.xpending(table.keys.cascade_queue, dead.group)
        assert pending["pending"] == 0
    finally:
        await table.close()
