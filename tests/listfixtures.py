"""Fixtures shared by the import and export tests: settings (region FR) for the test's
Redis, the services driven synchronously (:class:`SyncAdmin`) and their table
(:class:`SyncTable`). Registered from conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
