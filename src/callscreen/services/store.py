"""The synchronous Redis connection used by the admin side (CLI, services).

The per-call path uses :mod:`callscreen.callpath.leanredis` instead. Every redis-py error
is converted here into :class:`~callscreen.core.errors.StoreError` at the boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
import redis.sentinel

from callscreen.callpath.leanredis import RedisTarget, parse_host_port
from callscreen.core.config import Settings
from callscreen.core.errors import StoreError, StoreUnavailable

T = TypeVar("T")


def connect(settings: Settings) -> redis.Redis:
    """A redis-py client for the configured Redis (URL, or the Sentinel primary).

    The URL is read by the same :class:`RedisTarget` as the call path's client, so
    both sides always reach the same server and database.
    """
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
    if settings.redis_sentinels:
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": timeout}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            [parse_host_port(item) for item in settings.redis_sentinels],
            sentinel_kwargs=sentinel_kwargs,
        )
        primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_service, **common
        )
        return primary
    if target.path is not None:
        return redis.Redis(unix_socket_path=target.path, **common)
    if target.tls:
        common["ssl"] = True
        common["ssl_ca_certs"] = target.ssl_ca_certs
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
    """Run one store operation with errors converted."""
    with converted():
        return fn()
