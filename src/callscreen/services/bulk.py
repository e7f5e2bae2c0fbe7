"""The store as bulk work sees it: a synchronous redis-py client used from one worker
thread (an import's merge loop, an export's scan), so that pipelined bulk writes and
reads keep their speed while the services stay async (:mod:`callscreen.services.transfer`
runs them with :func:`asyncio.to_thread`).

Only what bulk work needs: key names, the bucket count, batch records. Lists are
created and changed through :class:`~callscreen.services.table.Table`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import NotFound
from callscreen.schema.keys import BATCH_BUCKET, DEFAULT_BUCKETS, SCHEMA_VERSION, Keys
from callscreen.services import store
from callscreen.services.table import Batch, Clock, ListInfo


@dataclass
class Bulk:
    """A synchronous client and the layout facts bulk work needs; not thread-safe:
    one worker thread at a time."""

    settings: Settings
    r: Any = None  # redis.Redis; untyped for the same reason as Table.r
    clock: Clock = time.time
    keys: Keys = field(init=False)
    _buckets: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.key_tag)
        if self.r is None:
            self.r = store.connect_sync(self.settings)

    def close(self) -> None:
        self.r.close()

    @property
    def buckets(self) -> int:
        """The number of exact-entry buckets per list (as :meth:`Table.buckets`)."""
        if self._buckets is None:

            def init() -> int:
                self.r.hsetnx(self.keys.meta, "buckets", DEFAULT_BUCKETS)
                self.r.hsetnx(self.keys.meta, "schema", SCHEMA_VERSION)
                return int(self.r.hget(self.keys.meta, "buckets") or DEFAULT_BUCKETS)

            self._buckets = store.call(init)
        return self._buckets

    def get_list(self, name: str) -> ListInfo:
        def read() -> dict[str, str]:
            raw = self.r.hget(self.keys.lists, name)
            return {} if raw is None else {"id": raw, **self.r.hgetall(self.keys.list(int(raw)))}

        data = store.call(read)
        if len(data) <= 1:
            raise NotFound(f"no list named {name!r}")
        return ListInfo.from_hash(int(data.pop("id")), data)

    def new_batch(self, op: str, reason: str, source: str, by: str) -> Batch:
        """As :meth:`Table.new_batch`."""
        if not by:
            raise ValueError("a batch names who made it")

        def make() -> Batch:
            batch_id = int(self.r.incr(self.keys.batch_seq))
            batch = Batch(batch_id, op, reason, source, by, self.clock())
            self.r.hset(self.keys.batch(batch_id), str(batch_id % BATCH_BUCKET), batch.encode())
            return batch

        return store.call(make)

    def batches(self, ids: list[int]) -> dict[int, Batch]:
        """As :meth:`Table.batches`."""
        unique = sorted(set(ids))
        if not unique:
            return {}

        def read() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for batch_id in unique:
                pipe.hget(self.keys.batch(batch_id), str(batch_id % BATCH_BUCKET))
            result: list[Any] = pipe.execute()
            return result

        raws = store.call(read)
        return {bid: Batch.decode(bid, raw) for bid, raw in zip(unique, raws, strict=True)}
