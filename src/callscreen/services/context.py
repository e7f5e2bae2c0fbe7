"""What every service is given: the settings, the store, who acts, and the clock.

A front end builds one :class:`Context` per connection (the CLI: per command) and,
for each request, the same context with that request's actor
(:meth:`Context.acting_as`): the store is shared, the actor never guessed. No service
reads the OS user, the environment or the wall clock by itself.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
import time
from dataclasses import dataclass

from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput
from callscreen.core.text import free_text
from callscreen.services.table import Clock, Table

MAX_ACTOR = 200


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change (``name``, recorded as ``by``) and through what (``via``:
    ``cli:USER@HOST``, ``gateway:outcomes``, ``api``...), both kept in the audit trail."""

    name: str
    via: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput("every change names who makes it (--by)")
        free_text(self.name, "--by", MAX_ACTOR)
        free_text(self.via, "the actor's origin", MAX_ACTOR)

    @classmethod
    def cli(cls, by: str = "") -> Actor:
        """The CLI's actor: ``--by`` (the OS user when not given), via the OS user at
        this host. The front end decides the default, not the services."""
        user = os_user()
        return cls(by.strip() or user, f"cli:{user}@{socket.gethostname()}")


def os_user() -> str:
    """The OS user running this process ("unknown" where there is none: containers)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Context:
    """The settings, the store (:class:`Table`, asyncio redis-py), the actor of the
    changes made through this context, and the clock (epoch seconds)."""

    settings: Settings
    table: Table
    actor: Actor
    clock: Clock = time.time

    @classmethod
    def connect(cls, settings: Settings, actor: Actor, *, clock: Clock = time.time) -> Context:
        """A context over a new connection to the configured Redis (connected on first
        use); :meth:`close` it."""
        return cls(settings, Table(settings, clock=clock), actor, clock)

    def acting_as(self, actor: Actor) -> Context:
        """This context (same store and clock) for another actor."""
        return dataclasses.replace(self, actor=actor)

    @property
    def region(self) -> str:
        return self.settings.default_region

    async def close(self) -> None:
        await self.table.close()
