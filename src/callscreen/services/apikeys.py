"""API keys: made, listed and revoked here; checked on every HTTP API request.

A key is ``cs_`` and 32 random bytes in base32 (56 characters, no padding), shown
once when it is made. Only its SHA-256 is stored (keys are high-entropy, so a plain
hash is enough: there is nothing to brute-force), in ``{cs}:ak:h:HASH`` with the
key's name, scopes, list restriction, who made it and when, its expiry and when it
was last used; ``{cs}:ak:names`` maps names to hashes. Revoking deletes the record,
so every API process refuses the key on its next request. Making and revoking a key
are recorded in the admin audit trail.

Scopes (:class:`KeyScope`): ``lists:read``, ``lists:write`` (lists and entries: add,
remove, restore, import), ``entries:approve`` (approve, unapprove),
``entries:approve-permanent`` (apart: it cannot be undone), ``check`` (screening
decisions), ``optout:write``, ``calls:read`` (attempt log, reports),
``keys:admin``. A key restricted to lists may read and change only those.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from callscreen.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from callscreen.core.times import iso, parse_expiry
from callscreen.services import audit, store
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


def create(
    table: Table,
    name: str,
    scopes: Sequence[str],
    *,
    lists: Sequence[str] = (),
    expires: str | None = None,
    by: str,
    now: float | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; the record and the key (to show once). Refused if the name is taken
    or a list does not exist."""
    now = time.time() if now is None else now
    check_key_name(name)
    parsed = parse_scopes(scopes)
    infos = [table.get_list(list_name) for list_name in dict.fromkeys(lists)]
    expires_at = float(parse_expiry(expires, now)) if expires else None
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("the expiry is in the past")
    key = ApiKey(
        name=name,
        scopes=parsed,
        list_ids=tuple(info.id for info in infos),
        created_by=by,
        created_at=now,
        expires_at=expires_at,
        list_names=tuple(info.name for info in infos),
    )
    secret = new_secret()
    hashed = digest(secret)
    keys = table.keys
    if not store.call(lambda: table.r.hsetnx(keys.api_key_names, name, hashed)):
        raise Conflict(f"an API key named {name!r} exists")
    store.call(lambda: table.r.hset(keys.api_key(hashed), mapping=key.to_hash(hashed)))
    detail = f"scopes {' '.join(parsed)}"
    if key.list_names:
        detail += f"; lists {', '.join(key.list_names)}"
    if expires_at is not None:
        detail += f"; expires {iso(expires_at)}"
    audit.record(table, None, "key-create", by=by, list_name="", detail=f"key {name}: {detail}")
    return key, secret


def _names(table: Table, key: ApiKey) -> ApiKey:
    if not key.list_ids:
        return key
    names = []
    for list_id in key.list_ids:
        info = table.get_list_by_id(list_id)
        if info is not None:
            names.append(info.name)
    return ApiKey(
        key.name,
        key.scopes,
        key.list_ids,
        key.created_by,
        key.created_at,
        key.expires_at,
        key.last_used_at,
        tuple(names),
    )


def list_keys(table: Table) -> list[ApiKey]:
    """Every key, by name."""
    keys = table.keys
    hashes: dict[str, str] = store.call(lambda: table.r.hgetall(keys.api_key_names))
    names = sorted(hashes)

    def read() -> list[dict[str, str]]:
        pipe = table.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.api_key(hashes[name]))
        return list(pipe.execute())

    return [_names(table, ApiKey.from_hash(data)) for data in store.call(read) if data]


def get(table: Table, name: str) -> ApiKey:
    keys = table.keys
    hashed = store.call(lambda: table.r.hget(keys.api_key_names, name))
    data = store.call(lambda: table.r.hgetall(keys.api_key(hashed))) if hashed else None
    if not data:
        raise NotFound(f"no API key named {name!r}")
    return _names(table, ApiKey.from_hash(data))


def revoke(table: Table, name: str, *, by: str) -> ApiKey:
    """Delete a key: refused on the next request, by every API process."""
    keys = table.keys
    key = get(table, name)
    hashed = store.call(lambda: table.r.hget(keys.api_key_names, name))

    def drop() -> None:
        pipe = table.r.pipeline(transaction=True)
        pipe.delete(keys.api_key(hashed))
        pipe.hdel(keys.api_key_names, name)
        pipe.execute()

    store.call(drop)
    audit.record(table, None, "key-revoke", by=by, detail=f"key {name}")
    return key


def authenticate(table: Table, secret: str, now: float | None = None) -> ApiKey:
    """The key whose secret this is, or :class:`Unauthenticated` (unknown, revoked or
    expired; the message never repeats the secret)."""
    now = time.time() if now is None else now
    hashed = digest(secret)
    record_key = table.keys.api_key(hashed)
    data: dict[str, str] = store.call(lambda: table.r.hgetall(record_key))
    # the lookup is by hash already; the comparison below keeps the check itself
    # constant-time whatever Redis returned
    stored = data.get("hash", "") if data else ""
    if not hmac.compare_digest(stored.encode(), hashed.encode()) or not data:
        raise Unauthenticated("unknown or revoked API key")
    key = ApiKey.from_hash(data)
    if key.expired(now):
        raise Unauthenticated("the API key has expired")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY_S:
        store.call(lambda: table.r.hset(record_key, "last_used", repr(now)))
    return _names(table, key)
