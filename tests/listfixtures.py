"""Fixtures shared by the tests of stored data: settings (region FR; a test module may
override ``settings``) for the test's Redis, the services driven synchronously
(:class:`SyncAdmin`), their table (:class:`SyncTable`) and a plain redis-py client
``r`` to read what was stored. Registered from conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from callscreen.core.config import Settings
from tests.support.blocking import SyncAdmin, SyncTable

REGION = "FR"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region=REGION)


@pytest.fixture
def admin(settings: Settings) -> Iterator[SyncAdmin]:
    service = SyncAdmin(settings)
    yield service
    service.close()


@pytest.fixture
def table(admin: SyncAdmin) -> SyncTable:
    return admin.table


@pytest.fixture
def r(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
