"""The audit trail is trimmed by age only (``history_retention_days``), never by count."""

from __future__ import annotations

import time

from callscreen.core.config import Settings
from callscreen.core.model import Action
from callscreen.services import audit
from tests.support.blocking import SyncAdmin
from tests.support.clock import Clock

NUM = "+33612345678"
DAY = 86400.0


def make_settings(redis_url: str, **overrides: object) -> Settings:
    return Settings(redis_url=redis_url, default_region="FR", deadline_ms=10_000, **overrides)  # type: ignore[arg-type]


def flood(admin: SyncAdmin, list_id: int, count: int) -> None:
    async def run() -> None:
        for i in range(count):
            await audit.record(admin.ctx.table, list_id, "update", by="flood", detail=str(i))

    admin.run(run())


def stream_ids(admin: SyncAdmin, list_id: int) -> list[str]:
    async def run() -> list[str]:
        page = await admin.ctx.table.r.xrange(admin.ctx.table.keys.history(list_id))
        return [str(event_id) for event_id, _ in page]

    return admin.run(run())


def test_an_entry_add_outlives_ten_thousand_later_events(redis_url: str) -> None:
    with SyncAdmin(make_settings(redis_url)) as admin:
        info = admin.create_list("dnc", Action.BLOCK)
        admin.add("dnc", [NUM], reason="complaint", by="alice")
        flood(admin, info.id, 10_300)
        found = admin.history("dnc", NUM)
        assert [(e.op, e.by, e.reason) for e in found] == [("add", "alice", "complaint")]


def test_records_older_than_the_retention_go_younger_ones_stay(redis_url: str) -> None:
    start = time.time() - 400 * DAY
    clock = Clock(start, ticking=False)
    with SyncAdmin(make_settings(redis_url, history_retention_days=30), clock=clock) as admin:
        info = admin.create_list("dnc", Action.BLOCK)
        # more than one stream node (100 records): MINID ~ drops whole nodes only
        flood(admin, info.id, 250)
        oldest = stream_ids(admin, info.id)[0]
        clock.advance(200 * DAY)
        admin.add("dnc", [NUM], reason="young", by="alice")
        clock.advance(20 * DAY)  # the floor is now 190 days after the old records
        admin.update_list("dnc", description="later")
        ids = stream_ids(admin, info.id)
        assert oldest not in ids and len(ids) < 250
        assert int(ids[0].split("-")[0]) >= int(start * 1000)  # what is left is whole
        assert [e.reason for e in admin.history("dnc", NUM)] == ["young"]
        assert abs(admin.history("dnc", NUM)[0].at - (start + 200 * DAY)) < 1


def test_a_retention_of_zero_keeps_everything(redis_url: str) -> None:
    clock = Clock(time.time() - 4000 * DAY, ticking=False)
    with SyncAdmin(make_settings(redis_url, history_retention_days=0), clock=clock) as admin:
        info = admin.create_list("dnc", Action.BLOCK)
        flood(admin, info.id, 250)
        clock.advance(3999 * DAY)
        admin.update_list("dnc", description="later")
        assert len(stream_ids(admin, info.id)) == 252  # create, 250, update
