"""The number service: everything callscreen knows about one phone number, on one page
(``callscreen number``, ``GET /api/v1/numbers/{number}``, the console's number page).

It answers a data-subject request, so it is complete:

- **lists**: every list that holds the number, exactly or through a prefix, whatever
  the list's action, direction or scope and whatever the entry's status (pending,
  active, permanent, removed, expired), with each entry's reason, source, external id,
  expiry and history; national-registry lists with whether it is listed. One pipelined
  read of every list (an ``HGET`` of its bucket and an ``HMGET`` of the candidate
  prefixes each), then one read of the batch records the entries point at.
- **deleted lists**: for each deleted list (the latest of each name: the trail's
  tombstones), its tombstone and the events of its trail that name the number or one
  of its prefixes (the newest :data:`DELETED_TRAIL_EVENTS` events of each are read).
- **decisions**: what a call would get inbound and outbound, globally and for each
  campaign whose lists hold it (or the one asked for), from the gateway's own lookup
  (:mod:`callscreen.services.checking`'s views over the call path's screener: one
  round trip each, sent together on one connection).
- **log**: the first-contact mark, the entry that last blocked or labeled it, its last
  attempts and its totals by outcome over the records the log keeps, read through the
  number's attempt index in its log shard (no scan of the log).

An entry's history is its own trail of transitions (added, updated, approved, approved
permanently, unapproved, removed, restored, expired), each resolved through the change's
batch record (who, when, why): :class:`~callscreen.services.views.TransitionView`, as
:meth:`EntryService.transitions <callscreen.services.approvals.EntryService.transitions>`
gives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.core.errors import InvalidInput
from callscreen.core.model import Direction, EntryRecord, Scope
from callscreen.core.numbers import EntryKey, parse_entry
from callscreen.core.times import iso_ms
from callscreen.schema.attempts import (
    AttemptRecord,
    Outcome,
    decider_location,
    first_contact_location,
    parse_decider,
)
from callscreen.services import audit, store
from callscreen.services.audit import Event
from callscreen.services.checking import check_result
from callscreen.services.context import Context
from callscreen.services.entries import entry_location
from callscreen.services.logshards import number_attempts
from callscreen.services.table import Batch, ListInfo, Tombstone
from callscreen.services.views import CheckResult, TransitionView, transition_batches

DEFAULT_ATTEMPTS = 20
MAX_ATTEMPTS = 1000
DELETED_TRAIL_EVENTS = 5000  # newest events of a deleted list's trail read for the number
ANOTHER_LIST = "another list"


@dataclass(frozen=True, slots=True)
class NumberEntry:
    """An entry of a list that holds the number (the number itself or a prefix)."""

    entry: str
    kind: str  # number | prefix | registry
    status: str  # effective: pending, active, permanent, deleted, expired
    enforced: bool
    reason: str
    source: str
    external_id: str
    expires: str | None
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None
    removed_by: str
    removed_at: str | None
    removed_reason: str
    enforced_since: str | None  # when it first became enforced in its list
    history: tuple[TransitionView, ...]  # every transition, oldest first

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [h.to_json() for h in self.history]
        return data


@dataclass(frozen=True, slots=True)
class NumberList:
    """A list that holds the number, how it applies, and its entries that match."""

    list_name: str
    list_id: int | None
    action: str
    direction: str
    scope: str
    campaigns: tuple[str, ...]
    registry: str
    entries: tuple[NumberEntry, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["campaigns"] = list(self.campaigns)
        data["entries"] = [e.to_json() for e in self.entries]
        return data


@dataclass(frozen=True, slots=True)
class DeletedList:
    """A deleted list whose trail names the number or one of its prefixes."""

    tombstone: Tombstone
    events: tuple[Event, ...]  # newest first
    complete: bool  # False: its trail is longer than what was read

    def to_json(self) -> dict[str, Any]:
        return {
            **self.tombstone.to_json(),
            "events": [e.to_json() for e in self.events],
            "complete": self.complete,
        }


@dataclass(frozen=True, slots=True)
class NumberDecision:
    """What a call would get: a direction, a campaign (``""``: none) and the check."""

    direction: str
    campaign: str
    check: CheckResult

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "campaign": self.campaign, **self.check.to_json()}


@dataclass(frozen=True, slots=True)
class NumberLog:
    """What the attempt log keeps of the number."""

    first_contact: str | None  # the first allowed (or unscreened) call, ever
    last_list: str  # the list of the entry that last blocked or labeled it
    last_entry: str
    totals: dict[str, int]  # by outcome, over the records the log keeps
    attempts: tuple[AttemptRecord, ...]  # newest first
    more: bool  # older attempts than these remain

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "first_contact": self.first_contact,
            "last_decided_by": {"list_name": self.last_list, "entry": self.last_entry}
            if self.last_list
            else None,
            "totals": dict(self.totals),
            "total": self.total,
            "attempts": [a.to_json() for a in self.attempts],
            "more": self.more,
        }


@dataclass(frozen=True, slots=True)
class NumberCard:
    """Everything known of one number (``callscreen number``). Its JSON shape is
    documented in docs/number.md."""

    number: str
    generated_at: str | None
    lists: tuple[NumberList, ...]
    deleted_lists: tuple[DeletedList, ...]
    decisions: tuple[NumberDecision, ...]
    log: NumberLog
    campaign: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "generated_at": self.generated_at,
            "campaign": self.campaign,
            "lists": [x.to_json() for x in self.lists],
            "registries": [
                {"list_name": x.list_name, "registry": x.registry, "listed": bool(x.entries)}
                for x in self.lists
                if x.registry
            ],
            "deleted_lists": [x.to_json() for x in self.deleted_lists],
            "decisions": [d.to_json() for d in self.decisions],
            "log": self.log.to_json(),
        }

    def restricted(self, visible: set[str], may_use: Callable[[int], bool]) -> NumberCard:
        """The card as a reader restricted to some lists sees it (``visible``: their
        names; ``may_use``: by list id): another list's entries, matches and attempts
        show as ``another list``, with no name, entry, reason or history; a deleted list
        only when the reader could use it."""
        lists = [item for item in self.lists if item.list_name in visible]
        if len(lists) < len(self.lists):  # the others, as one, with nothing of them
            lists.append(NumberList(ANOTHER_LIST, None, "", "", "", (), "", ()))
        deleted = tuple(d for d in self.deleted_lists if may_use(d.tombstone.list_id))
        decisions = tuple(replace(d, check=_mask_check(d.check, visible)) for d in self.decisions)
        log = replace(
            self.log,
            attempts=tuple(_mask_attempt(a, visible) for a in self.log.attempts),
            last_list=self.log.last_list if self.log.last_list in visible else "",
            last_entry=self.log.last_entry if self.log.last_list in visible else "",
        )
        return replace(
            self,
            lists=tuple(lists),
            deleted_lists=deleted,
            decisions=decisions,
            log=log,
        )


def _mask_check(check: CheckResult, visible: set[str]) -> CheckResult:
    matches = tuple(
        m
        if m.list_name in visible
        else replace(m, list_name=ANOTHER_LIST, entry="", reason="", source="")
        for m in check.matches
    )
    shown = not check.list_name or check.list_name in visible
    # the explanation names lists: kept only when it names none the reader may not see
    explained = shown and all(m.list_name in visible for m in check.matches)
    return replace(
        check,
        list_name=check.list_name if shown else ANOTHER_LIST,
        match=check.match if shown else "",
        reason=check.reason if shown else "",
        explanation=check.explanation if explained else "",
        lists_applied=tuple(n for n in check.lists_applied if n in visible),
        matches=matches,
    )


def _mask_attempt(rec: AttemptRecord, visible: set[str]) -> AttemptRecord:
    if not rec.list_name or rec.list_name in visible:
        return rec
    return replace(rec, list_name=ANOTHER_LIST, match="", reason="")


class NumberService:
    """The number page (see the module docstring)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def parse(self, raw: str) -> EntryKey:
        """A whole number as an admin types it (a prefix is refused)."""
        key = parse_entry(raw.strip(), self.ctx.region)
        if key.is_prefix:
            raise InvalidInput("give a whole number, not a prefix")
        return key

    async def card(
        self,
        raw: str,
        *,
        campaign: str | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> NumberCard:
        """Everything known of the number ``raw`` (see the module docstring).
        ``campaign`` limits the per-campaign decisions and the attempts to that
        campaign (``""``: calls with none); ``attempts`` bounds the attempts listed."""
        if not 0 <= attempts <= MAX_ATTEMPTS:
            raise InvalidInput(f"attempts must be between 0 and {MAX_ATTEMPTS}")
        key = self.parse(raw)
        table = self.ctx.table
        infos, assignments, buckets = await asyncio.gather(
            table.all_lists(), table.assignments(), table.buckets()
        )
        holding = await self._holding(key, infos, buckets)
        # the campaigns whose lists hold it (or the one asked for)
        if campaign is not None:
            campaigns = [campaign] if campaign else []
        else:
            campaigns = sorted(
                {c for info, _ in holding if info.id in assignments for c in assignments[info.id]}
            )
        decisions, deleted, log = await asyncio.gather(
            self._decisions(key, infos, assignments, campaigns),
            self._deleted(key),
            self._log(key, campaign, attempts),
        )
        lists = await self._views(holding, assignments)
        return NumberCard(
            number=key.display,
            generated_at=iso_ms(self.ctx.clock()),
            lists=lists,
            deleted_lists=deleted,
            decisions=decisions,
            log=log,
            campaign=campaign,
        )

    # -- the lists ---------------------------------------------------------------------------

    async def _holding(
        self, key: EntryKey, infos: list[ListInfo], buckets: int
    ) -> list[tuple[ListInfo, list[tuple[EntryKey, EntryRecord | None]]]]:
        """Each list that holds the number, with its entries that match (a registry
        listing has no record: None)."""
        table = self.ctx.table
        digits = key.digits
        prefixes = [EntryKey(digits[:k], True) for k in range(1, len(digits) + 1)]
        nanp = len(digits) == 11 and digits.startswith("1")
        pipe = table.r.pipeline(transaction=False)
        asked: list[tuple[ListInfo, str]] = []
        for info in infos:
            if info.registry:
                if info.registry == "us" and nanp:
                    pipe.getbit(table.keys.registry(info.id, digits[1:7]), int(digits[7:11]))
                    asked.append((info, "registry"))
                continue
            hkey, hfield = entry_location(table.keys, buckets, info.id, key)
            pipe.hget(hkey, hfield)
            pipe.hmget(table.keys.prefixes(info.id), [p.digits for p in prefixes])
            asked.append((info, "entries"))
        replies = iter(await store.wait(pipe.execute()) if asked else [])
        found: list[tuple[ListInfo, list[tuple[EntryKey, EntryRecord | None]]]] = []
        for info, kind in asked:
            matched: list[tuple[EntryKey, EntryRecord | None]] = []
            if kind == "registry":
                if int(next(replies)) == 1:
                    matched.append((key, None))
                found.append((info, matched))  # a registry list is shown listed or not
                continue
            exact = next(replies)
            if exact:
                matched.append((key, EntryRecord.decode(str(exact))))
            for prefix, raw in zip(prefixes, next(replies), strict=True):
                if raw:
                    matched.append((prefix, EntryRecord.decode(str(raw))))
            if matched:
                found.append((info, matched))
        return found

    async def _views(
        self,
        holding: list[tuple[ListInfo, list[tuple[EntryKey, EntryRecord | None]]]],
        assignments: dict[int, list[str]],
    ) -> tuple[NumberList, ...]:
        ids: list[int] = []
        for _, matched in holding:
            for _, record in matched:
                if record is not None:
                    ids += [record.batch, record.created_batch, *transition_batches(record)]
                    if record.removal:
                        ids.append(record.removal)
        batches = await self.ctx.table.batches(ids)
        now = self.ctx.clock()
        out: list[NumberList] = []
        for info, matched in holding:
            views = tuple(
                self._entry(entry_key, record, batches, now) for entry_key, record in matched
            )
            out.append(
                NumberList(
                    list_name=info.name,
                    list_id=info.id,
                    action=info.action.value,
                    direction=info.direction.value,
                    scope=info.scope.value,
                    campaigns=tuple(assignments.get(info.id, ())),
                    registry=info.registry,
                    entries=views,
                )
            )
        return tuple(out)

    @staticmethod
    def _entry(
        key: EntryKey, record: EntryRecord | None, batches: dict[int, Batch], now: float
    ) -> NumberEntry:
        if record is None:  # a national registry's listing: a bit, no record
            return NumberEntry(
                key.display, "registry", "active", True, "", "registry", "", None,
                "", None, "", None, "", None, "", None, (),
            )  # fmt: skip
        batch = batches.get(record.batch) or Batch(record.batch, "")
        created = batches.get(record.created_batch) or Batch(record.created_batch, "")
        removal = batches.get(record.removal) if record.removal else None
        status = record.effective_status(now)
        history = TransitionView.of(record, batches, now)
        since = next((h.at for h in history if h.first_enforced), None)
        return NumberEntry(
            entry=key.display,
            kind="prefix" if key.is_prefix else "number",
            status=status.value,
            enforced=record.enforced(now),
            reason=batch.reason,
            source=batch.source,
            external_id=record.external_id,
            expires=iso_ms(record.expires),
            created_by=created.by,
            created_at=iso_ms(created.at) if created.at else None,
            updated_by=batch.by,
            updated_at=iso_ms(batch.at) if batch.at else None,
            removed_by=removal.by if removal else "",
            removed_at=iso_ms(removal.at) if removal and removal.at else None,
            removed_reason=removal.reason if removal else "",
            enforced_since=since,
            history=history,
        )

    async def _deleted(self, key: EntryKey) -> tuple[DeletedList, ...]:
        """The deleted lists whose trail names the number or one of its prefixes."""
        table = self.ctx.table
        latest = await store.wait(table.r.hgetall(table.keys.tombstones))
        if not latest:
            return ()
        names = {key.display} | {
            EntryKey(key.digits[:k], True).display for k in range(1, len(key.digits) + 1)
        }
        out: list[DeletedList] = []
        for name, list_id in sorted(latest.items()):
            tomb = await table.tombstone(name, int(list_id))
            if tomb is None:
                continue
            events = await audit.read(table, tomb.list_id, limit=DELETED_TRAIL_EVENTS)
            hits = tuple(e for e in events if names & set(e.entries))
            if hits:
                complete = len(events) < DELETED_TRAIL_EVENTS
                out.append(DeletedList(tomb, hits, complete))
        return tuple(out)

    # -- the decisions ----------------------------------------------------------------------

    async def _decisions(
        self,
        key: EntryKey,
        infos: list[ListInfo],
        assignments: dict[int, list[str]],
        campaigns: list[str],
    ) -> tuple[NumberDecision, ...]:
        settings = self.ctx.settings
        asked = [(d, c) for c in ["", *campaigns] for d in (Direction.INBOUND, Direction.OUTBOUND)]
        client = LeanRedis.from_settings(settings)
        try:
            screener = Screener(settings, client, clock=self.ctx.clock)
            found: list[Decision] = list(
                await asyncio.gather(
                    *(
                        screener.decide(ScreenRequest(key.display, d, c), include_inactive=True)
                        for d, c in asked
                    )
                )
            )
        finally:
            await client.close()
        out = []
        for (direction, camp), decision in zip(asked, found, strict=True):
            applied = [
                info.name
                for info in infos
                if (info.scope is Scope.GLOBAL or camp in assignments.get(info.id, ()))
                and info.direction in (Direction.BOTH, direction)
            ]
            check = check_result(key.display, direction, camp, decision, applied)
            out.append(NumberDecision(direction.value, camp, check))
        return tuple(out)

    # -- the log ----------------------------------------------------------------------------

    async def _log(self, key: EntryKey, campaign: str | None, limit: int) -> NumberLog:
        table = self.ctx.table
        digits = key.digits
        mark_key, mark_field = first_contact_location(table.keys, digits)
        decider_key, decider_field = decider_location(table.keys, digits)
        pipe = table.r.pipeline(transaction=False)
        pipe.hget(mark_key, mark_field)
        pipe.hget(decider_key, decider_field)
        mark, decider = await store.wait(pipe.execute())

        def keep(rec: AttemptRecord) -> bool:
            return campaign is None or rec.campaign == campaign

        found = await number_attempts(table, digits, limit, keep=keep, totals=True)
        last_list, last_entry = parse_decider(str(decider), key.display) if decider else ("", "")
        return NumberLog(
            first_contact=iso_ms(int(mark) / 1000) if mark else None,
            last_list=last_list,
            last_entry=last_entry,
            totals={o.value: found.totals[o] for o in Outcome if o in found.totals},
            attempts=tuple(found.records),
            more=found.more,
        )
