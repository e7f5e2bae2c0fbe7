"""Is the gateway fit to take calls? ``callscreen health`` and what it checks.

- **redis**: a ``PING`` through the connection the call path uses (the same URL,
  password, database and Sentinels; with Sentinels, the primary they name, checked
  with ``ROLE``), within the timeout;
- **agi**: the FastAGI port accepts a TCP connection, closed at once without a byte
  sent — the gateway counts it as a hang-up (logged at DEBUG), no call is made. A
  gateway that is draining (SIGTERM) has closed its port and fails this check.

Both run at once, each within ``timeout`` seconds. The report names what was
checked by address only: never a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from callscreen.callpath.leanredis import LeanRedis, RedisTarget
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError

__all__ = ["Check", "Health", "check_agi", "check_health", "check_redis"]

#: Where to reach a gateway that listens on every address.
_WILDCARD = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True, slots=True)
class Check:
    """One check: what, where, whether it passed, and how long it took."""

    name: str
    ok: bool
    target: str
    detail: str
    ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "target": self.target,
            "detail": self.detail,
            "ms": round(self.ms, 1),
        }


@dataclass(frozen=True, slots=True)
class Health:
    """Every check; :attr:`ok` when all passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.to_json() for check in self.checks]}


def redis_description(settings: Settings) -> str:
    """Where the call path's Redis is, without credentials."""
    if settings.redis_sentinels:
        sentinels = ",".join(settings.redis_sentinels)
        return f"sentinel service {settings.redis_sentinel_service} via {sentinels}"
    try:
        return RedisTarget.from_url(settings.redis_url).describe()
    except CallscreenError as exc:
        return str(exc)  # the message masks the password


async def check_redis(settings: Settings, timeout: float) -> Check:
    """PING through the call path's client."""
    started = time.perf_counter()
    target = redis_description(settings)
    try:
        client = LeanRedis.from_settings(settings, command_timeout=timeout)
    except CallscreenError as exc:
        return Check("redis", False, target, str(exc), 0.0)
    try:
        reply = await client.call("PING", timeout=timeout)
        ok = reply == b"PONG"
        detail = "PONG" if ok else f"unexpected reply {reply!r}"
    except CallscreenError as exc:
        ok, detail = False, str(exc)
    finally:
        await client.close()
    return Check("redis", ok, target, detail, (time.perf_counter() - started) * 1000)


async def check_agi(host: str, port: int, timeout: float) -> Check:
    """Connect to the FastAGI port and close at once."""
    host = _WILDCARD.get(host, host)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    started = time.perf_counter()
    if port == 0:
        return Check("agi", False, target, "listen_port is 0: no fixed port to check", 0.0)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        ok, detail = False, f"no connection within {timeout * 1000:g} ms"
    except OSError as exc:
        ok, detail = False, f"cannot connect: {exc.strerror or exc}"
    else:
        writer.close()
        with contextlib.suppress(OSError):  # the gateway may close first: it was there
            await writer.wait_closed()
        ok, detail = True, "accepts connections"
    return Check("agi", ok, target, detail, (time.perf_counter() - started) * 1000)


async def check_health(settings: Settings, timeout: float = 2.0) -> Health:
    """Both checks, concurrently."""
    checks = await asyncio.gather(
        check_redis(settings, timeout),
        check_agi(settings.listen_host, settings.listen_port, timeout),
    )
    return Health(tuple(checks))
