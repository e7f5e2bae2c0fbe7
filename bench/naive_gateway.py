"""The naive alternative, for bench_gateway.py: the same FastAGI server, but a key
per entry in Redis db 1 and one GET per candidate prefix, longest first.

It ignores lists, directions and campaigns (the naive design has no place for
them); it only answers whether a number or one of its prefixes is there.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis, RedisTarget
from callscreen.callpath.server import AgiServer
from callscreen.core.config import Settings
from callscreen.core.model import Result
from callscreen.core.numbers import NumberKind, read_call_number

log = logging.getLogger("callscreen.serve")


class NaiveScreener:
    def __init__(self, settings: Settings) -> None:
        target = RedisTarget.from_url(settings.redis_url)
        self.client = LeanRedis(RedisTarget(host=target.host, port=target.port, db=1))
        self.region = settings.default_region

    async def screen(self, request: ScreenRequest) -> Decision:
        number = read_call_number(request.number, self.region)
        if number.kind is not NumberKind.NUMBER:
            return Decision(Result.ALLOWED, reason=number.reason)
        digits = number.digits
        for key in [digits] + [digits[:k] + "*" for k in range(len(digits) - 1, 0, -1)]:
            value = await self.client.call("GET", key)
            if value is not None:
                name, _, action = value.decode().partition("|")
                result = Result.BLOCKED if action == "block" else Result.LABELED
                return Decision(result, number=number.e164, list_name=name, match="+" + key)
        return Decision(Result.ALLOWED, number=number.e164)

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision:
        return Decision(Result.UNSCREENED, reason=reason, failed=True)


async def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    screener = NaiveScreener(settings)
    server = AgiServer(settings, screener)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close(5)
    log.info(
        "stopped: %d calls answered, %d Redis round trips", server.calls, screener.client.requests
    )
    await screener.client.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
