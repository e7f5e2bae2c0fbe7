"""A real uvicorn serving the HTTP API on a free loopback port, for the tests, and a
small client for it (httpx over real TCP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn

from callscreen.api.auth import FailureLimiter
from callscreen.api.server import config
from callscreen.core.config import Settings
from callscreen.services import apikeys
from callscreen.services.table import Table
from tests.redisproc import free_port


def wait_until(predicate: Any, timeout: float = 10.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


class ApiServer:
    """uvicorn (uvloop, httptools, as ``callscreen api`` runs it) in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.server = uvicorn.Server(config(settings, host="127.0.0.1", port=self.port))
        self.server.config.log_level = "warning"
        self.server.config.app.state.server = self.server
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive())
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def reset_limits(self) -> None:
        self.app.state.limiter = FailureLimiter(self.settings.api_auth_failures_per_s)

    @property
    def app(self) -> Any:
        from fastapi import FastAPI

        app: Any = self.server.config.app
        assert isinstance(app, FastAPI)
        return app

    def make_key(
        self,
        name: str,
        scopes: Sequence[str] = tuple(s.value for s in apikeys.KeyScope),
        lists: Sequence[str] = (),
        expires: str | None = None,
    ) -> str:
        table = Table(self.settings)
        try:
            return apikeys.create(table, name, scopes, lists=lists, expires=expires, by="test")[1]
        finally:
            table.close()

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers={**auth, **headers}, timeout=30)
