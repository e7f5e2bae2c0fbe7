"""The web console's users, their sessions and the limit on failed sign-ins.

A user has a name, a role and an argon2id password hash (OWASP's parameters; a hash
made with others is rehashed at the next sign-in). Roles map onto the HTTP API's
scopes (:class:`~callscreen.services.apikeys.KeyScope`), so the console and the API
check the same thing:

- ``viewer``: ``lists:read``, ``calls:read``;
- ``editor``: + ``lists:write``, ``optout:write``, ``check``;
- ``approver``: + ``entries:approve``, ``entries:approve-permanent``;
- ``admin``: every scope, users and API keys.

Sessions live in Redis (they survive a restart of ``callscreen api`` and work across
its processes): a random token in the cookie, its SHA-256 as the key, a CSRF token
stored beside it. A session expires after :data:`IDLE_S` without a request (each
request renews it). Disabling a user or changing a password ends its sessions.

Failed sign-ins are counted in fixed windows, per user name (:data:`USER_FAILURES`
per :data:`USER_WINDOW_S`) and per client address (:data:`ADDRESS_FAILURES` per
:data:`ADDRESS_WINDOW_S`). The user window is short on purpose: a stranger who knows
a name can keep it locked only by failing again every minute, and the address limit
stops that after a few minutes; a right password is refused only while a limit holds.

Making, disabling a user and changing a password are recorded in the admin trail,
as the context's actor. Every function takes the :class:`~callscreen.services.context.Context`
like the other services; argon2 runs in a worker thread (it costs tens of milliseconds
of a core, too long to hold the event loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callscreen.core.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthenticated
from callscreen.core.times import iso
from callscreen.services import audit, store
from callscreen.services.apikeys import KeyScope
from callscreen.services.context import Context

USER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
IDLE_S = 12 * 3600
USER_FAILURES = 10
USER_WINDOW_S = 60
ADDRESS_FAILURES = 30
ADDRESS_WINDOW_S = 900

# OWASP's argon2id parameters (19 MiB, 2 passes, 1 lane): a sign-in costs tens of
# milliseconds of one core, not the hundreds that argon2-cffi's defaults take on a small host
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# verified against when the user does not exist, so that an unknown name takes as long
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Role(StrEnum):
    """What a console user may do."""

    VIEWER = "viewer"
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, tuple[KeyScope, ...]] = {
    Role.VIEWER: (KeyScope.LISTS_READ, KeyScope.CALLS_READ),
    Role.EDITOR: (
        KeyScope.LISTS_READ,
        KeyScope.CALLS_READ,
        KeyScope.LISTS_WRITE,
        KeyScope.OPTOUT_WRITE,
        KeyScope.CHECK,
    ),
    Role.APPROVER: (
        KeyScope.LISTS_READ,
        KeyScope.CALLS_READ,
        KeyScope.LISTS_WRITE,
        KeyScope.OPTOUT_WRITE,
        KeyScope.CHECK,
        KeyScope.ENTRIES_APPROVE,
        KeyScope.ENTRIES_APPROVE_PERMANENT,
    ),
    Role.ADMIN: tuple(KeyScope),
}


@dataclass(frozen=True, slots=True)
class User:
    """A console user as stored (never the password)."""

    name: str
    role: Role
    disabled: bool
    created_by: str
    created_at: float

    @property
    def scopes(self) -> tuple[KeyScope, ...]:
        return ROLE_SCOPES[self.role]

    @property
    def actor(self) -> str:
        """What the user's changes are recorded as: ``user:NAME``."""
        return f"user:{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "disabled": self.disabled,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> User:
        return cls(
            name=data["name"],
            role=Role(data.get("role", "viewer")),
            disabled=data.get("disabled") == "1",
            created_by=data.get("created_by", ""),
            created_at=float(data.get("created_at") or 0),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its user and the CSRF token its forms carry."""

    user: User
    csrf: str
    digest: str


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise InvalidInput(
            "a user name is 1 to 32 lower-case letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit: {name[:40]!r}"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def parse_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise InvalidInput(f"unknown role {raw!r} (roles: {', '.join(Role)})") from None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- users -----------------------------------------------------------------------------


async def add(ctx: Context, name: str, role: Role, password: str) -> User:
    """Make a user (Conflict if the name is taken), made by the context's actor."""
    now = ctx.clock()
    check_user_name(name)
    check_password(password)
    by = ctx.actor.name
    user = User(name, role, False, by, now)
    table = ctx.table
    keys = table.keys
    hashed = await asyncio.to_thread(_hasher.hash, password)
    if not await store.wait(table.r.sadd(keys.users, name)):
        raise Conflict(f"a user named {name!r} exists")
    record = {
        "name": name,
        "role": role.value,
        "hash": hashed,
        "disabled": "0",
        "created_by": by,
        "created_at": repr(now),
    }
    await store.wait(table.r.hset(keys.user(name), mapping=record))
    await _record(ctx, "user-add", f"user {name}: role {role.value}")
    return user


async def _record(ctx: Context, op: str, detail: str) -> None:
    await audit.record(ctx.table, None, op, by=ctx.actor.name, via=ctx.actor.via, detail=detail)


async def get(ctx: Context, name: str) -> User:
    data: dict[str, str] = await store.wait(ctx.table.r.hgetall(ctx.table.keys.user(name)))
    if not data:
        raise NotFound(f"no user named {name!r}")
    return User.from_hash(data)


async def list_users(ctx: Context) -> list[User]:
    """Every user, by name."""
    table = ctx.table
    keys = table.keys
    names = sorted(await store.wait(table.r.smembers(keys.users)))
    pipe = table.r.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.user(name))
    found: list[dict[str, str]] = await store.wait(pipe.execute())
    return [User.from_hash(data) for data in found if data]


async def count(ctx: Context) -> int:
    return int(await store.wait(ctx.table.r.scard(ctx.table.keys.users)))


async def _end_sessions(ctx: Context, name: str) -> None:
    table = ctx.table
    keys = table.keys
    digests = await store.wait(table.r.smembers(keys.user_sessions(name)))
    pipe = table.r.pipeline(transaction=False)
    for d in digests:
        pipe.delete(keys.session(d))
    pipe.delete(keys.user_sessions(name))
    await store.wait(pipe.execute())


async def set_password(ctx: Context, name: str, password: str) -> User:
    """A new password; the user's sessions end."""
    user = await get(ctx, name)
    check_password(password)
    hashed = await asyncio.to_thread(_hasher.hash, password)
    await store.wait(ctx.table.r.hset(ctx.table.keys.user(name), "hash", hashed))
    await _end_sessions(ctx, name)
    await _record(ctx, "user-passwd", f"user {name}")
    return user


async def set_disabled(ctx: Context, name: str, disabled: bool) -> User:
    """Disable a user (its sessions end, it cannot sign in) or enable it again."""
    await get(ctx, name)
    flag = "1" if disabled else "0"
    await store.wait(ctx.table.r.hset(ctx.table.keys.user(name), "disabled", flag))
    if disabled:
        await _end_sessions(ctx, name)
    await _record(ctx, "user-disable" if disabled else "user-enable", f"user {name}")
    return await get(ctx, name)


async def set_role(ctx: Context, name: str, role: Role) -> User:
    await get(ctx, name)
    await store.wait(ctx.table.r.hset(ctx.table.keys.user(name), "role", role.value))
    await _record(ctx, "user-role", f"user {name}: role {role.value}")
    return await get(ctx, name)


# -- signing in ------------------------------------------------------------------------


async def _limited(ctx: Context, name: str, address: str) -> None:
    table = ctx.table
    keys = table.keys
    user_key, addr_key = keys.signin_user(name), keys.signin_address(address)
    pipe = table.r.pipeline(transaction=False)
    pipe.get(user_key)
    pipe.ttl(user_key)
    pipe.get(addr_key)
    pipe.ttl(addr_key)
    by_user, user_ttl, by_addr, addr_ttl = await store.wait(pipe.execute())
    if by_addr is not None and int(by_addr) >= ADDRESS_FAILURES:
        raise RateLimited(
            "too many failed sign-ins from this address: try again later",
            retry_after=max(1, int(addr_ttl)),
        )
    if by_user is not None and int(by_user) >= USER_FAILURES:
        raise RateLimited(
            "too many failed sign-ins for this user: try again in a minute",
            retry_after=max(1, int(user_ttl)),
        )


async def _failed(ctx: Context, name: str, address: str) -> None:
    keys = ctx.table.keys
    pipe = ctx.table.r.pipeline(transaction=False)
    pipe.incr(keys.signin_user(name))
    pipe.expire(keys.signin_user(name), USER_WINDOW_S, nx=True)
    pipe.incr(keys.signin_address(address))
    pipe.expire(keys.signin_address(address), ADDRESS_WINDOW_S, nx=True)
    await store.wait(pipe.execute())


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def sign_in(ctx: Context, name: str, password: str, address: str) -> tuple[Session, str]:
    """Check a user's password and open a session: the session and its token (for the
    cookie). :class:`Unauthenticated` for a wrong name or password or a disabled user
    (one message for all), :class:`RateLimited` past the limits."""
    now = ctx.clock()
    table = ctx.table
    keys = table.keys
    name = name.strip().lower()[:64]
    await _limited(ctx, name, address)
    data: dict[str, str] = await store.wait(table.r.hgetall(keys.user(name)))
    stored = data.get("hash", _DUMMY_HASH) if data else _DUMMY_HASH
    ok = await asyncio.to_thread(_verify, stored, password) and bool(data)
    if not ok or data.get("disabled") == "1":
        await _failed(ctx, name, address)
        raise Unauthenticated("wrong user name or password")
    user = User.from_hash(data)
    if _hasher.check_needs_rehash(stored):
        hashed_password = await asyncio.to_thread(_hasher.hash, password)
        await store.wait(table.r.hset(keys.user(name), "hash", hashed_password))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    hashed = digest(token)
    pipe = table.r.pipeline(transaction=False)
    pipe.hset(
        keys.session(hashed),
        mapping={"user": name, "csrf": csrf, "created_at": repr(now), "address": address},
    )
    pipe.expire(keys.session(hashed), IDLE_S)
    pipe.sadd(keys.user_sessions(name), hashed)
    pipe.expire(keys.user_sessions(name), IDLE_S * 60)
    pipe.delete(keys.signin_user(name))
    await store.wait(pipe.execute())
    return Session(user, csrf, hashed), token


async def session(ctx: Context, token: str) -> Session:
    """The live session of ``token``, renewed for another idle period, or
    :class:`Unauthenticated` (unknown, expired, or its user disabled or gone)."""
    if not token or len(token) > 128:
        raise Unauthenticated("sign in")
    hashed = digest(token)
    table = ctx.table
    keys = table.keys
    pipe = table.r.pipeline(transaction=False)
    pipe.hgetall(keys.session(hashed))
    pipe.expire(keys.session(hashed), IDLE_S, xx=True)
    data, _renewed = await store.wait(pipe.execute())
    if not data:
        raise Unauthenticated("your session has ended: sign in again")
    user_data: dict[str, str] = await store.wait(table.r.hgetall(keys.user(data["user"])))
    if not user_data or user_data.get("disabled") == "1":
        await store.wait(table.r.delete(keys.session(hashed)))
        raise Unauthenticated("your session has ended: sign in again")
    return Session(User.from_hash(user_data), data.get("csrf", ""), hashed)


async def sign_out(ctx: Context, current: Session) -> None:
    keys = ctx.table.keys
    pipe = ctx.table.r.pipeline(transaction=False)
    pipe.delete(keys.session(current.digest))
    pipe.srem(keys.user_sessions(current.user.name), current.digest)
    await store.wait(pipe.execute())


def csrf_ok(current: Session, sent: str) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    return bool(sent) and hmac.compare_digest(current.csrf.encode(), sent.encode())
