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

Making, disabling a user and changing a password are recorded in the admin trail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callscreen.core.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthenticated
from callscreen.core.times import iso
from callscreen.services import audit, store
from callscreen.services.apikeys import KeyScope
from callscreen.services.table import Table

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


def add(
    table: Table, name: str, role: Role, password: str, *, by: str, now: float | None = None
) -> User:
    """Make a user (Conflict if the name is taken)."""
    now = time.time() if now is None else now
    check_user_name(name)
    check_password(password)
    user = User(name, role, False, by, now)
    keys = table.keys
    if not store.call(lambda: table.r.sadd(keys.users, name)):
        raise Conflict(f"a user named {name!r} exists")
    record = {
        "name": name,
        "role": role.value,
        "hash": _hasher.hash(password),
        "disabled": "0",
        "created_by": by,
        "created_at": repr(now),
    }
    store.call(lambda: table.r.hset(keys.user(name), mapping=record))
    audit.record(table, None, "user-add", by=by, detail=f"user {name}: role {role.value}")
    return user


def get(table: Table, name: str) -> User:
    data: dict[str, str] = store.call(lambda: table.r.hgetall(table.keys.user(name)))
    if not data:
        raise NotFound(f"no user named {name!r}")
    return User.from_hash(data)


def list_users(table: Table) -> list[User]:
    """Every user, by name."""
    keys = table.keys
    names = sorted(store.call(lambda: table.r.smembers(keys.users)))

    def read() -> list[dict[str, str]]:
        pipe = table.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.user(name))
        return list(pipe.execute())

    return [User.from_hash(data) for data in store.call(read) if data]


def count(table: Table) -> int:
    return int(store.call(lambda: table.r.scard(table.keys.users)))


def _end_sessions(table: Table, name: str) -> None:
    keys = table.keys
    digests = store.call(lambda: table.r.smembers(keys.user_sessions(name)))

    def drop() -> None:
        pipe = table.r.pipeline(transaction=False)
        for d in digests:
            pipe.delete(keys.session(d))
        pipe.delete(keys.user_sessions(name))
        pipe.execute()

    store.call(drop)


def set_password(table: Table, name: str, password: str, *, by: str) -> User:
    """A new password; the user's sessions end."""
    user = get(table, name)
    check_password(password)
    store.call(lambda: table.r.hset(table.keys.user(name), "hash", _hasher.hash(password)))
    _end_sessions(table, name)
    audit.record(table, None, "user-passwd", by=by, detail=f"user {name}")
    return user


def set_disabled(table: Table, name: str, disabled: bool, *, by: str) -> User:
    """Disable a user (its sessions end, it cannot sign in) or enable it again."""
    get(table, name)
    store.call(lambda: table.r.hset(table.keys.user(name), "disabled", "1" if disabled else "0"))
    if disabled:
        _end_sessions(table, name)
    op = "user-disable" if disabled else "user-enable"
    audit.record(table, None, op, by=by, detail=f"user {name}")
    return get(table, name)


def set_role(table: Table, name: str, role: Role, *, by: str) -> User:
    get(table, name)
    store.call(lambda: table.r.hset(table.keys.user(name), "role", role.value))
    audit.record(table, None, "user-role", by=by, detail=f"user {name}: role {role.value}")
    return get(table, name)


# -- signing in ------------------------------------------------------------------------


def _limited(table: Table, name: str, address: str) -> None:
    keys = table.keys
    user_key, addr_key = keys.signin_user(name), keys.signin_address(address)

    def read() -> list[Any]:
        pipe = table.r.pipeline(transaction=False)
        pipe.get(user_key)
        pipe.ttl(user_key)
        pipe.get(addr_key)
        pipe.ttl(addr_key)
        return list(pipe.execute())

    by_user, user_ttl, by_addr, addr_ttl = store.call(read)
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


def _failed(table: Table, name: str, address: str) -> None:
    keys = table.keys

    def count_failure() -> None:
        pipe = table.r.pipeline(transaction=False)
        pipe.incr(keys.signin_user(name))
        pipe.expire(keys.signin_user(name), USER_WINDOW_S, nx=True)
        pipe.incr(keys.signin_address(address))
        pipe.expire(keys.signin_address(address), ADDRESS_WINDOW_S, nx=True)
        pipe.execute()

    store.call(count_failure)


def sign_in(
    table: Table, name: str, password: str, address: str, now: float | None = None
) -> tuple[Session, str]:
    """Check a user's password and open a session: the session and its token (for the
    cookie). :class:`Unauthenticated` for a wrong name or password or a disabled user
    (one message for all), :class:`RateLimited` past the limits."""
    now = time.time() if now is None else now
    name = name.strip().lower()[:64]
    _limited(table, name, address)
    data: dict[str, str] = store.call(lambda: table.r.hgetall(table.keys.user(name)))
    stored = data.get("hash", _DUMMY_HASH) if data else _DUMMY_HASH
    try:
        ok = _hasher.verify(stored, password) and bool(data)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or data.get("disabled") == "1":
        _failed(table, name, address)
        raise Unauthenticated("wrong user name or password")
    user = User.from_hash(data)
    if _hasher.check_needs_rehash(stored):
        store.call(lambda: table.r.hset(table.keys.user(name), "hash", _hasher.hash(password)))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    hashed = digest(token)
    keys = table.keys

    def open_session() -> None:
        pipe = table.r.pipeline(transaction=False)
        pipe.hset(
            keys.session(hashed),
            mapping={"user": name, "csrf": csrf, "created_at": repr(now), "address": address},
        )
        pipe.expire(keys.session(hashed), IDLE_S)
        pipe.sadd(keys.user_sessions(name), hashed)
        pipe.expire(keys.user_sessions(name), IDLE_S * 60)
        pipe.delete(keys.signin_user(name))
        pipe.execute()

    store.call(open_session)
    return Session(user, csrf, hashed), token


def session(table: Table, token: str) -> Session:
    """The live session of ``token``, renewed for another idle period, or
    :class:`Unauthenticated` (unknown, expired, or its user disabled or gone)."""
    if not token or len(token) > 128:
        raise Unauthenticated("sign in")
    hashed = digest(token)
    keys = table.keys

    def read() -> list[Any]:
        pipe = table.r.pipeline(transaction=False)
        pipe.hgetall(keys.session(hashed))
        pipe.expire(keys.session(hashed), IDLE_S, xx=True)
        return list(pipe.execute())

    data, _renewed = store.call(read)
    if not data:
        raise Unauthenticated("your session has ended: sign in again")
    user_data: dict[str, str] = store.call(lambda: table.r.hgetall(keys.user(data["user"])))
    if not user_data or user_data.get("disabled") == "1":
        store.call(lambda: table.r.delete(keys.session(hashed)))
        raise Unauthenticated("your session has ended: sign in again")
    return Session(User.from_hash(user_data), data.get("csrf", ""), hashed)


def sign_out(table: Table, current: Session) -> None:
    keys = table.keys

    def drop() -> None:
        pipe = table.r.pipeline(transaction=False)
        pipe.delete(keys.session(current.digest))
        pipe.srem(keys.user_sessions(current.user.name), current.digest)
        pipe.execute()

    store.call(drop)


def csrf_ok(current: Session, sent: str) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    return bool(sent) and hmac.compare_digest(current.csrf.encode(), sent.encode())
