"""The cascade as a plan and a queue.

A service that makes entries of a *block* list enforced (add, approve, restore, an
import) does not touch Asterisk's spool or AMI: it returns a :class:`CascadePlan` —
which entries (or "every enforced entry of the list"), whether the list blocks
outbound calls, its campaigns, whether to hang up live calls — and queues it
(:meth:`CascadeQueue.enqueue`, a job id). The gateway, the process beside Asterisk's
spool and AMI, runs the queue (:class:`CascadeRunner`), so the CLI, the HTTP API and
the console reach the spool only through it.

- **One runner per host.** Jobs go to one Redis stream; each host reads it through its
  own consumer group (every host has its own spool), and a lock per host
  (``SET NX PX``, renewed while it runs) lets one process of the host run them.
- **Merged, one scan at a time.** A runner takes the jobs waiting, merges those that
  name entries (same direction, campaigns and hang-up choice) into one set of targets,
  scans the spool once for them in a worker thread, and gives each job the part of
  the result whose numbers its own entries match.
- **Results** are stored per job and host for a day (:meth:`CascadeQueue.result`),
  and what a run did — call files cancelled with their numbers, live calls hung up,
  call files left in place, what could not be done — is an event (``cascade``) in the
  trail of the list whose change caused it, naming that change (its op, actor, time
  and batch) and the host (:func:`cascade_event`). A run that found nothing to do
  adds nothing to the trail.
- **A command waits** (:meth:`CascadeQueue.wait`): while a gateway of this host holds
  the lock, for its report (up to ``cascade_wait_s``); when none does (no gateway
  running here), the waiting process takes the lock and runs the queue itself, so a
  cascade is never lost for want of a gateway.

Semantics of one run (what is cancelled, what is left, live hang-ups) are those of
:func:`callscreen.asterisk.cascade.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from callscreen.asterisk import cascade
from callscreen.asterisk.cascade import CascadeReport, EntryTargets, LiveCall, QueuedCall, Targets
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, EntryRecord, Scope
from callscreen.core.numbers import EntryKey
from callscreen.core.times import iso_ms
from callscreen.schema.keys import Keys
from callscreen.services import audit, entries, store
from callscreen.services.bulk import Bulk
from callscreen.services.context import Context
from callscreen.services.table import ListInfo, Table

log = logging.getLogger("callscreen.cascade")

QUEUE_MAXLEN = 10_000
RESULT_TTL_S = 86_400
LOCK_TTL_MS = 15_000
READ_BATCH = 100
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class CascadePlan:
    """What must be cancelled after a change: the calls to ``targets`` (entries as
    written, ``+33123456789`` or ``+33*``; empty with ``whole_list``: every entry of the
    list enforced when the plan runs), on a list that blocks ``outbound`` calls or
    not, of ``campaigns`` (None: a global list), live calls too if ``hangup_live``."""

    list_id: int
    list_name: str
    entries: int
    targets: tuple[str, ...] = ()
    whole_list: bool = False
    outbound: bool = True
    campaigns: tuple[str, ...] | None = None
    hangup_live: bool = False
    # the change that caused it, for its record in the trail (empty in plans queued by
    # earlier releases)
    op: str = ""
    batch: int | None = None
    by: str = ""
    via: str = ""
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = list(self.targets)
        data["campaigns"] = None if self.campaigns is None else list(self.campaigns)
        return data

    def encode(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: str) -> CascadePlan:
        data = json.loads(raw)
        data["targets"] = tuple(data["targets"])
        if data["campaigns"] is not None:
            data["campaigns"] = tuple(data["campaigns"])
        return cls(**data)

    def entry_targets(self) -> EntryTargets:
        return EntryTargets.of(_key(t) for t in self.targets)


def _key(display: str) -> EntryKey:
    return EntryKey(display.strip("+*"), display.endswith("*"))


async def plan_for_entries(
    ctx: Context,
    info: ListInfo,
    keys: Sequence[EntryKey],
    hangup_live: bool | None,
    *,
    op: str = "",
    batch: int | None = None,
) -> CascadePlan | None:
    """The plan after a change to ``keys`` of ``info`` (``op``: add, approve, restore;
    ``batch``: the change's batch, when it has one): the calls to those of them
    enforced now, if ``info`` is a block list and the cascade is enabled. None when
    there is nothing to do."""
    if info.action is not Action.BLOCK or not ctx.settings.cascade_enabled:
        return None
    now = ctx.clock()
    records = await entries.read_records(ctx.table, info, keys)
    enforced = [k.display for k, r in zip(keys, records, strict=True) if r and r.enforced(now)]
    if not enforced:
        return None
    return await _plan(
        ctx, info, len(enforced), tuple(enforced), False, hangup_live, op=op, batch=batch
    )


async def plan_for_list(
    ctx: Context,
    info: ListInfo,
    count: int,
    hangup_live: bool | None,
    *,
    op: str = "",
    batch: int | None = None,
) -> CascadePlan | None:
    """The plan after a change too big to name its entries (``approve --all-pending``,
    an import that made ``count`` entries enforced): every enforced entry of the block
    list ``info``. None when there is nothing to do."""
    if info.action is not Action.BLOCK or not ctx.settings.cascade_enabled or count <= 0:
        return None
    return await _plan(ctx, info, count, (), True, hangup_live, op=op, batch=batch)


async def _plan(
    ctx: Context,
    info: ListInfo,
    count: int,
    targets: tuple[str, ...],
    whole: bool,
    hangup_live: bool | None,
    *,
    op: str,
    batch: int | None,
) -> CascadePlan:
    campaigns = None
    if info.scope is Scope.CAMPAIGN:
        campaigns = tuple(await ctx.table.campaigns_of(info.id))
    hangup = ctx.settings.cascade_hangup_live if hangup_live is None else hangup_live
    return CascadePlan(
        info.id,
        info.name,
        count,
        targets,
        whole,
        info.direction is not Direction.INBOUND,
        campaigns,
        hangup,
        op=op,
        batch=batch,
        by=ctx.actor.name,
        via=ctx.actor.via,
        at=ctx.clock(),
    )


# notes that say the cascade had nothing to do here, not that it failed
_QUIET_NOTES = ("no spool directory configured", "an inbound-only list")
_LISTED = 20  # call files and channels named in one event's detail, at most


def worth_recording(report: CascadeReport) -> bool:
    """Whether a run goes to the trail: it cancelled, left in place or hung up calls,
    or it could not do all it was asked (a note other than "nothing to do here": no
    spool configured, an inbound-only list — every change of a site without call files
    would otherwise add a record saying so)."""
    if report.cancelled or report.left_due or report.hung_up:
        return True
    return any(not note.startswith(_QUIET_NOTES) for note in report.notes)


def cascade_event(report: CascadeReport, cause: str) -> tuple[tuple[str, ...], int, str]:
    """The trail's record of one run: the entries whose calls it touched, how many
    calls (files cancelled and left, live calls hung up), and the detail — ``cause``
    (which change, which host) then each call file with its number, each channel hung
    up, each file left in place (at most :data:`_LISTED` of each, then how many more)
    and the notes."""

    def listed(items: Sequence[str]) -> str:
        more = f", and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
        return ", ".join(items[:_LISTED]) + more

    parts = [cause]
    if report.cancelled:
        files = [f"{c.file} ({c.number})" for c in report.cancelled]
        parts.append(f"cancelled {len(files)} queued call file(s): {listed(files)}")
    if report.hung_up:
        channels = [f"{c.channel} ({c.number})" for c in report.hung_up]
        parts.append(f"hung up {report.hung_up_calls} live call(s): {listed(channels)}")
    if report.left_due:
        files = [f"{c.file} ({c.number})" for c in report.left_due]
        parts.append(f"left {len(files)} due call file(s) in place: {listed(files)}")
    parts += report.notes
    touched = [c.entry for c in (*report.cancelled, *report.left_due)]
    entries_hit = tuple(dict.fromkeys(touched + [c.entry for c in report.hung_up]))
    count = len(report.cancelled) + len(report.left_due) + report.hung_up_calls
    return entries_hit, count, "; ".join(parts)


def plan_cause(plan: CascadePlan, job: str, host: str) -> str:
    """What caused a run, for its record: ``cascade of add by alice at TIME (batch 7,
    job 1733-0) on pbx1``."""
    what = f"cascade of {plan.op or 'a change'}"
    if plan.by:
        what += f" by {plan.by}"
    if plan.at:
        what += f" at {iso_ms(plan.at)}"
    ids = ([f"batch {plan.batch}"] if plan.batch is not None else []) + [f"job {job}"]
    return f"{what} ({', '.join(ids)}) on {host}"


def host_name(settings: Settings) -> str:
    """The host whose spool a runner serves: ``node_name``, else the machine's name."""
    return settings.node_name or socket.gethostname()


class CascadeQueue:
    """Queue plans and read their results (every front end, through the services)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.keys = table.keys

    async def enqueue(self, plan: CascadePlan) -> str:
        """Queue ``plan``; its job id."""
        job = await store.wait(
            self.table.r.xadd(
                self.keys.cascade_queue,
                {"plan": plan.encode()},
                maxlen=QUEUE_MAXLEN,
                approximate=True,
            )
        )
        return str(job)

    async def result(self, job: str, host: str) -> CascadeReport | None:
        """The report of ``job`` on ``host``, once its runner has run it."""
        raw = await store.wait(self.table.r.hget(self.keys.cascade_result(job), host))
        return CascadeReport.from_json(json.loads(raw)) if raw else None

    async def runner_active(self, host: str) -> bool:
        return bool(await store.wait(self.table.r.exists(self.keys.cascade_lock(host))))

    async def wait(self, job: str, settings: Settings) -> CascadeReport | None:
        """The report of ``job`` on this host: from the gateway's runner when one runs
        here (None if it does not report within ``cascade_wait_s``), else from running
        the queue in this process."""
        host = host_name(settings)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.cascade_wait_s
        while True:
            report = await self.result(job, host)
            if report is not None:
                return report
            if not await self.runner_active(host):
                runner = CascadeRunner(settings, self.table)
                if await runner.run_once(since=_before(job)):
                    continue
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(POLL_S)


class CascadeRunner:
    """Runs this host's share of the queue: :meth:`run_forever` in the gateway,
    :meth:`run_once` where no gateway runs."""

    def __init__(self, settings: Settings, table: Table) -> None:
        self.settings = settings
        self.table = table
        self.keys: Keys = table.keys
        self.host = host_name(settings)
        self.group = f"host:{self.host}"
        self.token = secrets.token_hex(8)
        self.lock = self.keys.cascade_lock(self.host)

    async def _ensure_group(self, start: str = "$") -> None:
        """This host's consumer group, made at its first run: from the jobs queued
        after ``start`` (``$``: from now on; older jobs are not this host's business)."""
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
            await self.table.r.xgroup_create(
                self.keys.cascade_queue, self.group, id=start, mkstream=True
            )

    async def _acquire(self) -> bool:
        r = self.table.r
        got = await store.wait(r.set(self.lock, self.token, nx=True, px=LOCK_TTL_MS))
        return bool(got) or await store.wait(r.get(self.lock)) == self.token

    async def _renew(self) -> None:
        if await store.wait(self.table.r.get(self.lock)) == self.token:
            await store.wait(self.table.r.pexpire(self.lock, LOCK_TTL_MS))

    async def _release(self) -> None:
        if await store.wait(self.table.r.get(self.lock)) == self.token:
            await store.wait(self.table.r.delete(self.lock))

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[bool]:
        held = await self._acquire()
        try:
            yield held
        finally:
            if held:
                await self._release()

    async def run_once(self, since: str = "$") -> int:
        """Run the jobs waiting for this host, if no other process of it runs them;
        how many jobs were run. ``since``: where this host's first run starts (a job
        id: the jobs after it)."""
        async with self._holding() as held:
            if not held:
                return 0
            await self._ensure_group(since)
            done = await self._run_orphans()
            while batch := await self._read(block_ms=None):
                await self._run(batch)
                done += len(batch)
            return done

    async def run_forever(self, stop: asyncio.Event) -> None:
        """The gateway's loop: hold the lock (or wait for it), run jobs as they come,
        until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self._ensure_group()  # before the lock: a held lock means a group
                if not await self._acquire():
                    await _wait_event(stop, LOCK_TTL_MS / 3000)
                    continue
                await self._run_orphans()
                while not stop.is_set():
                    await self._renew()
                    batch = await self._read(block_ms=1000)
                    if batch:
                        await self._run(batch)
            except Exception:
                log.exception("cascade runner failed; retrying")
                await _wait_event(stop, 1.0)
        with contextlib.suppress(Exception):
            await self._release()

    async def _run_orphans(self) -> int:
        """Run the jobs a runner of this host took and never finished (it died): with
        the lock held, no other runner of the host is alive, so every job pending in
        the host's group is an orphan. How many were run."""
        done = 0
        start = "0-0"
        while True:
            reply = await store.wait(
                self.table.r.xautoclaim(
                    self.keys.cascade_queue,
                    self.group,
                    self.token,
                    min_idle_time=0,
                    start_id=start,
                    count=READ_BATCH,
                )
            )
            start, items = str(reply[0]), reply[1]
            batch = self._decode([(job, fields) for job, fields in items if fields])
            if batch:
                await self._run(batch)
                done += len(batch)
            if start == "0-0":
                return done

    def _decode(self, items: Any) -> list[tuple[str, CascadePlan]]:
        out: list[tuple[str, CascadePlan]] = []
        for job, fields in items:
            try:
                out.append((str(job), CascadePlan.decode(fields["plan"])))
            except (KeyError, ValueError, TypeError):
                log.warning("cascade job %s unreadable; skipped", job)
        return out

    async def _read(self, block_ms: int | None) -> list[tuple[str, CascadePlan]]:
        reply = await store.wait(
            self.table.r.xreadgroup(
                self.group,
                self.token,
                {self.keys.cascade_queue: ">"},
                count=READ_BATCH,
                block=block_ms,
            )
        )
        out: list[tuple[str, CascadePlan]] = []
        for _stream, items in reply or ():
            out += self._decode(items)
        return out

    async def _run(self, jobs: list[tuple[str, CascadePlan]]) -> None:
        groups: dict[tuple[bool, tuple[str, ...] | None, bool], list[tuple[str, CascadePlan]]]
        groups = {}
        for job, plan in jobs:
            key = (plan.outbound, plan.campaigns, plan.hangup_live)
            if plan.whole_list:
                await self._finish([(job, plan)], await self._scan(plan, None))
            else:
                groups.setdefault(key, []).append((job, plan))
        for members in groups.values():
            merged = EntryTargets.of(_key(t) for _job, plan in members for t in plan.targets)
            report = await self._scan(members[0][1], merged)
            await self._finish(members, report)

    async def _scan(self, plan: CascadePlan, targets: EntryTargets | None) -> CascadeReport:
        """One cascade run: the spool's file work in a worker thread, AMI on this loop;
        a whole list's targets read with a synchronous connection of their own there."""
        bulk = Bulk(self.settings) if targets is None else None
        try:
            chosen: Targets = targets if bulk is None else ListTargets(bulk, plan)  # type: ignore[assignment]
            return await cascade.run(
                self.settings,
                chosen,
                entries=plan.entries,
                outbound=plan.outbound,
                campaigns=plan.campaigns,
                hangup_live=plan.hangup_live,
            )
        finally:
            if bulk is not None:
                bulk.close()

    async def _finish(self, members: list[tuple[str, CascadePlan]], report: CascadeReport) -> None:
        pipe = self.table.r.pipeline(transaction=False)
        for job, plan in members:
            own = report if len(members) == 1 else _share(report, plan)
            key = self.keys.cascade_result(job)
            pipe.hset(key, self.host, json.dumps(own.to_json(), ensure_ascii=False))
            pipe.expire(key, RESULT_TTL_S)
            pipe.xack(self.keys.cascade_queue, self.group, job)
        await store.wait(pipe.execute())
        for job, plan in members:
            own = report if len(members) == 1 else _share(report, plan)
            if worth_recording(own):
                await self._record(job, plan, own)

    async def _record(self, job: str, plan: CascadePlan, report: CascadeReport) -> None:
        """The run's event in the trail of the list whose change caused it. A failure
        to write it is logged: the calls were cancelled all the same, and the report
        stays readable by job id for a day."""
        hit, count, detail = cascade_event(report, plan_cause(plan, job, self.host))
        try:
            await audit.record(
                self.table,
                plan.list_id,
                "cascade",
                by=plan.by or "cascade",
                via=f"gateway:cascade@{self.host}",
                list_name=plan.list_name,
                count=count,
                entries=hit,
                batch=plan.batch,
                detail=detail,
            )
        except Exception:
            log.exception("cascade job %s: its record in the trail was not written", job)


def _share(report: CascadeReport, plan: CascadePlan) -> CascadeReport:
    """The part of a merged run's report that concerns ``plan``'s own entries."""
    targets = plan.entry_targets()

    def mine(calls: Sequence[QueuedCall]) -> tuple[QueuedCall, ...]:
        return tuple(c for c in calls if targets.match([c.number.lstrip("+")]))

    hung: tuple[LiveCall, ...] = tuple(
        c for c in report.hung_up if targets.match([c.number.lstrip("+")])
    )
    return CascadeReport(
        entries=plan.entries,
        spool_dir=report.spool_dir,
        spool_checked=report.spool_checked,
        cancelled=mine(report.cancelled),
        left_due=mine(report.left_due),
        hangup_requested=report.hangup_requested,
        hung_up=hung,
        notes=report.notes,
    )


def _before(job: str) -> str:
    """A stream id just before ``job`` (``MS-SEQ``)."""
    ms, seq = (int(part) for part in job.split("-"))
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


class ListTargets:
    """Targets given as a whole list: every entry of it that is enforced when matched.
    One pipelined read (synchronous, in the runner's worker thread) for all the
    numbers asked about."""

    def __init__(self, bulk: Bulk, plan: CascadePlan) -> None:
        self.bulk = bulk
        self.list_id = plan.list_id

    def match(self, numbers: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        bulk = self.bulk
        buckets = bulk.buckets

        def read() -> list[Any]:
            pipe = bulk.r.pipeline(transaction=False)
            for digits in wanted:
                key = EntryKey(digits, False)
                hkey, hfield = entries.entry_location(bulk.keys, buckets, self.list_id, key)
                pipe.hget(hkey, hfield)
                prefixes = [digits[:end] for end in range(len(digits), 0, -1)]
                pipe.hmget(bulk.keys.prefixes(self.list_id), prefixes)
            result: list[Any] = pipe.execute()
            return result

        replies = store.call(read)
        now = bulk.clock()
        found: dict[str, str] = {}
        for index, digits in enumerate(wanted):
            exact, prefixed = replies[2 * index], replies[2 * index + 1]
            if exact and EntryRecord.decode(str(exact)).enforced(now):
                found[digits] = "+" + digits
                continue
            for end, raw in zip(range(len(digits), 0, -1), prefixed, strict=True):
                if raw and EntryRecord.decode(str(raw)).enforced(now):
                    found[digits] = "+" + digits[:end] + "*"
                    break
        return found


class RunnerTask:
    """The gateway's cascade runner as a part it starts and closes: a task running
    :meth:`CascadeRunner.run_forever` over a connection of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._table: Table | None = None

    async def start(self) -> None:
        if not self.settings.cascade_enabled:
            return
        self._stop.clear()
        self._table = Table(self.settings)
        runner = CascadeRunner(self.settings, self._table)
        self._task = asyncio.create_task(runner.run_forever(self._stop), name="cascade runner")

    async def close(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        table, self._table = self._table, None
        if table is not None:
            await table.close()
