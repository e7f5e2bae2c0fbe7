"""Who is calling: the Bearer key, its scopes, and the actor its changes are recorded as.

``Authorization: Bearer cs_…`` is checked by the key service
(:meth:`callscreen.services.apikeys.KeyService.authenticate`) on every request (a
revoked key fails on its next request, on every process). A client address that fails
to authenticate more than ``api_auth_failures_per_s`` times in a second gets 429 with
``Retry-After`` until the second is over; the count is kept per process. The key never
appears in a log line or in an error.

Changes are recorded as made by ``key:NAME``, with the client's ``X-Actor`` header
in parentheses when it sends one (``key:crm (agent 4411)``), via ``api``: the actor
of the services' context (:meth:`~callscreen.api.backend.Backend.acting_as`).
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callscreen.api.backend import Backend
from callscreen.core.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from callscreen.services.apikeys import ApiKey, KeyScope

MAX_X_ACTOR = 100

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cs_…`")


class FailureLimiter:
    """Failed authentications per client address in the current second (fixed window)."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self._window = 0
        self._counts: dict[str, int] = {}

    def _roll(self) -> float:
        now = self.clock()
        window = math.floor(now)
        if window != self._window:
            self._window = window
            self._counts.clear()
        return now

    def check(self, address: str) -> None:
        """Raise :class:`RateLimited` if ``address`` used up its failures this second."""
        now = self._roll()
        if self._counts.get(address, 0) >= self.per_second:
            retry = max(1, math.ceil(self._window + 1 - now))
            raise RateLimited(
                f"more than {self.per_second} failed authentications a second from this "
                "address: retry later",
                retry_after=retry,
            )

    def failed(self, address: str) -> None:
        self._roll()
        self._counts[address] = self._counts.get(address, 0) + 1


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its key and the backend acting in its name."""

    key: ApiKey
    actor: str
    backend: Backend

    def need(self, scope: KeyScope) -> None:
        if not self.key.has(scope):
            raise Forbidden(f"this API key lacks the scope {scope.value}", scope.value)


def actor_of(key: ApiKey, x_actor: str | None) -> str:
    """``key:NAME``, plus ``(X-Actor)`` when the client names a person or a process."""
    actor = f"key:{key.name}"
    if x_actor is None or not x_actor.strip():
        return actor
    x_actor = x_actor.strip()
    if len(x_actor) > MAX_X_ACTOR or any(unicodedata.category(c) == "Cc" for c in x_actor):
        raise InvalidInput(f"X-Actor must be at most {MAX_X_ACTOR} characters, no control ones")
    return f"{actor} ({x_actor})"


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The request's :class:`Principal`; 401 without a valid key, 429 past the limit."""
    limiter: FailureLimiter = request.app.state.limiter
    backend: Backend = request.app.state.backend
    address = request.client.host if request.client else "?"
    limiter.check(address)
    if credentials is None:
        limiter.failed(address)
        raise Unauthenticated("send an API key: Authorization: Bearer KEY")
    try:
        key = await backend.authenticate(credentials.credentials)
    except Unauthenticated:
        limiter.failed(address)
        raise
    actor = actor_of(key, request.headers.get("x-actor"))
    return Principal(key, actor, backend.acting_as(actor, key))


Authenticated = Annotated[Principal, Depends(authenticated)]


def scoped(scope: KeyScope) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``scope`` (403 naming it otherwise)."""

    async def dependency(principal: Authenticated) -> Principal:
        principal.need(scope)
        return principal

    dependency.__name__ = f"needs_{scope.value.replace(':', '_').replace('-', '_')}"
    return dependency
