"""The application: routers under ``/api/v1``, problem details, limits, lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callscreen import __version__
from callscreen.api import evidence, imports, keys, lists, problems, screening
from callscreen.api.auth import FailureLimiter
from callscreen.api.backend import Backend
from callscreen.api.console import web
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError, TooLarge

log = logging.getLogger("callscreen.api")

PREFIX = "/api/v1"
STATIC = Path(web.__file__).parent / "static"


class BodyLimit:
    """413 for a body past ``limit`` bytes: at once from ``Content-Length``, else as
    the bytes arrive (a chunked body is never read past the limit)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # an import's upload is streamed to disk under a limit of its own
        if scope["type"] != "http" or scope["path"].endswith("/imports"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = problems.error_response(self._error())
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise self._error()
            return message

        await self.app(scope, limited, send)

    def _error(self) -> TooLarge:
        return TooLarge(f"the body is larger than {self.limit} bytes")


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    """The API over ``settings`` (a ``backend`` given is used as is and not closed)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = backend is None
        app.state.backend = backend if backend is not None else Backend.connect(settings)
        try:
            if own:
                await app.state.backend.check_schema()
            try:  # leftovers of finished jobs; never a reason not to start
                await app.state.backend.clean_job_files()
            except (CallscreenError, OSError):
                log.warning("could not remove the leftover import files", exc_info=True)
            yield
        finally:
            if own:
                await app.state.backend.close()

    app = FastAPI(
        title="callscreen",
        version=__version__,
        summary="Lists, entries, screening decisions and opt-outs of a callscreen gateway.",
        description="Authenticate with `Authorization: Bearer KEY` (`callscreen apikeys "
        "create`). Errors are RFC 9457 problem details (`application/problem+json`).",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.limiter = FailureLimiter(settings.api_auth_failures_per_s)
    problems.install(app)
    for module in (lists, imports, screening, keys, evidence):
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(evidence.health)
    app.include_router(evidence.health, prefix=PREFIX)
    # the web console under / (its own sessions; /api/v1 never reads its cookie)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Actor"],
        )
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    return app


def app_factory() -> Any:
    """For ``uvicorn --factory callscreen.api.app:app_factory``: settings from the
    environment."""
    return create_app(Settings())  # type: ignore[call-arg]  # every field has a default
