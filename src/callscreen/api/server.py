"""``callscreen api``: uvicorn (uvloop, httptools) serving :func:`create_app`.

Client addresses (for the failed-authentication limit) are the peers', unless the
peer is one of ``CALLSCREEN_API_FORWARDED_ALLOW_IPS``: then ``X-Forwarded-For`` and
``X-Forwarded-Proto`` are believed. TLS: ``CALLSCREEN_API_SSL_CERTFILE`` and
``_KEYFILE``, or a reverse proxy (docs/deploy.md).
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from callscreen.api.app import create_app
from callscreen.core.config import Settings


def config(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    app: FastAPI | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration of the API process (serving ``app``, default a new
    :func:`create_app`)."""
    return uvicorn.Config(
        app if app is not None else create_app(settings),
        host=host if host is not None else settings.api_host,
        port=port if port is not None else settings.api_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        proxy_headers=bool(settings.api_forwarded_allow_ips),
        forwarded_allow_ips=settings.api_forwarded_allow_ips or None,
        server_header=False,
        ssl_certfile=settings.api_ssl_certfile or None,
        ssl_keyfile=settings.api_ssl_keyfile or None,
        log_level=settings.log_level.lower(),
        # uvicorn's records go to callscreen's log handlers (stderr), as the gateway's
        log_config=None,
        # uvicorn's access log shows paths and statuses, never headers (so never a key)
        access_log=True,
    )


def run(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
    server = uvicorn.Server(config(settings, host=host, port=port, app=app))
    # the console's live streams end when the server starts shutting down
    app.state.server = server
    server.run()
