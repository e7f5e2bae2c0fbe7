"""Running the gateway: ``callscreen serve``.

Starts the FastAGI server over the screening core, and stops it gracefully: the
first SIGINT/SIGTERM stops accepting and lets calls in flight finish for up to
``shutdown_grace_s``; a second one forces the exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from callscreen.agi.server import AgiServer
from callscreen.config import Settings
from callscreen.localredis import LocalRedis
from callscreen.screening import Screener

log = logging.getLogger("callscreen.serve")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


async def serve(settings: Settings) -> None:
    """Serve FastAGI until a shutdown signal arrives."""
    loop = asyncio.get_running_loop()
    screener = Screener.from_settings(settings)
    server = AgiServer(settings, screener)
    await server.start()
    log.info(
        "callscreen listening on %s:%s (region %s, deadline %d ms, fail-%s)",
        settings.listen_host,
        server.port,
        settings.default_region,
        settings.deadline_ms,
        settings.fail_policy.value,
    )
    stopping = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("shutting down: finishing calls in flight (Ctrl-C again to force)")
            stopping.set()
        else:
            log.warning("forced shutdown")
            for task in asyncio.all_tasks(loop):
                task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stopping.wait()
        await server.close(settings.shutdown_grace_s)
        log.info(
            "stopped: %d calls answered, %d Redis round trips",
            server.calls,
            screener.client.requests,
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await screener.close()


def run(settings: Settings, *, local_redis: bool = False) -> int:
    """Run the gateway in this process; returns the exit code."""
    configure_logging(settings.log_level)
    local = LocalRedis(settings) if local_redis else None
    try:
        if local is not None and local.ensure():
            log.info("using a local Redis at %s", settings.redis_url)
        try:
            import uvloop

            uvloop.run(serve(settings))
        except ImportError:
            asyncio.run(serve(settings))
    except asyncio.CancelledError:
        return 1
    finally:
        if local is not None:
            local.stop()
    return 0
