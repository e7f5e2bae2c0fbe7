"""The benchmarks' way to the services: one ``asyncio.run`` per setup step, as the CLI
does, with the actor ``bench``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from callscreen.core.config import Settings
from callscreen.services.context import Actor, Context
from callscreen.services.facade import Services

T = TypeVar("T")


def with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``work`` over the services for ``settings``."""

    async def main() -> T:
        services = Services(Context.connect(settings, Actor("bench", "bench")))
        try:
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(main())
