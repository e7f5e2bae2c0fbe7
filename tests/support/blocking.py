"""The async services driven from synchronous tests: one event loop in a background
thread (:class:`Portal`), and facades that call through it.

:class:`SyncAdmin` keeps the method names and ``by=`` keywords the service tests were
written with (the HTTP API and the CLI call the same services): ``by`` picks the
actor of that one call. Changes that queue a cascade wait for its report as the CLI
does (:func:`callscreen.cli.common.settled`). :class:`SyncTable` gives tests the
table's async methods as plain calls, plus a synchronous redis-py client (``r``) to
look at what is stored.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import redis

from callscreen.cli.common import settled
from callscreen.core.config import Settings
from callscreen.services.bulk import Bulk
from callscreen.services.context import Actor, Context
from callscreen.services.facade import Services
from callscreen.services.table import ListInfo, Table

T = TypeVar("T")

TEST_ACTOR = Actor("tester", "test")


class Portal:
    """An event loop running in a daemon thread; :meth:`run` a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result()

    def collect(self, items: AsyncIterator[T]) -> list[T]:
        async def gather() -> list[T]:
            return [item async for item in items]

        return self.run(gather())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class SyncTable(Bulk):
    """A :class:`~callscreen.services.bulk.Bulk` (synchronous ``r``, ``keys``,
    ``buckets``, ``batches``, ``new_batch``, ``get_list``) that also runs the async
    :class:`Table`'s other methods through the portal."""

    def __init__(self, portal: Portal, table: Table) -> None:
        super().__init__(table.settings, redis.Redis(**_sync_kwargs(table)), table.clock)
        self.portal = portal
        self.table = table

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.table, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **k: self.portal.run(attr(*a, **k))
        return attr

    def create_list(self, name: str, action: Any, direction: Any = None, scope: Any = None,
                    description: str = "", by: str = "tester") -> ListInfo:  # fmt: skip
        from callscreen.core.model import Direction, Scope

        return self.portal.run(
            self.table.create_list(
                name, action, direction or Direction.BOTH, scope or Scope.GLOBAL, description,
                by or "tester",
            )
        )  # fmt: skip


def _sync_kwargs(table: Table) -> dict[str, Any]:
    kwargs = dict(table.r.connection_pool.connection_kwargs)
    kwargs.pop("connection_class", None)
    return {k: v for k, v in kwargs.items() if k in _SYNC_OPTIONS}


_SYNC_OPTIONS = {
    "host", "port", "db", "username", "password", "unix_socket_path", "decode_responses",
    "socket_connect_timeout",
}  # fmt: skip

_SERVICE_OF = {
    "create_list": "lists", "list_lists": "lists", "show_list": "lists",
    "update_list": "lists", "delete_list": "lists",
    "add": "entries", "remove": "entries", "restore": "entries", "approve": "entries",
    "unapprove": "entries", "list_entries": "entries", "purge": "entries",
    "parse_entries": "entries", "show_entry": "entries", "page_entries": "entries",
    "statuses": "entries", "cascade": "entries", "transitions": "entries",
    "assign": "campaigns", "campaign": "campaigns", "campaigns": "campaigns",
    "check": "checks", "lists_applied": "checks",
    "history": "history",
    "import_file": "transfer", "export_list": "transfer", "export_file": "transfer",
}  # fmt: skip
_SETTLED = {"add", "restore", "approve", "import_file"}


class SyncAdmin:
    """Every service method by its name, run through the portal; ``by=NAME`` makes
    that call's actor ``NAME``."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] | None = None,
                 portal: Portal | None = None) -> None:  # fmt: skip
        self.portal = portal or Portal()
        self._own_portal = portal is None
        self.settings = settings
        ctx = (
            Context.connect(settings, TEST_ACTOR)
            if clock is None
            else Context.connect(settings, TEST_ACTOR, clock=clock)
        )
        self.ctx = ctx
        self.services = Services(ctx)
        self.table = SyncTable(self.portal, ctx.table)

    def acting(self, by: str) -> Services:
        """The services with ``by`` as the actor (the test actor when empty)."""
        if not by:
            return self.services
        return Services(self.ctx.acting_as(Actor(by, "test")))

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        return self.portal.run(coro)

    def __getattr__(self, name: str) -> Any:
        where = _SERVICE_OF.get(name)
        if where is None:
            raise AttributeError(name)

        def method(*args: Any, by: str = "", **kwargs: Any) -> Any:
            services = self.acting(by)
            fn = getattr(getattr(services, where), name)
            result = fn(*args, **kwargs)
            if not inspect.isawaitable(result):
                return result
            if name in _SETTLED:
                return self.portal.run(settled(services, result))
            return self.portal.run(result)

        return method

    def close(self) -> None:
        self.table.close()
        self.portal.run(self.services.close())
        if self._own_portal:
            self.portal.close()

    def __enter__(self) -> SyncAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
