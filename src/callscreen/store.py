"""The synchronous Redis connection used by the admin side (CLI, services).

The per-call path uses :mod:`callscreen.redisclient` instead. Every redis-py error
is converted here into :class:`~callscreen.errors.StoreError` at the boundary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
import redis.sentinel

from callscreen.config import Settings
from callscreen.errors import StoreError, StoreUnavailable

T = TypeVar("T")


def connect(settings: Settings) -> redis.Redis:
    """A redis-py client for the configured Redis (URL, or the Sentinel primary)."""
    timeout = settings.redis_connect_timeout_ms / 1000
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    if settings.redis_sentinels:
        sentinels = []
        for item in settings.redis_sentinels:
            host, _, port = item.rpartition(":")
            sentinels.append((host or item, int(port or 26379)))
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": timeout}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
        db = redis.Redis.from_url(settings.redis_url).get_connection_kwargs().get("db", 0)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=sentinel_kwargs, socket_connect_timeout=timeout
        )
        primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_service,
            password=password,
            db=db,
            decode_responses=True,
            socket_connect_timeout=timeout,
        )
        return primary
    kwargs: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": timeout}
    if password is not None:
        kwargs["password"] = password
    return redis.Redis.from_url(settings.redis_url, **kwargs)


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
