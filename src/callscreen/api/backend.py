"""The one door from the HTTP API into the services: an async method per operation.

Routes never touch Redis or a service themselves; they call a :class:`Backend` bound
to the caller (:meth:`Backend.acting_as`: the actor every change is recorded as, and
the key whose list restriction applies). Today's admin service is synchronous, so
each operation runs one :class:`~callscreen.services.admin.Admin` in a worker thread
(``asyncio.to_thread``) over a shared redis-py connection pool; screening and opt-outs
go through the call path's own code (the gateway's screener and opt-out route) on the
API's lean Redis client, on the event loop. When the services become async, this
module is what changes.

List restrictions are applied here: a key restricted to lists reaches only those
(:class:`~callscreen.core.errors.Forbidden` otherwise), and sees the other lists'
matches in decisions as ``another list``, without name or reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import IO, Any, TextIO, TypeVar, cast

import redis

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
    NotFound,
)
from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.gateway import optout
from callscreen.reports.report import Order, ReportService
from callscreen.schema.attempts import AttemptRecord, Outcome
from callscreen.services import apikeys, entries, exporter, store
from callscreen.services.admin import (
    Admin,
    CampaignView,
    ChangeResult,
    DeleteResult,
    EntryCursorPage,
    EntryView,
    ListView,
)
from callscreen.services.apikeys import ApiKey
from callscreen.services.audit import Event
from callscreen.services.entries import Position
from callscreen.services.importer import ImportOptions
from callscreen.services.table import ListInfo, Table

T = TypeVar("T")

ANOTHER_LIST = "another list"
IDEMPOTENCY_TTL_S = 24 * 3600
EXPORT_CHUNK = 64 * 1024


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
        client: redis.Redis,
        lean: LeanRedis,
        *,
        actor: str = "",
        key: ApiKey | None = None,
    ) -> None:
        self.settings = settings
        # redis-py's sync/async union return types defeat mypy --strict (as in Table)
        self.client: Any = client
        self.lean = lean
        self.actor = actor
        self.key = key
        self.screener = Screener(settings, lean)

    @classmethod
    def connect(cls, settings: Settings) -> Backend:
        return cls(settings, store.connect(settings), LeanRedis.from_settings(settings))

    def acting_as(self, actor: str, key: ApiKey) -> Backend:
        """The same connections, for one caller."""
        bound = Backend.__new__(Backend)
        bound.settings, bound.client, bound.lean = self.settings, self.client, self.lean
        bound.actor, bound.key, bound.screener = actor, key, self.screener
        return bound

    async def close(self) -> None:
        await self.lean.close()
        await asyncio.to_thread(self.client.close)

    # -- running the sync services --------------------------------------------------------

    def _admin(self) -> Admin:
        return Admin(self.settings, Table(self.settings, self.client))

    async def _run(self, fn: Callable[[Admin], T]) -> T:
        """``fn(admin)`` in a worker thread, with a fresh service over the shared pool."""
        return await asyncio.to_thread(lambda: fn(self._admin()))

    def _restricted(self) -> bool:
        return self.key is not None and self.key.restricted

    def _allowed(self, info: ListInfo) -> ListInfo:
        if self.key is not None and not self.key.may_use_list(info.id):
            raise Forbidden(f"this API key may not use list {info.id}")
        return info

    def _list(self, admin: Admin, list_id: int) -> ListInfo:
        info = admin.table.get_list_by_id(list_id)
        if info is None:
            raise NotFound(f"no list with id {list_id}")
        return self._allowed(info)

    def _unrestricted(self, what: str) -> None:
        if self._restricted():
            raise Forbidden(f"a key restricted to lists cannot {what}")

    # -- health -------------------------------------------------------------------------

    async def ready(self) -> None:
        """Raise :class:`~callscreen.core.errors.StoreUnavailable` if Redis does not answer."""
        await self.lean.call("PING", timeout=self.settings.redis_connect_timeout_ms / 1000)

    # -- keys ---------------------------------------------------------------------------

    async def authenticate(self, secret: str) -> ApiKey:
        return await asyncio.to_thread(
            lambda: apikeys.authenticate(Table(self.settings, self.client), secret)
        )

    async def create_key(
        self, name: str, scopes: Sequence[str], lists: Sequence[str], expires: str | None
    ) -> tuple[ApiKey, str]:
        self._unrestricted("manage keys")
        return await self._run(
            lambda a: apikeys.create(
                a.table, name, scopes, lists=lists, expires=expires, by=self.actor
            )
        )

    async def list_keys(self) -> list[ApiKey]:
        self._unrestricted("manage keys")
        return await self._run(lambda a: apikeys.list_keys(a.table))

    async def revoke_key(self, name: str) -> ApiKey:
        self._unrestricted("manage keys")
        return await self._run(lambda a: apikeys.revoke(a.table, name, by=self.actor))

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
        return await self._run(
            lambda a: a.create_list(
                name,
                action,
                direction,
                campaign_only=scope is Scope.CAMPAIGN,
                description=description,
                by=self.actor,
            )
        )

    async def list_lists(self, name: str | None = None) -> list[ListView]:
        def run(a: Admin) -> list[ListView]:
            views = a.list_lists()
            if name is not None:
                views = [v for v in views if v.name == name]
            if self.key is not None:
                views = [v for v in views if self.key.may_use_list(v.id)]
            return views

        return await self._run(run)

    async def show_list(self, list_id: int) -> ListView:
        return await self._run(lambda a: a.show_list(self._list(a, list_id).name))

    async def update_list(self, list_id: int, changes: dict[str, Any]) -> ListView:
        def run(a: Admin) -> ListView:
            info = self._list(a, list_id)
            return a.update_list(
                info.name,
                new_name=changes.get("name"),
                action=changes.get("action"),
                direction=changes.get("direction"),
                scope=changes.get("scope"),
                description=changes.get("description"),
                by=self.actor,
            )

        return await self._run(run)

    async def delete_list(self, list_id: int) -> DeleteResult:
        self._unrestricted("delete lists")
        return await self._run(lambda a: a.delete_list(self._list(a, list_id).name, by=self.actor))

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
        """One change (one batch): the entries with the same details."""
        return await self._run(
            lambda a: a.add(
                self._list(a, list_id).name,
                entries,
                reason=reason,
                external_id=external_id,
                expires=expires,
                by=self.actor,
                source="api",
                status=status,
            )
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
        return await self._run(
            lambda a: a.page_entries(
                self._list(a, list_id).name, status=status, search=search, limit=limit, after=after
            )
        )

    async def show_entry(self, list_id: int, entry: str) -> tuple[EntryView, list[Event]]:
        def run(a: Admin) -> tuple[EntryView, list[Event]]:
            name = self._list(a, list_id).name
            view = a.show_entry(name, entry)
            return view, a.history(name, entry, limit=100)

        return await self._run(run)

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

        def run(a: Admin) -> ChangeResult:
            name = self._list(a, list_id).name
            if op == "remove":
                return a.remove(name, entries, reason=reason, by=self.actor)
            if op == "restore":
                return a.restore(name, entries, reason=reason, by=self.actor)
            if op == "approve":
                return a.approve(
                    name, entries, permanent=permanent, confirm_broad=confirm_broad, by=self.actor
                )
            if op == "unapprove":
                return a.unapprove(name, entries, by=self.actor)
            raise InvalidInput(f"unknown change {op!r}")

        return await self._run(run)

    async def peek_entries(self, list_id: int, raw_entries: Sequence[str]) -> dict[str, str]:
        """The status of each entry now (``missing`` when the list does not hold it):
        what a change would start from, for a dry run."""

        def run(a: Admin) -> dict[str, str]:
            info = self._list(a, list_id)
            keys = a.parse_entries(raw_entries)
            records = entries.read_records(a.table, info, keys)
            now = time.time()
            return {
                key.display: record.effective_status(now).value if record else "missing"
                for key, record in zip(keys, records, strict=True)
            }

        return await self._run(run)

    async def export_list(
        self, list_id: int, statuses: frozenset[Status] | None
    ) -> tuple[str, AsyncIterator[bytes]]:
        """The list's name and its CSV (the CLI's export format), streamed: the export
        runs in a worker thread that waits while the client is slower than it."""
        info = await self._run(lambda a: self._list(a, list_id))
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

        def produce() -> None:
            sink = Sink()
            try:
                out = cast(IO[str], sink)
                exporter.export_list(
                    self._admin().table, info, out, statuses=statuses, now=time.time()
                )
                sink.flush()
                chunks.put(None)
            except _ExportAbandoned:
                pass
            except BaseException as exc:  # handed to the response, which logs it
                chunks.put(exc)

        async def stream() -> AsyncIterator[bytes]:
            producer = asyncio.get_running_loop().run_in_executor(None, produce)
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

        return info.name, stream()

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
        return await self._run(lambda a: a.assign(campaign, list_names, by=self.actor))

    async def campaign(self, name: str) -> CampaignView:
        return self._campaign_view(await self._run(lambda a: a.campaign(name)))

    async def campaigns(self) -> list[CampaignView]:
        return [self._campaign_view(v) for v in await self._run(lambda a: a.campaigns())]

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
        """The gateway's decision for each number, lookups pipelined on one connection."""
        if direction is Direction.BOTH:
            raise InvalidInput("a call is inbound or outbound")
        decisions = await asyncio.gather(
            *(self.screener.decide(ScreenRequest(n, direction, campaign)) for n in numbers)
        )
        return [self._masked(d) for d in decisions]

    async def opt_out(
        self, number: str, direction: Direction, campaign: str, source: str, note: str
    ) -> Decision:
        """Record an opt-out as the gateway's opt-out route does, then cancel the number's
        queued calls (off the request)."""
        request = ScreenRequest(number, direction, campaign)
        budget = max(self.settings.deadline_ms / 1000, 5.0)
        decision = await optout.opt_out(
            self.settings,
            self.lean,
            request,
            deadline=budget,
            recorded=_cancel_later,
            by=self.actor,
            source=source,
            note=note,
        )
        return self._masked(decision)

    # -- evidence -------------------------------------------------------------------------

    async def history(self, list_id: int | None, *, limit: int, before: str | None) -> list[Event]:
        def run(a: Admin) -> list[Event]:
            if list_id is None:
                self._unrestricted("read the admin trail")
                return a.history(None, limit=limit, before=before)
            return a.history(self._list(a, list_id).name, limit=limit, before=before)

        return await self._run(run)

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

        def run(a: Admin) -> list[AttemptRecord]:
            service = ReportService(self.settings, a.table)
            query = service.query(
                campaign=campaign,
                number=number,
                outcome=outcome,
                direction=direction,
                since=since,
                until=until,
            )
            records, _newest = service.recent(query, limit, before)
            return [self._masked_attempt(r) for r in reversed(records)]

        return await self._run(run)

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

        def run(a: Admin) -> dict[str, Any]:
            service = ReportService(self.settings, a.table)
            report = service.report(
                since=since, until=until, days=days, campaign=campaign, top=top, max_numbers=numbers
            )
            return report.to_json()

        return await self._run(run)

    # -- import jobs (callscreen.api.jobs) ----------------------------------------------------

    async def start_import(self, job: str, request: jobs.ImportRequest, size: int) -> None:
        """Record the job (its file is in place) and run it in the background."""
        record = {**jobs.record(request, jobs.now()), "size": str(size)}
        key = Table(self.settings, self.client).keys.import_job(job)

        def store_it() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping=record)
            pipe.expire(key, jobs.KEEP_S)
            pipe.execute()

        await asyncio.to_thread(lambda: store.call(store_it))
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
        key = Table(self.settings, self.client).keys.import_job(job)
        await asyncio.to_thread(
            lambda: store.call(
                lambda: self.client.hset(
                    key, mapping={"state": "queued", "heartbeat": repr(jobs.now()), "error": ""}
                )
            )
        )
        self._background(self._run_import(job))
        return await self.import_status(job)

    async def _job_data(self, job: str) -> dict[str, str]:
        key = Table(self.settings, self.client).keys.import_job(job)
        data: dict[str, str] = await asyncio.to_thread(
            lambda: store.call(lambda: self.client.hgetall(key))
        )
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
        key = Table(self.settings, self.client).keys.import_job(job)
        data: dict[str, str] = await asyncio.to_thread(
            lambda: store.call(lambda: self.client.hgetall(key))
        )
        request = jobs.ImportRequest(**json.loads(data["request"]))
        progress = {"bytes": 0, "rows": 0}
        errors = jobs.CountingWriter(jobs.errors_path(self.settings, job))

        def update(**fields: object) -> None:
            values = {
                "heartbeat": repr(jobs.now()),
                "bytes": str(progress["bytes"]),
                "rows": str(progress["rows"]),
                "errors": str(errors.rows),
                **{k: str(v) for k, v in fields.items()},
            }
            store.call(lambda: self.client.hset(key, mapping=values))

        async def beat() -> None:
            await asyncio.to_thread(update)

        def on_progress(_phase: str, bytes_read: int, rows: int) -> None:
            progress["bytes"], progress["rows"] = bytes_read, rows

        def run() -> dict[str, Any]:
            admin = self._admin()
            info = admin.table.get_list_by_id(request.list_id)
            if info is None:
                raise NotFound(f"list {request.list_id} was deleted")
            options = ImportOptions(
                approve=Status(request.approve),
                reason=request.reason,
                source=request.source,
                by=request.by,
                restore_deleted=request.restore_deleted,
                replace=request.replace,
                keep_status=request.keep_status,
            )
            path = str(jobs.upload_path(self.settings, job))
            result = admin.import_file(
                info.name, path, options, errors_out=cast(TextIO, errors), progress=on_progress
            )
            return result.to_json()

        await asyncio.to_thread(lambda: store.call(lambda: self.client.hincrby(key, "runs", 1)))
        await asyncio.to_thread(lambda: update(state="running"))
        beating = asyncio.get_running_loop().create_task(jobs.heartbeat_loop(beat))
        try:
            summary = await asyncio.to_thread(run)
            errors.flush()
            done = {"state": "done", "summary": json.dumps(summary)}
            done["rows"] = summary.get("rows", progress["rows"])
            done["errors"] = summary.get("errors", errors.rows)
            await asyncio.to_thread(lambda: update(**done))
        except CallscreenError as exc:
            message = str(exc)
            await asyncio.to_thread(lambda: update(state="failed", error=message))
        except Exception:
            jobs.log.exception("import job %s failed", job)
            await asyncio.to_thread(lambda: update(state="failed", error="internal error"))
        finally:
            beating.cancel()
            errors.close()

    # -- idempotency ----------------------------------------------------------------------

    def _replay_key(self, idempotency_key: str) -> str:
        name = self.key.name if self.key else "-"
        hashed = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return Table(self.settings, self.client).keys.idempotency(name, hashed)

    async def replay_begin(self, idempotency_key: str, body_hash: str) -> Replay | None:
        """Claim ``idempotency_key`` for a request with this body: None (go on), or the
        response kept for it. 422 for the same key with another body, 409 while the
        first request is still running."""
        redis_key = self._replay_key(idempotency_key)

        def run() -> Replay | None:
            claim = json.dumps({"body": body_hash, "state": "running"})
            if self.client.set(redis_key, claim, nx=True, ex=IDEMPOTENCY_TTL_S):
                return None
            raw = self.client.get(redis_key)
            if raw is None:  # expired in between: claim again
                self.client.set(redis_key, claim, ex=IDEMPOTENCY_TTL_S)
                return None
            kept = json.loads(raw)
            if kept.get("body") != body_hash:
                raise InvalidInput("this Idempotency-Key was used with another body")
            if kept.get("state") == "running":
                raise Conflict("a request with this Idempotency-Key is still running")
            return Replay(int(kept["status"]), kept["response"])

        return await asyncio.to_thread(lambda: store.call(run))

    async def replay_store(self, idempotency_key: str, body_hash: str, replay: Replay) -> None:
        redis_key = self._replay_key(idempotency_key)
        value = json.dumps(
            {"body": body_hash, "state": "done", "status": replay.status, "response": replay.body}
        )
        await asyncio.to_thread(
            lambda: store.call(lambda: self.client.set(redis_key, value, ex=IDEMPOTENCY_TTL_S))
        )

    async def replay_abort(self, idempotency_key: str) -> None:
        redis_key = self._replay_key(idempotency_key)
        await asyncio.to_thread(lambda: store.call(lambda: self.client.delete(redis_key)))


class _ExportAbandoned(Exception):
    """The client went away: the export thread stops writing."""


def _cancel_later(settings: Settings, digits: str) -> None:
    if not (settings.cascade_enabled and settings.spool_dir):
        return
    task = asyncio.get_running_loop().create_task(optout.cancel_queued(settings, digits))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task[None]] = set()
