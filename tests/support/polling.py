"""Waiting for a condition, never for a fixed time: :func:`until` (sync) and
:func:`until_async`. Both poll the condition and fail the test with ``what`` when it
does not hold within ``timeout`` seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.01


def until(
    condition: Callable[[], T],
    what: str = "the condition",
    *,
    timeout: float = 10.0,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``condition()`` until it returns something true; that value. Errors of the
    ``ignore`` types count as "not yet" (a server still starting)."""
    _described(what)
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignore:
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_S)


async def until_async(
    condition: Callable[[], T | Awaitable[T]],
    what: str = "the condition",
    *,
    timeout: float = 10.0,
    step: float = POLL_S,
) -> T:
    """:func:`until` in a coroutine; ``condition`` may be async."""
    _described(what)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)


def _described(what: object) -> None:
    # until(cond, 30) reads as a 30 s timeout but is a description with the default one
    if not isinstance(what, str):
        raise TypeError(f"what= describes the condition; give the timeout as timeout={what!r}")
