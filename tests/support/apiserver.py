"""A real uvicorn serving the HTTP API on a free loopback port, for the tests, and a
small client for it (httpx over real TCP)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import uvicorn

from callscreen.api.auth import FailureLimiter
from callscreen.api.server import config
from callscreen.core.config import Settings
from callscreen.services import apikeys
from tests.support.blocking import SyncAdmin
from tests.support.polling import until
from tests.support.redisproc import free_port


class ManualClock:
    """A clock that moves only when told (the failure limiter's window)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
        until(lambda: self.server.started or not self.thread.is_alive(), "uvicorn to start")
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def reset_limits(self, clock: Callable[[], float] | None = None) -> None:
        """New failed-authentication counts; ``clock`` (a :class:`ManualClock`) makes
        the limiter's second one the test decides when it ends."""
        limiter = FailureLimiter(self.settings.api_auth_failures_per_s)
        if clock is not None:
            limiter.clock = clock
        self.app.state.limiter = limiter

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
        with SyncAdmin(self.settings) as admin:
            made = admin.acting("test").apikeys.create(name, scopes, lists=lists, expires=expires)
            return admin.run(made)[1]

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers={**auth, **headers}, timeout=30)
