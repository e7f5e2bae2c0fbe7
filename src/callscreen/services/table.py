"""Lists, campaigns and batch records in Redis: the schema's owner on the admin side.

Entries live in :mod:`callscreen.services.entries`; key names in :mod:`callscreen.schema.keys`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import redis
import redis.asyncio

from callscreen.core.campaigns import check_campaign
from callscreen.core.config import Settings
from callscreen.core.errors import Conflict, InvalidName, NotFound, Refused
from callscreen.core.model import Action, Direction, Scope
from callscreen.core.text import free_text
from callscreen.core.times import iso_ms
from callscreen.schema import scripts
from callscreen.schema.keys import (
    BATCH_BUCKET,
    DEFAULT_BUCKETS,
    INDEXED_STATUSES,
    SCHEMA_VERSION,
    Keys,
)
from callscreen.services import store

MAX_LIST_NAME = 500
MAX_DESCRIPTION = 2000
MAX_CAMPAIGN_LISTS = 100


Clock = Callable[[], float]
"""Epoch seconds now; :func:`time.time` in production, a test's own clock in tests."""

ListGuard = Callable[["ListInfo", "ListInfo | None", int], None]
"""Checks a change of a list (before, after or None when deleted, its number of
permanently approved entries) inside the change's transaction; raises to refuse it."""

AssignGuard = Callable[["ListInfo", str, int], None]
#: How :meth:`Table.assign` changes a campaign's lists.
AssignMode = Literal["replace", "add", "remove"]
"""Checks taking a list out of a campaign (the list, the campaign, its number of
permanently approved entries) inside the change's transaction; raises to refuse it."""


def check_name(name: str, what: str, limit: int) -> str:
    """A list or campaign name: 1..limit characters, no control characters."""
    if not name or not name.strip():
        raise InvalidName(f"{what} name must not be empty")
    return free_text(name, f"{what} name", limit, error=InvalidName)


@dataclass(frozen=True, slots=True)
class ListInfo:
    """A named list and how it applies."""

    id: int
    name: str
    action: Action
    direction: Direction
    scope: Scope
    description: str = ""
    created_at: float = 0.0
    created_by: str = ""
    updated_at: float = 0.0
    updated_by: str = ""
    registry: str = ""  # a national registry's list ("us"): read-only but to `registry`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_hash(cls, list_id: int, data: dict[str, str]) -> ListInfo:
        return cls(
            id=list_id,
            name=data["name"],
            action=Action(data["action"]),
            direction=Direction(data["direction"]),
            scope=Scope(data.get("scope", "global")),
            description=data.get("description", ""),
            created_at=float(data.get("created_at", 0)),
            created_by=data.get("created_by", ""),
            updated_at=float(data.get("updated_at", 0)),
            updated_by=data.get("updated_by", ""),
            registry=data.get("registry", ""),
        )


def refuse_registry(info: ListInfo) -> None:
    """Registry lists are read-only to every command but ``callscreen registry``."""
    if info.registry:
        raise Refused(
            f"list {info.name!r} holds the {info.registry.upper()} national registry: it "
            "changes only through `callscreen registry load|update`"
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """What many entries share: why, from where, by whom and when they were changed."""

    id: int
    op: str
    reason: str = ""
    source: str = ""
    by: str = ""
    at: float = 0.0

    def encode(self) -> str:
        return json.dumps(
            {"op": self.op, "r": self.reason, "s": self.source, "by": self.by, "at": self.at},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def decode(cls, batch_id: int, raw: str | bytes | None) -> Batch:
        if not raw:
            return cls(id=batch_id, op="")
        data = json.loads(raw)
        return cls(
            id=batch_id,
            op=data.get("op", ""),
            reason=data.get("r", ""),
            source=data.get("s", ""),
            by=data.get("by", ""),
            at=float(data.get("at", 0)),
        )


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a deleted list besides its history: who deleted it, when, why,
    and the entries it held (``count``; ``detail`` by status)."""

    list_id: int
    list_name: str
    by: str
    at: float
    reason: str
    count: int
    detail: str

    @classmethod
    def from_hash(cls, list_id: int, data: dict[str, str]) -> Tombstone:
        return cls(
            list_id=list_id,
            list_name=data.get("name", ""),
            by=data.get("by", ""),
            at=float(data.get("at", 0)),
            reason=data.get("r", ""),
            count=int(data.get("n", 0)),
            detail=data.get("d", ""),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = iso_ms(self.at)
        return data


# the stored count codes of a list's entries, as a tombstone names them
_HELD = {"p": "pending", "a": "active", "P": "permanent", "d": "deleted"}


class Table:
    """Lists, campaigns and batches over an asyncio redis-py client (admin side).

    ``clock`` gives the time of every change (epoch seconds; tests pass their own).
    """

    def __init__(
        self,
        settings: Settings,
        client: redis.asyncio.Redis | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_tag)
        self.clock = clock
        # redis-py's sync/async union return types defeat mypy --strict; the admin
        # side treats the client as untyped and converts its errors in store.wait
        self.r: Any = client if client is not None else store.connect(settings)
        self._buckets: int | None = None
        # the audit trail's ids follow ``clock`` ("ms-*") unless Redis cannot (before 7.0)
        self.stream_time_ids = True

    async def close(self) -> None:
        await store.close(self.r)

    # -- schema ----------------------------------------------------------------------------

    async def buckets(self) -> int:
        """The number of exact-entry buckets per list, fixed when the table is created."""
        if self._buckets is None:
            with store.converted():
                await self.r.hsetnx(self.keys.meta, "buckets", DEFAULT_BUCKETS)
                await self.r.hsetnx(self.keys.meta, "schema", SCHEMA_VERSION)
                raw = await self.r.hget(self.keys.meta, "buckets")
            self._buckets = int(raw or DEFAULT_BUCKETS)
        return self._buckets

    def reindex(self, pipe: Any) -> None:
        """Queue the rebuild of the lookup index (``lookuplib.lua``) on ``pipe``, after
        the changes of lists or campaigns it holds: in the same ``MULTI``, so that the
        index never disagrees with them. By ``EVAL`` of the source (a ``NOSCRIPT`` error
        inside a transaction would not undo the rest of it)."""
        script = scripts.LOOKUP_INDEX
        pipe.eval(script.source, 1, self.keys.lookup, self.keys.base)

    async def rebuild_lookup_index(self) -> None:
        """Rebuild the lookup index alone (``callscreen migrate``)."""
        pipe = self.r.pipeline(transaction=True)
        self.reindex(pipe)
        await store.wait(pipe.execute())

    # -- batches ---------------------------------------------------------------------------

    async def new_batch(self, op: str, reason: str, source: str, by: str) -> Batch:
        """Record a change shared by many entries; entries point at it by id."""
        if not by:
            raise ValueError("a batch names who made it")
        with store.converted():
            batch_id = int(await self.r.incr(self.keys.batch_seq))
            batch = Batch(batch_id, op, reason, source, by, self.clock())
            await self.r.hset(
                self.keys.batch(batch_id), str(batch_id % BATCH_BUCKET), batch.encode()
            )
        return batch

    async def batches(self, ids: list[int]) -> dict[int, Batch]:
        """Batch records by id (missing ones come back empty)."""
        unique = sorted(set(ids))
        if not unique:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for batch_id in unique:
            pipe.hget(self.keys.batch(batch_id), str(batch_id % BATCH_BUCKET))
        raws = await store.wait(pipe.execute())
        return {bid: Batch.decode(bid, raw) for bid, raw in zip(unique, raws, strict=True)}

    # -- lists -----------------------------------------------------------------------------

    async def create_list(
        self,
        name: str,
        action: Action,
        direction: Direction,
        scope: Scope,
        description: str,
        by: str,
        *,
        registry: str = "",
    ) -> ListInfo:
        """Create a list; its name must be free. ``registry``: a national registry's
        list (:mod:`callscreen.services.registry`), flagged so from its creation on."""
        check_name(name, "list", MAX_LIST_NAME)
        free_text(description, "description", MAX_DESCRIPTION)
        await self.buckets()  # fixes the schema before the first list
        with store.converted():
            list_id = int(await self.r.incr(self.keys.list_seq))
            if not await self.r.hsetnx(self.keys.lists, name, list_id):
                raise Conflict(f"a list named {name!r} already exists")
            now = self.clock()
            info = ListInfo(
                list_id, name, action, direction, scope, description, now, by, now, by, registry
            )
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self.keys.list(list_id), mapping=_list_hash(info))
            if scope is Scope.GLOBAL:
                pipe.sadd(self.keys.global_lists, list_id)
            self.reindex(pipe)
            await pipe.execute()
        return info

    async def list_id(self, name: str) -> int:
        """The id of the list called ``name``."""
        raw = await store.wait(self.r.hget(self.keys.lists, name))
        if raw is None:
            raise NotFound(f"no list named {name!r}")
        return int(raw)

    async def get_list(self, name: str) -> ListInfo:
        list_id = await self.list_id(name)
        data = await store.wait(self.r.hgetall(self.keys.list(list_id)))
        if not data:
            raise NotFound(f"no list named {name!r}")
        return ListInfo.from_hash(list_id, data)

    async def get_list_by_id(self, list_id: int) -> ListInfo | None:
        data = await store.wait(self.r.hgetall(self.keys.list(list_id)))
        return ListInfo.from_hash(list_id, data) if data else None

    async def all_lists(self) -> list[ListInfo]:
        """Every list, by name."""
        ids = await store.wait(self.r.hgetall(self.keys.lists))
        pipe = self.r.pipeline(transaction=False)
        for list_id in ids.values():
            pipe.hgetall(self.keys.list(int(list_id)))
        rows = await store.wait(pipe.execute())
        infos = [
            ListInfo.from_hash(int(list_id), data)
            for list_id, data in zip(ids.values(), rows, strict=True)
            if data
        ]
        return sorted(infos, key=lambda info: info.name)

    async def update_list(
        self,
        name: str,
        *,
        new_name: str | None = None,
        action: Action | None = None,
        direction: Direction | None = None,
        scope: Scope | None = None,
        description: str | None = None,
        by: str,
        guard: ListGuard | None = None,
    ) -> tuple[ListInfo, ListInfo]:
        """Change only what is given; a name can be changed but not emptied. Returns the
        list before and after.

        ``guard(before, after, permanent)`` may refuse the change by raising; it is given
        the list's number of permanently approved entries, read in the transaction that
        makes the change (those counts are watched: an entry approved permanently
        meanwhile makes it retry, and the guard see it).
        """
        if new_name is not None:
            check_name(new_name, "list", MAX_LIST_NAME)
        if description is not None:
            free_text(description, "description", MAX_DESCRIPTION)
        list_id = await self.list_id(name)
        for _attempt in range(10):
            with store.converted():
                try:
                    return await self._update_once(
                        list_id,
                        name,
                        new_name=new_name,
                        action=action,
                        direction=direction,
                        scope=scope,
                        description=description,
                        by=by,
                        guard=guard,
                    )
                except redis.WatchError:
                    continue
        raise Conflict(f"list {name!r} kept changing while being updated; try again")

    async def _update_once(
        self,
        list_id: int,
        name: str,
        *,
        new_name: str | None,
        action: Action | None,
        direction: Direction | None,
        scope: Scope | None,
        description: str | None,
        by: str,
        guard: ListGuard | None,
    ) -> tuple[ListInfo, ListInfo]:
        keys = self.keys
        async with self.r.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.counts(list_id), keys.list(list_id), keys.lists)
            if await pipe.hget(keys.lists, name) != str(list_id):
                raise NotFound(f"no list named {name!r}")
            data = await pipe.hgetall(keys.list(list_id))
            if not data:
                raise NotFound(f"no list named {name!r}")
            info = ListInfo.from_hash(list_id, data)
            changes: dict[str, Any] = {}
            if new_name is not None and new_name != info.name:
                changes["name"] = new_name
            if action is not None:
                changes["action"] = action
            if direction is not None:
                changes["direction"] = direction
            if scope is not None:
                changes["scope"] = scope
            if description is not None:
                changes["description"] = description
            if not changes:
                return info, info
            changes["updated_at"] = self.clock()
            changes["updated_by"] = by
            updated = ListInfo(**{**asdict(info), **changes})
            if guard is not None:
                permanent = int(await pipe.hget(keys.counts(list_id), "P") or 0)
                guard(info, updated, permanent)
            if "name" in changes and await pipe.hexists(keys.lists, updated.name):
                raise Conflict(f"a list named {updated.name!r} already exists")
            pipe.multi()
            if "name" in changes:
                pipe.hset(keys.lists, updated.name, list_id)
                pipe.hdel(keys.lists, info.name)
            pipe.hset(keys.list(list_id), mapping=_list_hash(updated))
            if updated.scope is Scope.GLOBAL:
                pipe.sadd(keys.global_lists, list_id)
            else:
                pipe.srem(keys.global_lists, list_id)
            self.reindex(pipe)
            await pipe.execute()
        return info, updated

    async def drop_list(
        self, info: ListInfo, *, by: str, reason: str = "", guard: ListGuard | None = None
    ) -> dict[str, int]:
        """Delete a list, its entries and its assignments, unless ``guard(info, None,
        permanent)`` refuses (it is given the number of permanently approved entries;
        without a guard, any such entry refuses the deletion: :class:`Refused`). Its
        history stays, and a :class:`Tombstone` (``by``, ``reason``, now, the entries
        it held) is written in the same transaction; the name then leads to it
        (:meth:`tombstone`) until a new list of that name is deleted in turn.

        The check and the deletion are one transaction: the list's counts are watched,
        so an entry approved permanently meanwhile makes it retry, and then refuse.
        Returns the stored counts the list had (``p``, ``a``, ``P``, ``d``).
        """
        for _attempt in range(10):
            with store.converted():
                try:
                    counts = await self._drop_once(info, by, reason, guard)
                except redis.WatchError:
                    continue
            await self.unlist_numbers(info.id)
            return counts
        raise Conflict(f"list {info.name!r} kept changing while being deleted; try again")

    async def unlist_numbers(self, list_id: int, chunk: int = 256) -> int:
        """Strip deleted list ``list_id`` from the holders index (``lookuplib.lua``), in
        slices of ``chunk`` buckets a script call; returns how many numbers named it.
        Until it is done the index names a list that is gone, which the lookup skips:
        slower for those numbers, never wrong (list ids are never handed out again)."""
        locs: list[str] = ["p", *(str(b) for b in range(await self.buckets()))]
        stripped = 0
        for start in range(0, len(locs), chunk):
            args = [self.keys.base, "unlist", str(list_id), *locs[start : start + chunk]]
            found = await store.run_script(self.r, scripts.LOOKUP_INDEX, [self.keys.lookup], args)
            stripped += int(found)
        return stripped

    async def _drop_once(
        self, info: ListInfo, by: str, reason: str, guard: ListGuard | None
    ) -> dict[str, int]:
        keys = self.keys
        counts_key = keys.counts(info.id)
        async with self.r.pipeline(transaction=True) as pipe:
            await pipe.watch(counts_key, keys.lists, keys.campaigns)
            if await pipe.hget(keys.lists, info.name) != str(info.id):
                raise NotFound(f"no list named {info.name!r}")
            counts = {code: int(n) for code, n in (await pipe.hgetall(counts_key)).items()}
            if guard is not None:
                guard(info, None, counts.get("P", 0))
            elif counts.get("P", 0) > 0:
                raise Refused(
                    f"list {info.name!r} holds {counts['P']} permanently approved "
                    "entries and cannot be deleted"
                )
            buckets = [
                b async for b in pipe.scan_iter(match=keys.exact_pattern(info.id), count=1000)
            ]
            for pattern in keys.number_patterns(info.id):  # its number indexes go too
                buckets += [c async for c in pipe.scan_iter(match=pattern, count=1000)]
            assigned = []
            for campaign in await pipe.smembers(keys.campaigns):
                members = await pipe.smembers(keys.campaign(campaign))
                if str(info.id) in members:
                    assigned.append((campaign, len(members) == 1))
            pipe.multi()
            for start in range(0, len(buckets), 1000):
                pipe.unlink(*buckets[start : start + 1000])
            pipe.unlink(
                keys.prefixes(info.id),
                counts_key,
                keys.expiring(info.id),
                *(keys.status_index(info.id, code) for code in INDEXED_STATUSES),
                keys.list(info.id),
            )
            held = {c: n for c, n in counts.items() if c in _HELD and n}
            detail = ", ".join(f"{n} {_HELD[c]}" for c, n in held.items()) or "empty"
            tomb = {"name": info.name, "by": by, "at": repr(self.clock())}
            tomb |= {"n": str(sum(held.values())), "d": detail}
            if reason:
                tomb["r"] = reason
            pipe.hset(keys.tombstone(info.id), mapping=tomb)
            pipe.hset(keys.tombstones, info.name, info.id)
            pipe.srem(keys.global_lists, info.id)
            for campaign, was_only in assigned:
                pipe.srem(keys.campaign(campaign), info.id)
                if was_only:
                    pipe.srem(keys.campaigns, campaign)
            pipe.hdel(keys.lists, info.name)
            self.reindex(pipe)
            await pipe.execute()
        return counts

    async def tombstone(self, name: str, list_id: int | None = None) -> Tombstone | None:
        """The latest deleted list named ``name`` (or the deleted list ``list_id``,
        which must have had that name); None when there is none."""
        if list_id is None:
            found = await store.wait(self.r.hget(self.keys.tombstones, name))
            if found is None:
                return None
            list_id = int(found)
        data = await store.wait(self.r.hgetall(self.keys.tombstone(list_id)))
        if not data or data.get("name") != name:
            return None
        return Tombstone.from_hash(list_id, data)

    # -- campaigns -------------------------------------------------------------------------

    async def assign(
        self,
        campaign: str,
        list_names: list[str],
        *,
        guard: AssignGuard | None = None,
        mode: AssignMode = "replace",
    ) -> list[int]:
        """Change the campaign's assigned lists: ``replace`` them by ``list_names``,
        ``add`` these to them or ``remove`` these from them (duplicates dropped, at most
        100 in all). Returns the ids assigned after the change.

        ``guard(info, campaign, permanent)`` may refuse taking a list out of the
        campaign; it is given the list's number of permanently approved entries, read
        in the transaction that makes the change (watched, as in :meth:`update_list`).
        """
        check_campaign(campaign)
        names = list(dict.fromkeys(list_names))
        if len(names) > MAX_CAMPAIGN_LISTS:
            raise InvalidName(f"a campaign takes at most {MAX_CAMPAIGN_LISTS} lists")
        ids = [await self.list_id(name) for name in names]
        for _attempt in range(10):
            with store.converted():
                try:
                    return await self._assign_once(campaign, ids, guard, mode)
                except redis.WatchError:
                    continue
        raise Conflict(f"campaign {campaign!r} kept changing while being assigned; try again")

    async def _assign_once(
        self, campaign: str, named: list[int], guard: AssignGuard | None, mode: AssignMode
    ) -> list[int]:
        keys = self.keys
        async with self.r.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.campaign(campaign), keys.lists)
            current = sorted(int(m) for m in await pipe.smembers(keys.campaign(campaign)))
            if mode == "add":
                ids = list(dict.fromkeys([*current, *named]))
            elif mode == "remove":
                taken = set(named)
                ids = [list_id for list_id in current if list_id not in taken]
            else:
                ids = named
            if len(ids) > MAX_CAMPAIGN_LISTS:
                raise InvalidName(f"a campaign takes at most {MAX_CAMPAIGN_LISTS} lists")
            kept = set(ids)
            dropped = [list_id for list_id in current if list_id not in kept]
            if guard is not None:
                for list_id in dropped:
                    await pipe.watch(keys.counts(list_id), keys.list(list_id))
                    data = await pipe.hgetall(keys.list(list_id))
                    if data:
                        permanent = int(await pipe.hget(keys.counts(list_id), "P") or 0)
                        guard(ListInfo.from_hash(list_id, data), campaign, permanent)
            for list_id in ids:  # a list deleted meanwhile is not assigned
                await pipe.watch(keys.list(list_id))
                if not await pipe.exists(keys.list(list_id)):
                    raise NotFound(f"no list with id {list_id}")
            pipe.multi()
            pipe.delete(keys.campaign(campaign))
            if ids:
                pipe.sadd(keys.campaign(campaign), *ids)
                pipe.sadd(keys.campaigns, campaign)
            else:
                pipe.srem(keys.campaigns, campaign)
            self.reindex(pipe)
            await pipe.execute()
            return ids

    async def campaign_lists(self, campaign: str) -> list[ListInfo]:
        """The lists assigned to a campaign, by name."""
        ids = await store.wait(self.r.smembers(self.keys.campaign(campaign)))
        infos = [await self.get_list_by_id(int(list_id)) for list_id in ids]
        return sorted((info for info in infos if info), key=lambda info: info.name)

    async def campaigns_of(self, list_id: int) -> list[str]:
        """The campaigns a list is assigned to, by name."""
        names = sorted(await store.wait(self.r.smembers(self.keys.campaigns)))
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.sismember(self.keys.campaign(name), list_id)
        hits = await store.wait(pipe.execute())
        return [name for name, hit in zip(names, hits, strict=True) if hit]

    async def assignments(self) -> dict[int, list[str]]:
        """For each list assigned to a campaign, the campaigns' names (sorted)."""
        names = sorted(await store.wait(self.r.smembers(self.keys.campaigns)))
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.smembers(self.keys.campaign(name))
        out: dict[int, list[str]] = {}
        for name, ids in zip(names, await store.wait(pipe.execute()), strict=True):
            for list_id in ids:
                out.setdefault(int(list_id), []).append(name)
        return out

    async def campaign_names(self) -> list[str]:
        return sorted(await store.wait(self.r.smembers(self.keys.campaigns)))


def _list_hash(info: ListInfo) -> dict[str, str]:
    return {
        "name": info.name,
        "action": info.action.value,
        "direction": info.direction.value,
        "scope": info.scope.value,
        "description": info.description,
        "created_at": repr(info.created_at),
        "created_by": info.created_by,
        "updated_at": repr(info.updated_at),
        "updated_by": info.updated_by,
        **({"registry": info.registry} if info.registry else {}),
    }
