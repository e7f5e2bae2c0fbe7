"""Say when the screening Redis does not answer: at start-up, and while it stays down.

The call path connects lazily and, when Redis is down, answers every call by the fail
policy within the deadline; on its own it says nothing until a call comes, and then
only once. :class:`RedisReachability` runs beside it in ``callscreen serve``: it asks
Redis for a ``PING`` at start-up and logs a WARNING if none comes (with the fail
policy calls will get); while Redis stays unreachable it tries again every
``probe_s`` seconds — each try is a reconnect attempt — and repeats the WARNING at
most every ``warn_every_s`` seconds, with the number of failed attempts since the last
one; when Redis answers again it logs so once. While Redis answers it only looks at
whether the call path's connection is open (no command sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from callscreen.callpath.leanredis import LeanRedis, RedisTarget
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError

log = logging.getLogger("callscreen.serve")

PROBE_S = 2.0
WARN_EVERY_S = 60.0
PING_TIMEOUT_S = 1.0


class RedisReachability:
    """``await start()`` probes once (and logs); a task then watches until ``close()``."""

    def __init__(
        self,
        settings: Settings,
        client: LeanRedis,
        *,
        probe_s: float = PROBE_S,
        warn_every_s: float = WARN_EVERY_S,
    ) -> None:
        self.client = client
        self.fail_policy = settings.fail_policy.value
        self.where = describe(settings)
        self.probe_s = probe_s
        self.warn_every_s = warn_every_s
        self.reachable: bool | None = None  # None: not probed yet
        self.failures = 0  # failed attempts since the last WARNING
        self.warnings = 0
        self._last_warning = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.probe()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probe(self) -> bool:
        """One PING (a connection attempt when none is open); logs what changed."""
        loop = asyncio.get_running_loop()
        try:
            await self.client.call("PING", timeout=PING_TIMEOUT_S)
        except CallscreenError as exc:
            self.failures += 1
            now = loop.time()
            if self.reachable is not False or now - self._last_warning >= self.warn_every_s:
                since = f" ({self.failures} failed attempts)" if self.failures > 1 else ""
                log.warning(
                    "Redis at %s does not answer: %s%s; calls get the fail-%s answer "
                    "until it does",
                    self.where, exc, since, self.fail_policy,
                )  # fmt: skip
                self._last_warning = now
                self.failures = 0
                self.warnings += 1
            self.reachable = False
            return False
        if self.reachable is False:
            log.info("Redis at %s answers again", self.where)
        self.reachable = True
        self.failures = 0
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.probe_s)
            if self.reachable is False or not self.client.connected:
                await self.probe()


def describe(settings: Settings) -> str:
    """Where the screening Redis is, without a password."""
    if settings.redis_sentinels:
        return f"Sentinel service {settings.redis_sentinel_service}"
    try:
        return RedisTarget.from_url(settings.redis_url).describe()
    except CallscreenError:
        return "the configured URL"
