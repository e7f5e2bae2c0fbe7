"""The one door from the HTTP API into the services: an async method per operation.

Routes never touch Redis or a service themselves; they call a :class:`Backend` bound
to the caller (:meth:`Backend.acting_as`: the actor every change is recorded as,
``key:NAME`` or ``key:NAME (X-Actor)``, via ``api``, and the key whose list
restriction applies). Each operation calls the async services
(:class:`~callscreen.services.facade.Services`) over one
:class:`~callscreen.services.context.Context` per process (one asyncio redis-py
pool) made to act as the caller; screening and opt-outs go through the call path's
own code (the gateway's screener and opt-out route) on the API's lean Redis client.
Business rules live in the services; this module only maps list ids to lists and
applies the key's restrictions.

List restrictions are applied here: a key restricted to lists reaches only those
(:class:`~callscreen.core.errors.Forbidden` otherwise), and sees the other lists'
matches in decisions as ``another list``, without name or reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import queue
import shutil
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast

from callscreen.api import jobs
from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.precedence import Match
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import (
    CallscreenError,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidNumber,
    NotFound,
    StoreError,
)
from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.core.numbers import parse_entry
from callscreen.gateway import optout
from callscreen.reports.report import (
    LogQuery,
    Order,
    Report,
    ReportService,
    follow_attempts,
    recent_attempts,
)
from callscreen.schema.attempts import AttemptRecord, Outcome
from callscreen.services import browse, entries, numbers, store, users
from callscreen.services.apikeys import ApiKey
from callscreen.services.audit import Event
from callscreen.services.bulkchanges import BulkResult, Selection
from callscreen.services.context import Actor, Context
from callscreen.services.entries import Position
from callscreen.services.facade import Services
from callscreen.services.importer import ImportOptions
from callscreen.services.table import ListInfo
from callscreen.services.views import (
    CampaignView,
    ChangeResult,
    DeleteResult,
    EntryCursorPage,
    EntryPage,
    EntryView,
    ListView,
    TransitionView,
)

log = logging.getLogger("callscreen.api")

ANOTHER_LIST = "another list"
IDEMPOTENCY_TTL_S = 24 * 3600
EXPORT_CHUNK = 64 * 1024
#: what the audit trail records as the origin of every change made through the API
VIA = "api"
#: the origin of every change made through the web console
CONSOLE_VIA = "console"
FOLLOW_BLOCK_MS = 500
#: the actor of what the process does in no caller's name (authenticating a key)
PROCESS_ACTOR = Actor("api", VIA)


@dataclass(frozen=True, slots=True)
class Replay:
    """A response kept under an ``Idempotency-Key``."""

    status: int
    body: Any


class Backend:
    """The services as the API uses them. One per process (``connect``), bound to a
    caller per request (``acting_as``)."""

    def __init__(
        self,
        settings: Settings,
        ctx: Context,
        lean: LeanRedis,
        *,
        actor: str = "",
        key: ApiKey | None = None,
        screener: Screener | None = None,
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.lean = lean
        self.actor = actor
        self.key = key
        self.screener = screener if screener is not None else Screener(settings, lean)
        self.services = Services(ctx)

    @classmethod
    def connect(cls, settings: Settings) -> Backend:
        return cls(
            settings, Context.connect(settings, PROCESS_ACTOR), LeanRedis.from_settings(settings)
        )

    def acting_as(self, actor: str, key: ApiKey) -> Backend:
        """The same connections, for one caller: its changes are recorded as ``actor``
        (via ``api``)."""
        ctx = self.ctx.acting_as(Actor(actor, VIA))
        return Backend(self.settings, ctx, self.lean, actor=actor, key=key, screener=self.screener)

    async def close(self) -> None:
        await self.lean.close()
        await self.ctx.close()

    # -- the caller's reach ---------------------------------------------------------------

    def _restricted(self) -> bool:
        return self.key is not None and self.key.restricted

    def _allowed(self, info: ListInfo) -> ListInfo:
        if self.key is not None and not self.key.may_use_list(info.id):
            raise Forbidden(f"this API key may not use list {info.id}")
        return info

    async def _list(self, list_id: int) -> ListInfo:
        info = await self.ctx.table.get_list_by_id(list_id)
        if info is None:
            raise NotFound(f"no list with id {list_id}")
        return self._allowed(info)

    async def _name(self, list_id: int) -> str:
        return (await self._list(list_id)).name

    def _unrestricted(self, what: str) -> None:
        if self._restricted():
            raise Forbidden(f"a key restricted to lists cannot {what}")

    async def check_schema(self) -> None:
        """Refuse to serve data of another schema version (as ``callscreen serve``
        does); Redis down is no reason not to start (requests get 503 until it is back)."""
        try:
            await self.services.schema.check("api")
        except StoreError as exc:
            log.warning("schema version not checked: %s", exc)

    # -- health -------------------------------------------------------------------------

    async def ready(self) -> None:
        """Raise :class:`~callscreen.core.errors.StoreUnavailable` if Redis does not answer."""
        await self.lean.call("PING", timeout=self.settings.redis_connect_timeout_ms / 1000)

    # -- keys ---------------------------------------------------------------------------

    async def authenticate(self, secret: str) -> ApiKey:
        return await self.services.apikeys.authenticate(secret)

    async def create_key(
        self, name: str, scopes: Sequence[str], lists: Sequence[str], expires: str | None
    ) -> tuple[ApiKey, str]:
        self._unrestricted("manage keys")
        return await self.services.apikeys.create(name, scopes, lists=lists, expires=expires)

    async def list_keys(self) -> list[ApiKey]:
        self._unrestricted("manage keys")
        return await self.services.apikeys.list_keys()

    async def revoke_key(self, name: str) -> ApiKey:
        self._unrestricted("manage keys")
        return await self.services.apikeys.revoke(name)

    # -- lists --------------------------------------------------------------------------

    async def create_list(
        self,
        name: str,
        action: Action,
        direction: Direction,
        scope: Scope,
        description: str,
    ) -> ListView:
        self._unrestricted("create lists")
        return await self.services.lists.create_list(
            name,
            action,
            direction,
            campaign_only=scope is Scope.CAMPAIGN,
            description=description,
        )

    async def list_lists(self, name: str | None = None) -> list[ListView]:
        views = await self.services.lists.list_lists()
        if name is not None:
            views = [v for v in views if v.name == name]
        if self.key is not None:
            views = [v for v in views if self.key.may_use_list(v.id)]
        return views

    async def show_list(self, list_id: int) -> ListView:
        return await self.services.lists.show_list(await self._name(list_id))

    async def update_list(self, list_id: int, changes: dict[str, Any]) -> ListView:
        return await self.services.lists.update_list(
            await self._name(list_id),
            new_name=changes.get("name"),
            action=changes.get("action"),
            direction=changes.get("direction"),
            scope=changes.get("scope"),
            description=changes.get("description"),
        )

    async def delete_list(self, list_id: int) -> DeleteResult:
        self._unrestricted("delete lists")
        return await self.services.lists.delete_list(await self._name(list_id))

    # -- entries ------------------------------------------------------------------------

    async def add_entries(
        self,
        list_id: int,
        entries: Sequence[str],
        *,
        reason: str,
        external_id: str,
        expires: str | None,
        status: Status,
    ) -> ChangeResult:
        """One change (one batch): the entries with the same details. On a block list,
        the cascade is queued for the gateway (not waited for)."""
        return await self.services.entries.add(
            await self._name(list_id),
            entries,
            reason=reason,
            external_id=external_id,
            expires=expires,
            source="api",
            status=status,
        )

    async def list_entries(
        self,
        list_id: int,
        *,
        status: Status | None,
        search: str,
        limit: int,
        after: Position | None,
    ) -> EntryCursorPage:
        """A page of entries in storage order past ``after``, and the next position."""
        return await self.services.entries.page_entries(
            await self._name(list_id), status=status, search=search, limit=limit, after=after
        )

    async def show_entry(
        self, list_id: int, entry: str
    ) -> tuple[EntryView, list[Event], tuple[TransitionView, ...]]:
        name = await self._name(list_id)
        view = await self.services.entries.show_entry(name, entry)
        steps = await self.services.entries.transitions(name, entry)
        return view, await self.services.history.history(name, entry, limit=100), steps

    async def change_entries(
        self,
        list_id: int,
        op: str,
        entries: Sequence[str],
        *,
        reason: str = "",
        permanent: bool = False,
        confirm_broad: bool = False,
    ) -> ChangeResult:
        """``remove``, ``restore``, ``approve`` or ``unapprove`` entries."""
        service = self.services.entries
        if op not in ("remove", "restore", "approve", "unapprove"):
            raise InvalidInput(f"unknown change {op!r}")
        name = await self._name(list_id)
        if op == "remove":
            return await service.remove(name, entries, reason=reason)
        if op == "restore":
            return await service.restore(name, entries, reason=reason)
        if op == "approve":
            return await service.approve(
                name, entries, permanent=permanent, confirm_broad=confirm_broad
            )
        return await service.unapprove(name, entries)

    async def change_selection(
        self,
        list_id: int,
        op: str,
        selection: Selection,
        *,
        reason: str = "",
        permanent: bool = False,
        confirm_broad: bool = False,
        dry_run: bool = False,
    ) -> BulkResult:
        """``remove``, ``restore``, ``approve`` or ``unapprove`` every entry a filter
        selects (or, ``dry_run``, count them), a page at a time."""
        return await self.services.bulk.change(
            await self._name(list_id),
            op,
            selection,
            reason=reason,
            permanent=permanent,
            confirm_broad=confirm_broad,
            dry_run=dry_run,
        )

    async def peek_entries(self, list_id: int, raw_entries: Sequence[str]) -> dict[str, str]:
        """The status of each entry now (``missing`` when the list does not hold it):
        what a change would start from, for a dry run."""
        return await self.services.entries.statuses(await self._name(list_id), raw_entries)

    async def export_list(
        self, list_id: int, statuses: frozenset[Status] | None
    ) -> tuple[str, AsyncIterator[bytes]]:
        """The list's name and its CSV (the CLI's export format), streamed: the export
        service writes from its worker thread, which waits while the client is slower."""
        name = await self._name(list_id)
        transfer = self.services.transfer
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)
        stop = threading.Event()

        class Sink(io.TextIOBase):
            def __init__(self) -> None:
                self.buffer: list[str] = []
                self.size = 0

            def write(self, text: str) -> int:
                if stop.is_set():
                    raise _ExportAbandoned
                self.buffer.append(text)
                self.size += len(text)
                if self.size >= EXPORT_CHUNK:
                    self.flush()
                return len(text)

            def flush(self) -> None:
                if self.buffer:
                    chunks.put("".join(self.buffer).encode())
                    self.buffer, self.size = [], 0

        async def produce() -> None:
            sink = Sink()
            try:
                await transfer.export_list(name, cast(IO[str], sink), statuses=statuses)
                await asyncio.to_thread(sink.flush)
                await asyncio.to_thread(chunks.put, None)
            except _ExportAbandoned:
                pass
            except Exception as exc:  # handed to the response, which logs it
                await asyncio.to_thread(chunks.put, exc)

        async def stream() -> AsyncIterator[bytes]:
            producer = asyncio.get_running_loop().create_task(produce())
            try:
                while True:
                    item = await asyncio.to_thread(chunks.get)
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                stop.set()
                while not chunks.empty():  # unblock a producer waiting on a full queue
                    chunks.get_nowait()
                await producer
                with contextlib.suppress(queue.Full):  # and a reader left waiting
                    chunks.put_nowait(None)

        return name, stream()

    # -- campaigns ----------------------------------------------------------------------

    def _campaign_view(self, view: CampaignView) -> CampaignView:
        if not self._restricted():
            return view
        allowed = set(self.key.list_names) if self.key else set()

        def shown(names: Sequence[str]) -> tuple[str, ...]:
            return tuple(n if n in allowed else ANOTHER_LIST for n in names)

        return CampaignView(view.name, shown(view.lists), shown(view.global_lists))

    async def assign(self, campaign: str, list_names: Sequence[str]) -> CampaignView:
        self._unrestricted("assign lists to campaigns")
        return await self.services.campaigns.assign(campaign, list_names)

    async def campaign(self, name: str) -> CampaignView:
        return self._campaign_view(await self.services.campaigns.campaign(name))

    async def campaigns(self) -> list[CampaignView]:
        return [self._campaign_view(v) for v in await self.services.campaigns.campaigns()]

    # -- screening ------------------------------------------------------------------------

    def _masked(self, decision: Decision) -> Decision:
        """Other lists than the key's, as ``another list`` without a reason."""
        if not self._restricted():
            return decision
        allowed = set(self.key.list_names) if self.key else set()

        def mask(match: Match) -> Match:
            if match.list_name in allowed:
                return match
            return replace(match, list_name=ANOTHER_LIST, reason="", source="")

        shown = tuple(mask(m) for m in decision.matches)
        if decision.list_name and decision.list_name not in allowed:
            return replace(decision, list_name=ANOTHER_LIST, reason="", matches=shown)
        return replace(decision, matches=shown)

    async def check_numbers(
        self, numbers: Sequence[str], direction: Direction, campaign: str
    ) -> list[Decision]:
        """The gateway's decision for each number (the check service, on the API's
        screener), other lists masked for a key restricted to lists."""
        decisions = await self.services.checks.decide_many(
            numbers, direction, campaign, screener=self.screener
        )
        return [self._masked(d) for d in decisions]

    async def opt_out(
        self, number: str, direction: Direction, campaign: str, source: str, note: str
    ) -> Decision:
        """Record an opt-out as the gateway's opt-out route does (the call path's own
        script), then queue its cascade as an add does: the gateway cancels the number's
        queued calls (never live ones: the caller is the one opting out)."""
        request = ScreenRequest(number, direction, campaign)
        budget = max(self.settings.deadline_ms / 1000, 5.0)
        recorded: list[str] = []
        decision = await optout.opt_out(
            self.settings,
            self.lean,
            request,
            deadline=budget,
            recorded=lambda _settings, digits: recorded.append(digits),
            by=self.actor,
            source=source,
            note=note,
        )
        if recorded:
            await self._queue_optout_cascade(recorded[0])
        return self._masked(decision)

    async def _queue_optout_cascade(self, digits: str) -> None:
        # the opt-out is recorded: a failure to queue its cascade is logged, and the
        # answer still says what was recorded
        try:
            await self.services.entries.cascade(
                self.settings.optout_list, ["+" + digits], hangup_live=False
            )
        except CallscreenError as exc:
            log.warning("opt-out of +%s recorded; its cascade was not queued: %s", digits, exc)

    # -- evidence -------------------------------------------------------------------------

    async def history(self, list_id: int | None, *, limit: int, before: str | None) -> list[Event]:
        history = self.services.history
        if list_id is None:
            self._unrestricted("read the admin trail")
            return await history.history(None, limit=limit, before=before)
        return await history.history(await self._name(list_id), limit=limit, before=before)

    def _masked_attempt(self, record: AttemptRecord) -> AttemptRecord:
        if not self._restricted() or not record.list_name:
            return record
        allowed = set(self.key.list_names) if self.key else set()
        if record.list_name in allowed:
            return record
        return replace(record, list_name=ANOTHER_LIST, reason="")

    async def attempts(
        self,
        *,
        campaign: str | None,
        number: str | None,
        outcome: Outcome | None,
        direction: Direction | None,
        since: float | None,
        until: float | None,
        limit: int,
        before: Order | None,
    ) -> list[AttemptRecord]:
        """Screened calls from the attempt log, newest first."""
        service = ReportService(self.settings, self.ctx.table)
        query = service.query(
            campaign=campaign,
            number=number,
            outcome=outcome,
            direction=direction,
            since=since,
            until=until,
        )
        records, _newest = await service.recent(query, limit, before)
        return [self._masked_attempt(r) for r in reversed(records)]

    async def report(
        self,
        *,
        since: date | None,
        until: date | None,
        days: int | None,
        campaign: str | None,
        top: int,
        numbers: int,
    ) -> dict[str, Any]:
        """The report (``callscreen report --json``)."""
        self._unrestricted("read reports (they name every list)")
        service = ReportService(self.settings, self.ctx.table)
        report = await service.report(
            since=since, until=until, days=days, campaign=campaign, top=top, max_numbers=numbers
        )
        return report.to_json()

    # -- import jobs (callscreen.api.jobs) ----------------------------------------------------

    def _job_key(self, job: str) -> str:
        return self.ctx.table.keys.import_job(job)

    async def start_import(self, job: str, request: jobs.ImportRequest, size: int) -> None:
        """Record the job (its file is in place) and run it in the background."""
        now = jobs.now()
        record = {**jobs.record(request, now), "size": str(size)}
        index = self.ctx.table.keys.import_jobs
        pipe = self.ctx.table.r.pipeline(transaction=True)
        pipe.hset(self._job_key(job), mapping=record)
        pipe.expire(self._job_key(job), jobs.KEEP_S)
        pipe.zadd(index, {job: now})
        pipe.zremrangebyscore(index, "-inf", now - jobs.KEEP_S)
        await store.wait(pipe.execute())
        self._background(self._run_import(job))

    async def resume_import(self, job: str) -> dict[str, Any]:
        """Run an interrupted (or failed) job again from its file."""
        current = await self.import_status(job)
        if current["state"] in ("queued", "running"):
            raise Conflict(f"import job {job} is {current['state']}")
        if current["state"] == "done":
            raise Conflict(f"import job {job} is done")
        if not jobs.upload_path(self.settings, job).is_file():
            raise NotFound(f"the file of import job {job} is gone")
        queued = {"state": "queued", "heartbeat": repr(jobs.now()), "error": ""}
        await store.wait(self.ctx.table.r.hset(self._job_key(job), mapping=queued))
        self._background(self._run_import(job))
        return await self.import_status(job)

    async def _job_data(self, job: str) -> dict[str, str]:
        data: dict[str, str] = await store.wait(self.ctx.table.r.hgetall(self._job_key(job)))
        if not data:
            raise NotFound(f"no import job {job}")
        if self.key is not None and not self.key.may_use_list(jobs.list_id_of(data)):
            raise Forbidden("this API key may not use the list of this import job")
        return data

    async def import_status(self, job: str) -> dict[str, Any]:
        return jobs.view(job, await self._job_data(job), jobs.now())

    async def import_errors(self, job: str) -> Path:
        await self._job_data(job)
        path = jobs.errors_path(self.settings, job)
        if not path.is_file():
            raise NotFound(f"import job {job} has no error file yet")
        return path

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _run_import(self, job: str) -> None:
        """The import service over the job's file, as the job's requester; the job's
        record follows its progress (a heartbeat while it runs)."""
        key = self._job_key(job)
        r = self.ctx.table.r
        data: dict[str, str] = await store.wait(r.hgetall(key))
        request = jobs.ImportRequest(**json.loads(data["request"]))
        progress = {"bytes": 0, "rows": 0}
        errors = jobs.CountingWriter(jobs.errors_path(self.settings, job))

        async def update(**fields: object) -> None:
            values = {
                "heartbeat": repr(jobs.now()),
                "bytes": str(progress["bytes"]),
                "rows": str(progress["rows"]),
                "errors": str(errors.rows),
                **{k: str(v) for k, v in fields.items()},
            }
            await store.wait(r.hset(key, mapping=values))

        def on_progress(_phase: str, bytes_read: int, rows: int) -> None:
            progress["bytes"], progress["rows"] = bytes_read, rows

        async def run() -> dict[str, Any]:
            info = await self.ctx.table.get_list_by_id(request.list_id)
            if info is None:
                raise NotFound(f"list {request.list_id} was deleted")
            options = ImportOptions(
                approve=Status(request.approve),
                reason=request.reason,
                source=request.source,
                restore_deleted=request.restore_deleted,
                replace=request.replace,
                keep_status=request.keep_status,
            )
            services = Services(self.ctx.acting_as(Actor(request.by, request.via)))
            path = str(jobs.upload_path(self.settings, job))
            result = await services.transfer.import_file(
                info.name, path, options, errors_out=cast(TextIO, errors), progress=on_progress
            )
            return result.to_json()

        await store.wait(r.hincrby(key, "runs", 1))
        await update(state="running")
        beating = asyncio.get_running_loop().create_task(jobs.heartbeat_loop(update))
        try:
            summary = await run()
            errors.flush()
            done = {"state": "done", "summary": json.dumps(summary)}
            done["rows"] = summary.get("rows", progress["rows"])
            done["errors"] = summary.get("errors", errors.rows)
            await update(**done)
            # nothing can run a finished job again: its upload goes (the errors stay)
            jobs.upload_path(self.settings, job).unlink(missing_ok=True)
        except CallscreenError as exc:
            await update(state="failed", error=str(exc))
        except Exception:
            jobs.log.exception("import job %s failed", job)
            await update(state="failed", error="internal error")
        finally:
            beating.cancel()
            errors.close()
        await self.clean_job_files()

    async def clean_job_files(self) -> int:
        """Remove the import files no job needs any more (:func:`jobs.leftovers`): at
        the API's start and after each job. How many were removed."""
        files = await asyncio.to_thread(jobs.job_files, self.settings)
        if not files:
            return 0
        pipe = self.ctx.table.r.pipeline(transaction=False)
        for job in files:
            pipe.hget(self._job_key(job), "state")
        states = dict(zip(files, await store.wait(pipe.execute()), strict=True))

        def remove() -> int:
            gone = jobs.leftovers(self.settings, files, states, jobs.now())
            for path in gone:
                path.unlink(missing_ok=True)
            return len(gone)

        removed = await asyncio.to_thread(remove)
        if removed:
            jobs.log.info("removed %d import file(s) no job needs", removed)
        return removed

    # -- idempotency ----------------------------------------------------------------------

    def _replay_key(self, idempotency_key: str) -> str:
        name = self.key.name if self.key else "-"
        hashed = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return self.ctx.table.keys.idempotency(name, hashed)

    async def replay_begin(self, idempotency_key: str, body_hash: str) -> Replay | None:
        """Claim ``idempotency_key`` for a request with this body: None (go on), or the
        response kept for it. 422 for the same key with another body, 409 while the
        first request is still running."""
        redis_key = self._replay_key(idempotency_key)
        r = self.ctx.table.r
        claim = json.dumps({"body": body_hash, "state": "running"})
        if await store.wait(r.set(redis_key, claim, nx=True, ex=IDEMPOTENCY_TTL_S)):
            return None
        raw = await store.wait(r.get(redis_key))
        if raw is None:  # expired in between: claim again
            await store.wait(r.set(redis_key, claim, ex=IDEMPOTENCY_TTL_S))
            return None
        kept = json.loads(raw)
        if kept.get("body") != body_hash:
            raise InvalidInput("this Idempotency-Key was used with another body")
        if kept.get("state") == "running":
            raise Conflict("a request with this Idempotency-Key is still running")
        return Replay(int(kept["status"]), kept["response"])

    async def replay_store(self, idempotency_key: str, body_hash: str, replay: Replay) -> None:
        redis_key = self._replay_key(idempotency_key)
        value = json.dumps(
            {"body": body_hash, "state": "done", "status": replay.status, "response": replay.body}
        )
        await store.wait(self.ctx.table.r.set(redis_key, value, ex=IDEMPOTENCY_TTL_S))

    async def replay_abort(self, idempotency_key: str) -> None:
        redis_key = self._replay_key(idempotency_key)
        await store.wait(self.ctx.table.r.delete(redis_key))

    # -- the web console (callscreen.api.console) -------------------------------------------

    def as_user(self, user: users.User) -> Backend:
        """The same connections, for a console user: changes recorded as ``user:NAME``
        (via ``console``), the role's scopes standing in for a key's (no list
        restriction)."""
        key = ApiKey(user.actor, user.scopes, (), user.created_by, user.created_at)
        ctx = self.ctx.acting_as(Actor(user.actor, CONSOLE_VIA))
        return Backend(
            self.settings, ctx, self.lean, actor=user.actor, key=key, screener=self.screener
        )

    async def user_count(self) -> int:
        return await users.count(self.ctx)

    async def sign_in(self, name: str, password: str, address: str) -> tuple[users.Session, str]:
        return await users.sign_in(self.ctx, name, password, address)

    async def session(self, token: str) -> users.Session:
        return await users.session(self.ctx, token)

    async def sign_out(self, current: users.Session) -> None:
        await users.sign_out(self.ctx, current)

    async def list_users(self) -> list[users.User]:
        return await users.list_users(self.ctx)

    async def add_user(self, name: str, role: users.Role, password: str) -> users.User:
        return await users.add(self.ctx, name, role, password)

    async def set_user_disabled(self, name: str, disabled: bool) -> users.User:
        return await users.set_disabled(self.ctx, name, disabled)

    async def set_user_role(self, name: str, role: users.Role) -> users.User:
        return await users.set_role(self.ctx, name, role)

    async def set_user_password(self, name: str, password: str) -> users.User:
        return await users.set_password(self.ctx, name, password)

    async def check_lines(self, lines: Sequence[str]) -> list[tuple[int, str, str]]:
        """The lines of a text box that are not an entry: (line number, text, why).
        Blank lines are skipped."""
        bad = []
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    parse_entry(line.strip(), self.settings.default_region)
                except InvalidNumber as exc:
                    bad.append((number, line, str(exc)))
        return bad

    async def search_entries(
        self,
        list_id: int,
        *,
        statuses: frozenset[Status],
        search: str,
        limit: int,
        after: str,
        count: bool = False,
    ) -> tuple[EntryPage, str]:
        """A page of the entries starting with ``search`` (part of a number, read with
        the default region), in number order past the cursor ``after``, and the cursor
        of the next page ('' after the last): read from the list's number index and
        filtered in Redis (:func:`browse.search`). The page's ``total`` is -1 unless
        ``count`` (every number that starts so read) or the search fits this one
        page."""
        info = await self._list(list_id)
        digits = parse_entry(search.strip().rstrip("*") + "*", self.settings.default_region)
        table = self.ctx.table
        now = self.ctx.clock()
        after_cursor = browse.Cursor.decode(after)
        found = await browse.search(table, info, digits.digits, statuses, limit, after_cursor, now)
        total = -1
        if count:
            total = await browse.count_matching(table, info, digits.digits, statuses, now)
        elif after_cursor is None and found.next is None:
            total = len(found.items)
        views = await self.services.entries.entry_views(found.items, now)
        counts = await entries.status_counts(table, info, now)
        page = EntryPage(info.name, total, 0, limit, counts, views, None, search)
        return page, found.next.encode() if found.next is not None else ""

    async def change_matching(
        self,
        list_id: int,
        op: str,
        *,
        statuses: frozenset[Status],
        search: str,
        reason: str = "",
        permanent: bool = False,
    ) -> BulkResult | ChangeResult:
        """A change of every entry matching a filter ("all N matching" in the console):
        every pending entry at once for a plain approval of the review queue, else the
        bulk service's change by filter (a page at a time; a permanent approval checked
        over the whole selection first)."""
        name = await self._name(list_id)
        if op == "approve" and statuses == {Status.PENDING} and not search:
            return await self.services.entries.approve(name, all_pending=True, permanent=permanent)
        result = await self.services.bulk.change(
            name,
            op,
            Selection(search=search),
            reason=reason,
            permanent=permanent,
            within=statuses,
        )
        if not result.matched:
            raise InvalidInput("no entry matches this filter")
        return result

    async def browse_entries(
        self,
        list_id: int,
        statuses: frozenset[Status],
        limit: int,
        after: str,
        keep: browse.Filter | None = None,
    ) -> tuple[EntryPage, str]:
        """A page of entries in storage order (fast at any size; no search) and the
        cursor of the next page ('' after the last). The page's ``total`` is -1 when
        only a scan could count the entries ``keep`` keeps."""
        info = await self._list(list_id)
        table = self.ctx.table
        now = self.ctx.clock()
        found = await browse.browse(
            table,
            info,
            statuses,
            limit,
            browse.Cursor.decode(after),
            now=now,
            keep=keep or browse.Filter(),
        )
        views = await self.services.entries.entry_views(found.items, now)
        counts = await entries.status_counts(table, info, now)
        total = -1 if found.total is None else found.total
        page = EntryPage(info.name, total, 0, limit, counts, views)
        return page, found.next.encode() if found.next is not None else ""

    async def exact_entry_page(
        self, list_id: int, raw: str, statuses: frozenset[Status], limit: int
    ) -> EntryPage | None:
        """A search for one whole number, read directly (no scan): a page with the
        entry if the list holds it with one of ``statuses``; None when ``raw`` is not a
        whole valid number (a partial one needs a scan)."""
        info = await self._list(list_id)
        try:
            key = parse_entry(raw.strip(), self.settings.default_region)
        except InvalidNumber:
            return None
        if key.is_prefix:
            return None
        table = self.ctx.table
        now = self.ctx.clock()
        record = (await entries.read_records(table, info, [key]))[0]
        items = (
            [(key, record)]
            if record is not None and record.effective_status(now) in statuses
            else []
        )
        counts = await entries.status_counts(table, info, now)
        views = await self.services.entries.entry_views(items, now)
        return EntryPage(info.name, len(items), 0, limit, counts, views, None, raw)

    async def export_csv(self, list_id: int, statuses: frozenset[Status] | None) -> str:
        """A list's CSV (the CLI's export format) whole, for the console's download."""
        out = io.StringIO()
        await self.services.transfer.export_list(await self._name(list_id), out, statuses=statuses)
        return out.getvalue()

    async def number_page(
        self, raw: str, *, campaign: str | None = None, attempts: int = 20
    ) -> numbers.NumberCard:
        """Everything known of one number (:class:`~callscreen.services.numbers.NumberService`);
        a key restricted to lists sees the others as ``another list``."""
        card = await self.services.numbers.card(raw, campaign=campaign, attempts=attempts)
        if not self._restricted() or self.key is None:
            return card
        infos = await self.ctx.table.all_lists()
        key = self.key
        visible = {info.name for info in infos if key.may_use_list(info.id)}
        return card.restricted(visible, key.may_use_list)

    async def recent_attempts(self, query: LogQuery, limit: int) -> tuple[list[Any], str]:
        """The last ``limit`` attempts matching ``query`` (newest last) and the stream
        id to follow from."""
        return await recent_attempts(self.ctx.table, query, limit)

    async def follow(
        self, query: LogQuery, after: str, stop: threading.Event
    ) -> AsyncGenerator[list[Any], None]:
        """Attempts logged after ``after``, in groups as they come, until ``stop`` is set
        (each blocking read lasts at most :data:`FOLLOW_BLOCK_MS`, so the stream ends
        within that)."""
        try:
            async for rec in follow_attempts(
                self.ctx.table, query, after, block_ms=FOLLOW_BLOCK_MS, stop=stop.is_set
            ):
                yield [rec]
        finally:
            stop.set()

    async def start_upload(
        self, list_id: int, filename: str, upload: BinaryIO, *, mode: str, replace: bool
    ) -> jobs.ImportTask:
        """An uploaded CSV as an import job (the API's, :mod:`callscreen.api.jobs`):
        saved under ``api_data_dir``, imported in the background as this user; the
        job as the console shows it."""
        status = jobs.mode_status(mode)
        info = await self._list(list_id)
        job = jobs.new_job_id()
        path = jobs.upload_path(self.settings, job)

        def save() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                shutil.copyfileobj(upload, out, 1024 * 1024)
            return path.stat().st_size

        size = await asyncio.to_thread(save)
        name = Path(filename or "upload.csv").name[:200]
        request = jobs.ImportRequest(
            list_id=info.id,
            list_name=info.name,
            approve=status.value,
            reason=None,
            source=f"upload:{name}",
            restore_deleted=False,
            replace=replace,
            keep_status=False,
            by=self.actor,
            key=self.key.name if self.key else "",
            via=self.ctx.actor.via,
            file=name,
        )
        await self.start_import(job, request, size)
        return await self.task(job)

    async def task(self, job: str) -> jobs.ImportTask:
        """An import job as the console's task log shows it."""
        return jobs.task_of(job, await self._job_data(job), jobs.now())

    async def list_tasks(self) -> list[jobs.ImportTask]:
        """The latest import jobs (the API's and the console's), newest first."""
        r = self.ctx.table.r
        ids = await store.wait(
            r.zrevrange(self.ctx.table.keys.import_jobs, 0, jobs.MAX_TASKS_SHOWN - 1)
        )
        pipe = r.pipeline(transaction=False)
        for job in ids:
            pipe.hgetall(self._job_key(job))
        found: list[dict[str, str]] = await store.wait(pipe.execute())
        now = jobs.now()
        return [
            jobs.task_of(job, data, now)
            for job, data in zip(ids, found, strict=True)
            if data and (self.key is None or self.key.may_use_list(jobs.list_id_of(data)))
        ]

    async def task_errors(self, job: str) -> Path | None:
        """The rows a job refused (CSV ``line,raw,error``), None before there is any."""
        try:
            return await self.import_errors(job)
        except NotFound:
            await self._job_data(job)  # NotFound for no such job
            return None

    async def console_report(self, days: int, campaign: str | None) -> Report:
        return await ReportService(self.settings, self.ctx.table).report(
            days=days, campaign=campaign
        )


class _ExportAbandoned(Exception):
    """The client went away: the export thread stops writing."""


_BACKGROUND: set[asyncio.Task[None]] = set()
