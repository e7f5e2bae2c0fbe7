"""Import tasks: a CSV import started from the web console, its progress while it runs,
and its record afterwards (what dialers call the task log).

A task is a hash in Redis (``{cs}:task:ID``: list, file, who, when, options, state,
bytes and rows read, the import's counts when done) listed in ``{cs}:tasks`` by start
time, so that the task log survives a restart of ``callscreen api`` and is the same on
every API process. The rows an import refused are kept beside it (``{cs}:task:ID:err``,
CSV ``line,raw,error``, at most :data:`MAX_ERROR_BYTES`). A running task writes a
heartbeat with its progress; one whose heartbeat is older than :data:`STALE_S` (its
process died) reads as ``interrupted``. Tasks are kept :data:`KEEP_S` (90 days).

The import itself is :meth:`callscreen.services.transfer.TransferService.import_file`
as the task's starter: the same rules as ``callscreen import``.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from callscreen.core.errors import NotFound
from callscreen.core.model import Status
from callscreen.core.times import iso
from callscreen.services import store
from callscreen.services.context import Context
from callscreen.services.facade import Services
from callscreen.services.importer import ImportOptions

MAX_ERROR_BYTES = 1024 * 1024
STALE_S = 30
KEEP_S = 90 * 86400
PROGRESS_EVERY_S = 0.2
MAX_TASKS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class Task:
    """One import task as stored."""

    id: str
    list_name: str
    file: str
    by: str
    started_at: float
    size: int
    mode: str  # pending | approve | permanent
    replace: bool
    state: str  # running | done | failed | interrupted
    bytes_read: int = 0
    rows: int = 0
    finished_at: float | None = None
    error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        if not self.size:
            return 0
        return min(99, self.bytes_read * 100 // self.size)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "list": self.list_name,
            "file": self.file,
            "by": self.by,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "size": self.size,
            "mode": self.mode,
            "replace": self.replace,
            "state": self.state,
            "bytes_read": self.bytes_read,
            "rows": self.rows,
            "percent": self.percent,
            "error": self.error,
            "summary": self.summary,
        }

    @classmethod
    def from_hash(cls, data: dict[str, str], now: float) -> Task:
        state = data.get("state", "running")
        if state == "running" and now - float(data.get("beat") or 0) > STALE_S:
            state = "interrupted"
        return cls(
            id=data["id"],
            list_name=data.get("list", ""),
            file=data.get("file", ""),
            by=data.get("by", ""),
            started_at=float(data.get("started_at") or 0),
            size=int(data.get("size") or 0),
            mode=data.get("mode", "pending"),
            replace=data.get("replace") == "1",
            state=state,
            bytes_read=int(data.get("bytes_read") or 0),
            rows=int(data.get("rows") or 0),
            finished_at=float(data["finished_at"]) if data.get("finished_at") else None,
            error=data.get("error", ""),
            summary=json.loads(data["summary"]) if data.get("summary") else {},
        )


MODES = {"pending": Status.PENDING, "approve": Status.ACTIVE, "permanent": Status.PERMANENT}


async def create(
    ctx: Context, list_name: str, file: str, size: int, *, mode: str, replace: bool
) -> Task:
    """Record a new running task started by the context's actor (the import is
    :func:`run`)."""
    now = ctx.clock()
    by = ctx.actor.name
    task = Task(
        id=time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(4),
        list_name=list_name,
        file=file[:200],
        by=by,
        started_at=now,
        size=size,
        mode=mode,
        replace=replace,
        state="running",
    )
    keys = ctx.table.keys
    pipe = ctx.table.r.pipeline(transaction=False)
    pipe.hset(
        keys.task(task.id),
        mapping={
            "id": task.id,
            "list": list_name,
            "file": task.file,
            "by": by,
            "started_at": repr(now),
            "size": str(size),
            "mode": mode,
            "replace": "1" if replace else "0",
            "state": "running",
            "beat": repr(now),
        },
    )
    pipe.expire(keys.task(task.id), KEEP_S)
    pipe.zadd(keys.tasks, {task.id: now})
    pipe.zremrangebyscore(keys.tasks, "-inf", now - KEEP_S)
    await store.wait(pipe.execute())
    return task


async def run(services: Services, task: Task, path: str) -> Task:
    """Import ``path`` as ``task`` says (``services`` acting as the task's starter),
    writing progress as it goes; the task as it ended (``failed`` with the error's
    message if the import was refused)."""
    ctx = services.ctx
    table = ctx.table
    key = table.keys.task(task.id)
    progress = {"bytes_read": 0, "rows": 0}

    def on_progress(_phase: str, read: int, rows: int) -> None:
        # called from the import's worker thread: the beat below writes it
        progress["bytes_read"], progress["rows"] = read, rows

    async def beat() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            mapping = {k: str(v) for k, v in progress.items()} | {"beat": repr(ctx.clock())}
            try:
                await store.wait(table.r.hset(key, mapping=mapping))
            except Exception:  # Redis away for a moment: the next beat tries again
                continue

    errors = io.StringIO()
    options = ImportOptions(
        approve=MODES[task.mode],
        replace=task.replace,
        source=f"upload:{task.file}",
    )
    fields: dict[str, str]
    beating = asyncio.get_running_loop().create_task(beat())
    try:
        result = await services.transfer.import_file(
            task.list_name, path, options, errors_out=errors, progress=on_progress
        )
    except Exception as exc:  # refused or broken: the task says why, the server goes on
        fields = {"state": "failed", "error": str(exc)[:2000]}
    else:
        summary = result.to_json()
        fields = {
            "state": "done",
            "summary": json.dumps(summary),
            "bytes_read": str(task.size),
            "rows": str(summary.get("rows", 0)),
        }
    finally:
        beating.cancel()
    fields["finished_at"] = repr(ctx.clock())
    refused = errors.getvalue().encode()[:MAX_ERROR_BYTES]
    pipe = table.r.pipeline(transaction=False)
    pipe.hset(key, mapping=fields)
    if refused:
        pipe.set(table.keys.task_errors(task.id), refused, ex=KEEP_S)
    await store.wait(pipe.execute())
    return await get(ctx, task.id)


async def get(ctx: Context, task_id: str) -> Task:
    data: dict[str, str] = await store.wait(ctx.table.r.hgetall(ctx.table.keys.task(task_id)))
    if not data:
        raise NotFound(f"no task {task_id!r}")
    return Task.from_hash(data, ctx.clock())


async def list_tasks(ctx: Context, limit: int = MAX_TASKS_SHOWN) -> list[Task]:
    """The latest tasks, newest first."""
    keys = ctx.table.keys
    r = ctx.table.r
    ids = await store.wait(r.zrevrange(keys.tasks, 0, limit - 1))
    pipe = r.pipeline(transaction=False)
    for task_id in ids:
        pipe.hgetall(keys.task(task_id))
    found: list[dict[str, str]] = await store.wait(pipe.execute())
    now = ctx.clock()
    return [Task.from_hash(data, now) for data in found if data]


async def error_rows(ctx: Context, task_id: str) -> str:
    """The rows the import refused, as CSV (``line,raw,error``)."""
    raw = await store.wait(ctx.table.r.get(ctx.table.keys.task_errors(task_id)))
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
