"""A clock the test sets: what the services read as "now" (epoch seconds)."""

from __future__ import annotations

import time


class Clock:
    """Starts at the wall clock's now; :meth:`advance` moves it on, nothing else does
    unless ``ticking``, then it follows the wall clock from its own offset."""

    def __init__(self, start: float | None = None, *, ticking: bool = True) -> None:
        self.offset = 0.0 if start is None else start - time.time()
        self.ticking = ticking
        self.frozen = time.time() + self.offset

    def __call__(self) -> float:
        return time.time() + self.offset if self.ticking else self.frozen

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.frozen += seconds
