"""Fixtures shared by the import and export tests: settings (region FR) for the test's
Redis, a :class:`Table` and an :class:`Admin` over it. Registered from conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callscreen.core.config import Settings
from callscreen.services.admin import Admin
from callscreen.services.table import Table

REGION = "FR"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region=REGION)


@pytest.fixture
def table(settings: Settings) -> Iterator[Table]:
    t = Table(settings)
    yield t
    t.close()


@pytest.fixture
def admin(settings: Settings, table: Table) -> Admin:
    return Admin(settings, table)
