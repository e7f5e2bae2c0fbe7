from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import uvloop

from callscreen.core.config import Settings
from tests.support.redisproc import RedisProcess

if TYPE_CHECKING:  # imported by the fixture: only the API's tests load the API
    from tests.support.apiserver import ApiServer

pytest_plugins = ["tests.listfixtures"]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CALLSCREEN_* variable of the developer's shell, nor a ``.env`` file in the
    working directory, leaks into a test."""
    monkeypatch.setitem(Settings.model_config, "env_file", None)
    for name in list(os.environ):
        if name.startswith("CALLSCREEN_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the session."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> Iterator[str]:
    """The URL of an empty Redis (flushed before each test)."""
    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """An empty outgoing call-file spool directory of the test's own."""
    path = tmp_path / "outgoing"
    path.mkdir()
    return path


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, for tests that stop and restart it."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The default event loop for every async test, and uvloop as well for a test (or
    module) marked ``pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])``."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and marker.kwargs.get("loop_factories"):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(scope="session")
def api_server(
    redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """One real uvicorn serving the HTTP API for the session, over the session's Redis."""
    from tests.support.apiserver import ApiServer

    settings = Settings(
        api_data_dir=str(tmp_path_factory.mktemp("api")),
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_server.url,
        default_region="FR",
        spool_dir="",
        log_level="WARNING",
    )
    server = ApiServer(settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(api_server: ApiServer, redis_url: str) -> ApiServer:
    """The API over an empty Redis, its failed-authentication counts reset."""
    api_server.reset_limits()
    return api_server
