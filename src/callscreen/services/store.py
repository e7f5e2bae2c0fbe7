"""The admin side's Redis connections (redis-py): asyncio for the services, and a
synchronous one for the bulk work that runs in a worker thread (import, export).

The per-call path uses :mod:`callscreen.callpath.leanredis` instead. Every redis-py error
is converted here into :class:`~callscreen.core.errors.StoreError` at the boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from callscreen.callpath.leanredis import RedisTarget, parse_host_port
from callscreen.core.config import Settings
from callscreen.core.errors import StoreError, StoreUnavailable
from callscreen.schema.scripts import Script

T = TypeVar("T")


def connect(settings: Settings) -> redis.asyncio.Redis:
    """An asyncio redis-py client for the configured Redis (URL, or the Sentinel
    primary): the services' connection.

    The URL is read by the same :class:`RedisTarget` as the call path's client, so
    both sides always reach the same server and database.
    """
    common, sentinels, sentinel_kwargs, target = _options(settings)
    if sentinels:
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=sentinel_kwargs
        )
        primary: redis.asyncio.Redis = sentinel.master_for(
            settings.redis_sentinel_service, **common
        )
        return primary
    if target.path is not None:
        return redis.asyncio.Redis(unix_socket_path=target.path, **common)
    return redis.asyncio.Redis(host=target.host, port=target.port, **common)


def _options(
    settings: Settings,
) -> tuple[dict[str, Any], list[tuple[str, int]], dict[str, Any], RedisTarget]:
    timeout = settings.redis_connect_timeout_ms / 1000
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    target = RedisTarget.from_url(settings.redis_url, password=password)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout,
        "username": target.username,
        "password": target.password,
        "db": target.db,
    }
    if target.path is None and target.tls:
        common["ssl"] = True
        common["ssl_ca_certs"] = target.ssl_ca_certs
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": timeout}
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
    sentinels = [parse_host_port(item) for item in settings.redis_sentinels]
    return common, sentinels, sentinel_kwargs, target


def connect_sync(settings: Settings) -> redis.Redis:
    """A synchronous redis-py client for the same Redis as :func:`connect`: for bulk
    work in a worker thread (import, export) and the gateway's health probe."""
    common, sentinels, sentinel_kwargs, target = _options(settings)
    if sentinels:
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=sentinel_kwargs
        )
        primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_service, **common
        )
        return primary
    if target.path is not None:
        return redis.Redis(unix_socket_path=target.path, **common)
    return redis.Redis(host=target.host, port=target.port, **common)


@contextlib.contextmanager
def converted() -> Iterator[None]:
    """Turn redis-py errors into callscreen's own, ``raise ... from exc``."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"Redis error: {exc}") from exc


def call(fn: Callable[[], T]) -> T:
    """Run one synchronous store operation with errors converted."""
    with converted():
        return fn()


async def close(client: redis.asyncio.Redis) -> None:
    """Close a client of :func:`connect`, and its Sentinel connections if it has any."""
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    await client.aclose()
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


async def wait(awaitable: Awaitable[T]) -> T:
    """Await one asyncio store operation with errors converted."""
    with converted():
        return await awaitable


async def run_script(r: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run ``script`` by SHA1 on the asyncio client ``r``, loading it once if Redis
    does not know it (after a restart, or on a new server); errors converted."""
    with converted():
        try:
            return await r.evalsha(script.sha1, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await r.script_load(script.source)
            return await r.evalsha(script.sha1, len(keys), *keys, *args)


def run_script_sync(r: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """:func:`run_script` on a synchronous client (bulk work in a worker thread)."""
    with converted():
        try:
            return r.evalsha(script.sha1, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            r.script_load(script.source)
            return r.evalsha(script.sha1, len(keys), *keys, *args)
