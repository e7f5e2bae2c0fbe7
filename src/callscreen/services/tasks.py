"""Import tasks: a CSV import started from the web console, its progress while it runs,
and its record afterwards (what dialers call the task log).

A task is a hash in Redis (``{cs}:task:ID``: list, file, who, when, options, state,
bytes and rows read, the import's counts when done) listed in ``{cs}:tasks`` by start
time, so that the task log survives a restart of ``callscreen api`` and is the same on
every API process. The rows an import refused are kept beside it (``{cs}:task:ID:err``,
CSV ``line,raw,error``, at most :data:`MAX_ERROR_BYTES`). A running task writes a
heartbeat with its progress; one whose heartbeat is older than :data:`STALE_S` (its
process died) reads as ``interrupted``. Tasks are kept :data:`KEEP_S` (90 days).

The import itself is :meth:`callscreen.services.admin.Admin.import_file`: the same
rules as ``callscreen import``.
"""

from __future__ import annotations

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
from callscreen.services.admin import Admin
from callscreen.services.importer import ImportOptions
from callscreen.services.table import Table

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


def create(
    table: Table,
    list_name: str,
    file: str,
    size: int,
    *,
    mode: str,
    replace: bool,
    by: str,
    now: float | None = None,
) -> Task:
    """Record a new running task (the import is :func:`run`)."""
    now = time.time() if now is None else now
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
    keys = table.keys

    def write() -> None:
        pipe = table.r.pipeline(transaction=False)
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
        pipe.execute()

    store.call(write)
    return task


def run(admin: Admin, task: Task, path: str) -> Task:
    """Import ``path`` as ``task`` says, writing progress as it goes; the task as it
    ended (``failed`` with the error's message if the import was refused)."""
    table = admin.table
    key = table.keys.task(task.id)
    last = 0.0

    def progress(_phase: str, read: int, rows: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_S:
            return
        last = now
        mapping = {"bytes_read": str(read), "rows": str(rows), "beat": repr(time.time())}
        store.call(lambda: table.r.hset(key, mapping=mapping))

    errors = io.StringIO()
    options = ImportOptions(
        approve=MODES[task.mode],
        replace=task.replace,
        by=task.by,
        source=f"upload:{task.file}",
    )
    fields: dict[str, str]
    try:
        result = admin.import_file(
            task.list_name, path, options, errors_out=errors, progress=progress
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
    fields["finished_at"] = repr(time.time())
    refused = errors.getvalue().encode()[:MAX_ERROR_BYTES]

    def finish() -> None:
        pipe = table.r.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)
        if refused:
            pipe.set(table.keys.task_errors(task.id), refused, ex=KEEP_S)
        pipe.execute()

    store.call(finish)
    return get(table, task.id)


def get(table: Table, task_id: str) -> Task:
    data: dict[str, str] = store.call(lambda: table.r.hgetall(table.keys.task(task_id)))
    if not data:
        raise NotFound(f"no task {task_id!r}")
    return Task.from_hash(data, time.time())


def list_tasks(table: Table, limit: int = MAX_TASKS_SHOWN) -> list[Task]:
    """The latest tasks, newest first."""
    keys = table.keys
    ids = store.call(lambda: table.r.zrevrange(keys.tasks, 0, limit - 1))

    def read() -> list[dict[str, str]]:
        pipe = table.r.pipeline(transaction=False)
        for task_id in ids:
            pipe.hgetall(keys.task(task_id))
        return list(pipe.execute())

    now = time.time()
    return [Task.from_hash(data, now) for data in store.call(read) if data]


def error_rows(table: Table, task_id: str) -> str:
    """The rows the import refused, as CSV (``line,raw,error``)."""
    raw = store.call(lambda: table.r.get(table.keys.task_errors(task_id)))
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
