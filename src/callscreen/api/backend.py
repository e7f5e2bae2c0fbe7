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
import shutil
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import redis

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.precedence import Match
from callscreen.callpath.screener import Screener
from callscreen.core.config import Settings
from callscreen.core.errors import Conflict, Forbidden, InvalidInput, InvalidNumber, NotFound
from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.core.numbers import parse_entry
from callscreen.gateway import optout
from callscreen.reports.report import (
    LogQuery,
    Report,
    ReportService,
    follow_attempts,
    recent_attempts,
)
from callscreen.services import apikeys, browse, entries, exporter, store, tasks, users
from callscreen.services.admin import (
    MAX_PAGE,
    Admin,
    CampaignView,
    ChangeResult,
    DeleteResult,
    EntryPage,
    EntryView,
    ListView,
)
from callscreen.services.apikeys import ApiKey
from callscreen.services.audit import Event
from callscreen.services.table import ListInfo, Table

T = TypeVar("T")

ANOTHER_LIST = "another list"
MAX_CARD_CAMPAIGNS = 50
CARD_LOG_DAYS = 30
FOLLOW_BLOCK_MS = 500
IDEMPOTENCY_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class NumberCard:
    """What the console's number page shows (:meth:`Backend.number_card`)."""

    number: str
    inbound: Decision
    outbound: Decision
    campaigns: tuple[tuple[str, Decision], ...]
    entries: tuple[tuple[EntryView, list[Event], str], ...]
    attempts: tuple[Any, ...]  # AttemptRecord, newest first


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
        after: tuple[str, bool] | None,
        statuses: frozenset[Status] | None = None,
    ) -> EntryPage:
        return await self._run(
            lambda a: a.list_entries(
                self._list(a, list_id).name,
                status=status,
                search=search,
                limit=limit,
                after=after,
                statuses=statuses,
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

    # -- the web console ------------------------------------------------------------------

    def as_user(self, user: users.User) -> Backend:
        """The same connections, for a console user: changes recorded as ``user:NAME``,
        the role's scopes standing in for a key's (no list restriction)."""
        key = ApiKey(user.actor, user.scopes, (), user.created_by, user.created_at)
        return self.acting_as(user.actor, key)

    def _table(self) -> Table:
        return Table(self.settings, self.client)

    async def user_count(self) -> int:
        return await asyncio.to_thread(lambda: users.count(self._table()))

    async def sign_in(self, name: str, password: str, address: str) -> tuple[users.Session, str]:
        return await asyncio.to_thread(
            lambda: users.sign_in(self._table(), name, password, address)
        )

    async def session(self, token: str) -> users.Session:
        return await asyncio.to_thread(lambda: users.session(self._table(), token))

    async def sign_out(self, current: users.Session) -> None:
        await asyncio.to_thread(lambda: users.sign_out(self._table(), current))

    async def list_users(self) -> list[users.User]:
        return await asyncio.to_thread(lambda: users.list_users(self._table()))

    async def add_user(self, name: str, role: users.Role, password: str) -> users.User:
        return await asyncio.to_thread(
            lambda: users.add(self._table(), name, role, password, by=self.actor)
        )

    async def set_user_disabled(self, name: str, disabled: bool) -> users.User:
        return await asyncio.to_thread(
            lambda: users.set_disabled(self._table(), name, disabled, by=self.actor)
        )

    async def set_user_role(self, name: str, role: users.Role) -> users.User:
        return await asyncio.to_thread(
            lambda: users.set_role(self._table(), name, role, by=self.actor)
        )

    async def set_user_password(self, name: str, password: str) -> users.User:
        return await asyncio.to_thread(
            lambda: users.set_password(self._table(), name, password, by=self.actor)
        )

    async def check_lines(self, lines: Sequence[str]) -> list[tuple[int, str, str]]:
        """The lines of a text box that are not an entry: (line number, text, why).
        Blank lines are skipped."""

        def run() -> list[tuple[int, str, str]]:
            bad = []
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        parse_entry(line.strip(), self.settings.default_region)
                    except InvalidNumber as exc:
                        bad.append((number, line, str(exc)))
            return bad

        return await asyncio.to_thread(run)

    async def change_matching(
        self,
        list_id: int,
        op: str,
        *,
        statuses: frozenset[Status],
        search: str,
        reason: str = "",
        permanent: bool = False,
    ) -> ChangeResult:
        """``change_entries`` on every entry matching a filter ("all N matching"):
        every pending entry at once for a plain approval of the review queue, else
        page by page."""

        def run(a: Admin) -> ChangeResult:
            name = self._list(a, list_id).name
            if op == "approve" and statuses == {Status.PENDING} and not search:
                return a.approve(name, all_pending=True, permanent=permanent, by=self.actor)
            chosen: list[str] = []
            after: tuple[str, bool] | None = None
            while True:
                page = a.list_entries(
                    name, statuses=statuses, search=search, limit=MAX_PAGE, after=after
                )
                chosen += [v.entry for v in page.entries]
                if len(page.entries) < MAX_PAGE:
                    break
                last = page.entries[-1].entry
                after = (last.lstrip("+").rstrip("*"), last.endswith("*"))
            if not chosen:
                raise InvalidInput("no entry matches this filter")
            outcomes: dict[str, int] = {}
            result: ChangeResult | None = None
            for start in range(0, len(chosen), entries.CHUNK):
                part = chosen[start : start + entries.CHUNK]
                if op == "remove":
                    result = a.remove(name, part, reason=reason, by=self.actor)
                elif op == "restore":
                    result = a.restore(name, part, reason=reason, by=self.actor)
                elif op == "approve":
                    result = a.approve(name, part, permanent=permanent, by=self.actor)
                elif op == "unapprove":
                    result = a.unapprove(name, part, by=self.actor)
                else:
                    raise InvalidInput(f"unknown change {op!r}")
                for k, n in result.outcomes.items():
                    outcomes[k] = outcomes.get(k, 0) + n
            assert result is not None
            return replace(result, outcomes=outcomes, entries={})

        return await self._run(run)

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

        def run(a: Admin) -> tuple[EntryPage, str]:
            info = self._list(a, list_id)
            now = time.time()
            found = browse.browse(
                a.table,
                info,
                statuses,
                limit,
                browse.Cursor.decode(after),
                now=now,
                keep=keep or browse.Filter(),
            )
            views = a.entry_views(found.items, now)
            counts = entries.status_counts(a.table, info, now)
            total = -1 if found.total is None else found.total
            page = EntryPage(info.name, total, 0, limit, counts, views)
            return page, found.next.encode() if found.next is not None else ""

        return await self._run(run)

    async def exact_entry_page(
        self, list_id: int, raw: str, statuses: frozenset[Status], limit: int
    ) -> EntryPage | None:
        """A search for one whole number, read directly (no scan): a page with the
        entry if the list holds it with one of ``statuses``; None when ``raw`` is not a
        whole valid number (a partial one needs a scan)."""

        def run(a: Admin) -> EntryPage | None:
            info = self._list(a, list_id)
            try:
                key = parse_entry(raw.strip(), self.settings.default_region)
            except InvalidNumber:
                return None
            if key.is_prefix:
                return None
            now = time.time()
            record = entries.read_records(a.table, info, [key])[0]
            items = (
                [(key, record)]
                if record is not None and record.effective_status(now) in statuses
                else []
            )
            counts = entries.status_counts(a.table, info, now)
            views = a.entry_views(items, now)
            return EntryPage(info.name, len(items), 0, limit, counts, views, None, raw)

        return await self._run(run)

    async def export_csv(self, list_id: int, statuses: frozenset[Status] | None) -> str:
        def run(a: Admin) -> str:
            out = io.StringIO()
            exporter.export_list(
                a.table, self._list(a, list_id), out, statuses=statuses, now=time.time()
            )
            return out.getvalue()

        return await self._run(run)

    async def number_card(self, raw: str, attempts: int = 20) -> NumberCard:
        """Everything known of one number: its decision inbound and outbound (and per
        campaign), every entry of every list that matches it, with history, and its
        last attempts."""
        number = parse_entry(raw.strip(), self.settings.default_region)
        if number.is_prefix:
            raise InvalidInput("give a whole number, not a prefix")
        display = number.display
        inbound, outbound = await asyncio.gather(
            self.screener.decide(
                ScreenRequest(display, Direction.INBOUND, ""), include_inactive=True
            ),
            self.screener.decide(
                ScreenRequest(display, Direction.OUTBOUND, ""), include_inactive=True
            ),
        )
        names = await self.campaigns()
        per_campaign = await asyncio.gather(
            *(
                self.screener.decide(ScreenRequest(display, Direction.OUTBOUND, c.name))
                for c in names[:MAX_CARD_CAMPAIGNS]
            )
        )
        matches = {(m.list_name, m.display): m for d in (inbound, outbound) for m in d.matches}
        # an entry of a campaign list is matched only with its campaign
        for d in per_campaign:
            matches.update({(m.list_name, m.display): m for m in d.matches})

        def run(a: Admin) -> tuple[list[tuple[EntryView, list[Event], str]], list[Any]]:
            found = []
            for list_name, entry in sorted(matches):
                try:
                    view = a.show_entry(list_name, entry)
                except NotFound:
                    continue
                found.append((view, a.history(list_name, entry, limit=20), list_name))
            query = LogQuery(number=display, since=time.time() - CARD_LOG_DAYS * 86400)
            recent, _ = recent_attempts(a.table, query, attempts)
            return found, recent

        found, recent = await self._run(run)
        return NumberCard(
            display,
            inbound,
            outbound,
            tuple((c.name, d) for c, d in zip(names, per_campaign, strict=False)),
            tuple(found),
            tuple(reversed(recent)),
        )

    async def attempts(self, query: LogQuery, limit: int) -> tuple[list[Any], str]:
        """The last ``limit`` attempts matching ``query`` (newest last) and the stream
        id to follow from."""
        return await self._run(lambda a: recent_attempts(a.table, query, limit))

    async def follow(
        self, query: LogQuery, after: str, stop: threading.Event
    ) -> AsyncGenerator[list[Any], None]:
        """Attempts logged after ``after``, in groups as they come, until ``stop`` is set
        (each blocking read lasts at most a second, so the stream ends within one)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[Any] | None] = asyncio.Queue()

        def pump() -> None:
            try:
                table = self._table()
                for rec in follow_attempts(
                    table, query, after, block_ms=FOLLOW_BLOCK_MS, stop=stop.is_set
                ):
                    loop.call_soon_threadsafe(queue.put_nowait, [rec])
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, pump)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield item
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.shield(worker), FOLLOW_BLOCK_MS / 1000 + 5)

    async def start_import(
        self, list_id: int, filename: str, upload: BinaryIO, *, mode: str, replace: bool
    ) -> tasks.Task:
        """Save an uploaded CSV under ``api_data_dir`` and import it in the background
        (:mod:`callscreen.services.tasks`); the task, running."""
        if mode not in tasks.MODES:
            raise InvalidInput(f"choose one of {', '.join(tasks.MODES)}")

        def begin() -> tuple[tasks.Task, str]:
            admin = self._admin()
            info = self._list(admin, list_id)
            folder = Path(self.settings.api_data_dir) / "uploads"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{uuid.uuid4().hex}.csv"
            with open(path, "wb") as out:
                shutil.copyfileobj(upload, out, 1024 * 1024)
            size = path.stat().st_size
            name = Path(filename or "upload.csv").name
            task = tasks.create(
                admin.table, info.name, name, size, mode=mode, replace=replace, by=self.actor
            )
            return task, str(path)

        task, path = await asyncio.to_thread(begin)

        def work() -> None:
            try:
                tasks.run(self._admin(), task, path)
            finally:
                Path(path).unlink(missing_ok=True)

        job = asyncio.get_running_loop().run_in_executor(None, work)
        _BACKGROUND_IMPORTS.add(job)
        job.add_done_callback(_BACKGROUND_IMPORTS.discard)
        return task

    async def task(self, task_id: str) -> tasks.Task:
        return await asyncio.to_thread(lambda: tasks.get(self._table(), task_id))

    async def list_tasks(self) -> list[tasks.Task]:
        return await asyncio.to_thread(lambda: tasks.list_tasks(self._table()))

    async def task_errors(self, task_id: str) -> str:
        return await asyncio.to_thread(lambda: tasks.error_rows(self._table(), task_id))

    async def report(self, days: int, campaign: str | None) -> Report:
        return await self._run(
            lambda a: ReportService(self.settings, a.table).report(days=days, campaign=campaign)
        )


def _cancel_later(settings: Settings, digits: str) -> None:
    if not (settings.cascade_enabled and settings.spool_dir):
        return
    task = asyncio.get_running_loop().create_task(optout.cancel_queued(settings, digits))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task[None]] = set()
_BACKGROUND_IMPORTS: set[asyncio.Future[None]] = set()
