"""API keys: made, listed and revoked here; checked on every HTTP API request.

A key is ``cs_`` and 32 random bytes in base32 (56 characters, no padding), shown
once when it is made. Only its SHA-256 is stored (keys are high-entropy, so a plain
hash is enough: there is nothing to brute-force), in ``{cs}:ak:h:HASH`` with the
key's name, scopes, list restriction, who made it and when, its expiry and when it
was last used; ``{cs}:ak:names`` maps names to hashes. Revoking deletes the record,
so every API process refuses the key on its next request. Making and revoking a key
are recorded in the admin audit trail, with the context's actor.

:class:`KeyService` (``Services.apikeys``) does all of it over a
:class:`~callscreen.services.context.Context`.

Scopes (:class:`KeyScope`): ``lists:read``, ``lists:write`` (lists and entries: add,
remove, restore, import), ``entries:approve`` (approve, unapprove),
``entries:approve-permanent`` (apart: it cannot be undone), ``check`` (screening
decisions), ``optout:write``, ``calls:read`` (attempt log, reports),
``keys:admin``. A key restricted to lists may read and change only those.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from callscreen.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from callscreen.core.times import iso, parse_expiry
from callscreen.services import store
from callscreen.services.context import Context
from callscreen.services.rules import record
from callscreen.services.table import Table

PREFIX = "cs_"
MAX_KEY_NAME = 64
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: "last used" is written at most this often per key (it costs a write per request)
LAST_USED_EVERY_S = 60


class KeyScope(StrEnum):
    """What an API key may do."""

    LISTS_READ = "lists:read"
    LISTS_WRITE = "lists:write"
    ENTRIES_APPROVE = "entries:approve"
    ENTRIES_APPROVE_PERMANENT = "entries:approve-permanent"
    CHECK = "check"
    OPTOUT_WRITE = "optout:write"
    CALLS_READ = "calls:read"
    KEYS_ADMIN = "keys:admin"


def digest(secret: str) -> str:
    """The hex SHA-256 stored for a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """A new key: ``cs_`` + 32 random bytes, base32 (lower case, no padding)."""
    return PREFIX + base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored (never the key itself)."""

    name: str
    scopes: tuple[KeyScope, ...]
    list_ids: tuple[int, ...]  # empty: every list
    created_by: str
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None
    list_names: tuple[str, ...] = ()  # the names of list_ids, when read (deleted ones dropped)

    @property
    def restricted(self) -> bool:
        return bool(self.list_ids)

    def has(self, scope: KeyScope) -> bool:
        return scope in self.scopes

    def may_use_list(self, list_id: int) -> bool:
        return not self.list_ids or list_id in self.list_ids

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": [str(s) for s in self.scopes],
            "lists": list(self.list_names),
            "list_ids": list(self.list_ids),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
        }

    def to_hash(self, secret_digest: str) -> dict[str, str]:
        return {
            "hash": secret_digest,
            "name": self.name,
            "scopes": " ".join(self.scopes),
            "lists": " ".join(str(i) for i in self.list_ids),
            "created_by": self.created_by,
            "created_at": repr(self.created_at),
            "expires_at": "" if self.expires_at is None else repr(self.expires_at),
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> ApiKey:
        known = {s.value for s in KeyScope}
        return cls(
            name=data["name"],
            scopes=tuple(KeyScope(s) for s in data.get("scopes", "").split() if s in known),
            list_ids=tuple(int(i) for i in data.get("lists", "").split()),
            created_by=data.get("created_by", ""),
            created_at=float(data.get("created_at") or 0),
            expires_at=float(data["expires_at"]) if data.get("expires_at") else None,
            last_used_at=float(data["last_used"]) if data.get("last_used") else None,
        )


def parse_scopes(raw: Iterable[str]) -> tuple[KeyScope, ...]:
    """Scopes as given (``lists:read``, comma-separated or repeated), deduplicated;
    unknown ones refused."""
    names = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if not names:
        raise InvalidInput("give at least one scope")
    known = {s.value: s for s in KeyScope}
    bad = [n for n in names if n not in known]
    if bad:
        raise InvalidInput(
            f"unknown scope {', '.join(bad)} (scopes: {', '.join(s.value for s in KeyScope)})"
        )
    return tuple(dict.fromkeys(known[n] for n in names))


def check_key_name(name: str) -> str:
    if not KEY_NAME.fullmatch(name):
        raise InvalidInput(
            "a key name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit: {name[:80]!r}"
        )
    return name


class KeyService:
    """API keys over a context: made and revoked as its actor (both in the admin
    trail), listed, and checked (``authenticate``) at its clock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        lists: Sequence[str] = (),
        expires: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Make a key; the record and the key (to show once). Refused if the name is
        taken or a list does not exist."""
        ctx = self.ctx
        table = ctx.table
        now = ctx.clock()
        check_key_name(name)
        parsed = parse_scopes(scopes)
        infos = [await table.get_list(list_name) for list_name in dict.fromkeys(lists)]
        expires_at = float(parse_expiry(expires, now)) if expires else None
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("the expiry is in the past")
        key = ApiKey(
            name=name,
            scopes=parsed,
            list_ids=tuple(info.id for info in infos),
            created_by=ctx.actor.name,
            created_at=now,
            expires_at=expires_at,
            list_names=tuple(info.name for info in infos),
        )
        secret = new_secret()
        hashed = digest(secret)
        keys = table.keys
        if not await store.wait(table.r.hsetnx(keys.api_key_names, name, hashed)):
            raise Conflict(f"an API key named {name!r} exists")
        await store.wait(table.r.hset(keys.api_key(hashed), mapping=key.to_hash(hashed)))
        detail = f"scopes {' '.join(parsed)}"
        if key.list_names:
            detail += f"; lists {', '.join(key.list_names)}"
        if expires_at is not None:
            detail += f"; expires {iso(expires_at)}"
        await record(ctx, None, "key-create", detail=f"key {name}: {detail}")
        return key, secret

    async def list_keys(self) -> list[ApiKey]:
        """Every key, by name."""
        table = self.ctx.table
        keys = table.keys
        hashes: dict[str, str] = await store.wait(table.r.hgetall(keys.api_key_names))
        names = sorted(hashes)
        pipe = table.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.api_key(hashes[name]))
        found = await store.wait(pipe.execute())
        return [await _names(table, ApiKey.from_hash(data)) for data in found if data]

    async def get(self, name: str) -> ApiKey:
        """The key named ``name`` (:class:`NotFound` otherwise)."""
        table = self.ctx.table
        hashed = await store.wait(table.r.hget(table.keys.api_key_names, name))
        data = await store.wait(table.r.hgetall(table.keys.api_key(hashed))) if hashed else None
        if not data:
            raise NotFound(f"no API key named {name!r}")
        return await _names(table, ApiKey.from_hash(data))

    async def revoke(self, name: str) -> ApiKey:
        """Delete a key: refused on the next request, by every API process."""
        table = self.ctx.table
        keys = table.keys
        key = await self.get(name)
        hashed = await store.wait(table.r.hget(keys.api_key_names, name))
        pipe = table.r.pipeline(transaction=True)
        pipe.delete(keys.api_key(hashed))
        pipe.hdel(keys.api_key_names, name)
        await store.wait(pipe.execute())
        await record(self.ctx, None, "key-revoke", detail=f"key {name}")
        return key

    async def authenticate(self, secret: str) -> ApiKey:
        """The key whose secret this is, or :class:`Unauthenticated` (unknown, revoked
        or expired; the message never repeats the secret)."""
        table = self.ctx.table
        now = self.ctx.clock()
        hashed = digest(secret)
        record_key = table.keys.api_key(hashed)
        data: dict[str, str] = await store.wait(table.r.hgetall(record_key))
        # the lookup is by hash already; the comparison below keeps the check itself
        # constant-time whatever Redis returned
        stored = data.get("hash", "") if data else ""
        if not hmac.compare_digest(stored.encode(), hashed.encode()) or not data:
            raise Unauthenticated("unknown or revoked API key")
        key = ApiKey.from_hash(data)
        if key.expired(now):
            raise Unauthenticated("the API key has expired")
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY_S:
            await store.wait(table.r.hset(record_key, "last_used", repr(now)))
        return await _names(table, key)


async def _names(table: Table, key: ApiKey) -> ApiKey:
    """``key`` with the names of its lists (deleted ones dropped)."""
    if not key.list_ids:
        return key
    names = []
    for list_id in key.list_ids:
        info = await table.get_list_by_id(list_id)
        if info is not None:
            names.append(info.name)
    return dataclasses.replace(key, list_names=tuple(names))
