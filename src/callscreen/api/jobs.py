"""Import jobs of the HTTP API and the web console: an uploaded CSV imported in the
background (the console's Upload and Tasks pages are these jobs, :class:`ImportTask`).

The upload is streamed to ``CALLSCREEN_API_DATA_DIR/imports/JOB.csv`` (never held in
memory); the job's state lives in Redis (``{cs}:ij:JOB``), so that any API process
answers for it: ``queued``, ``running`` (with the rows and bytes read so far and a
heartbeat), ``done`` (the import's summary: added, updated, errors with their first 100
lines, …) or ``failed``. A running job whose heartbeat stopped (its process was
restarted) shows ``interrupted``; resuming it imports the file again, which is safe:
an import of the same rows changes nothing twice. Bad rows go to ``JOB.errors.csv``
beside the upload (``line,raw,error``), downloadable.

Files are kept as long as they serve (:func:`leftovers`): a job that is done loses its
upload at once (nothing can run it again) and keeps its error file for download as
long as its record lives (:data:`KEEP_S`, 30 days); a queued, running, interrupted or
failed job keeps its upload, so that ``:resume`` can run it again, until its record
expires. The API removes what is left over when it starts and after each job: the
files of jobs that are done or whose record expired, and files no job claims after an
hour (an upload whose job was never recorded).

The import itself is the import service's
(:meth:`callscreen.services.transfer.TransferService.import_file`), through
:class:`~callscreen.api.backend.Backend`, as the job's requester.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, NotFound
from callscreen.core.model import Status
from callscreen.core.times import iso

log = logging.getLogger("callscreen.api.imports")

HEARTBEAT_S = 2.0
STALE_S = 15.0  # a running job without a heartbeat for this long was interrupted
KEEP_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What was asked: the list, the options (as the CLI's import takes them), who."""

    list_id: int
    list_name: str
    approve: str  # pending, active, permanent
    reason: str | None
    source: str | None
    restore_deleted: bool
    replace: bool
    keep_status: bool
    by: str
    key: str
    via: str = "api"  # the origin its changes are recorded with: api, console
    file: str = ""  # the uploaded file's name, when the client gave one


def new_job_id() -> str:
    return secrets.token_hex(8)


def upload_path(settings: Settings, job: str) -> Path:
    return Path(settings.api_data_dir) / "imports" / f"{job}.csv"


def errors_path(settings: Settings, job: str) -> Path:
    return Path(settings.api_data_dir) / "imports" / f"{job}.errors.csv"


#: a file no job record claims is removed once it is this old (an upload being
#: written, before its job is recorded, is younger)
ORPHAN_S = 3600.0


def job_files(settings: Settings) -> dict[str, list[Path]]:
    """The files under the imports directory, by the job they belong to."""
    folder = Path(settings.api_data_dir) / "imports"
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file():
                found.setdefault(path.name.split(".", 1)[0], []).append(path)
    return found


def leftovers(
    settings: Settings, files: dict[str, list[Path]], states: dict[str, str | None], now: float
) -> list[Path]:
    """The files no longer needed, given each job's stored state (None: no record):
    a done job's upload; every file of a job without a record, once :data:`ORPHAN_S`
    old. The files of other jobs stay (resumable, or their errors downloadable)."""
    gone: list[Path] = []
    for job, paths in files.items():
        state = states.get(job)
        if state == "done":
            gone += [p for p in paths if p == upload_path(settings, job)]
        elif state is None:
            for path in paths:
                try:
                    if now - path.stat().st_mtime > ORPHAN_S:
                        gone.append(path)
                except FileNotFoundError:  # removed meanwhile
                    pass
    return gone


def record(request: ImportRequest, now: float) -> dict[str, str]:
    """The job's first state, as stored."""
    return {
        "request": json.dumps(asdict(request)),
        "state": "queued",
        "created_at": repr(now),
        "heartbeat": repr(now),
        "rows": "0",
        "bytes": "0",
        "errors": "0",
    }


def view(job: str, data: dict[str, str], now: float) -> dict[str, Any]:
    """The job as the API shows it."""
    if not data:
        raise NotFound(f"no import job {job}")
    request = json.loads(data["request"])
    state = data.get("state", "queued")
    if state in ("queued", "running") and now - float(data.get("heartbeat", 0)) > STALE_S:
        state = "interrupted"
    summary = json.loads(data["summary"]) if data.get("summary") else None
    return {
        "job": job,
        "list_id": request["list_id"],
        "list": request["list_name"],
        "state": state,
        "done": state in ("done", "failed"),
        "rows_read": int(data.get("rows", 0)),
        "bytes_read": int(data.get("bytes", 0)),
        "errors": int(data.get("errors", 0)),
        "file_bytes": int(data.get("size", 0)),
        "summary": summary,
        "first_errors": summary["first_errors"] if summary else [],
        "error": data.get("error") or None,
        "created_by": request["by"],
        "started": int(data.get("runs", 0)),
    }


#: the console's import modes: the status the imported entries get
MODES = {"pending": Status.PENDING, "approve": Status.ACTIVE, "permanent": Status.PERMANENT}
MAX_TASKS_SHOWN = 200


def mode_status(mode: str) -> Status:
    """The status a console import mode gives (:data:`MODES`)."""
    try:
        return MODES[mode]
    except KeyError:
        raise InvalidInput(f"choose one of {', '.join(MODES)}") from None


@dataclass(frozen=True, slots=True)
class ImportTask:
    """An import job as the console's task log shows it (:func:`task_of`)."""

    id: str
    list_name: str
    file: str
    by: str
    started_at: float
    size: int
    mode: str  # pending | approve | permanent
    replace: bool
    state: str  # queued | running | done | failed | interrupted
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


def task_of(job: str, data: dict[str, str], now: float) -> ImportTask:
    """The console's view of a job (its stored hash)."""
    shown = view(job, data, now)
    request = json.loads(data["request"])
    mode = {s.value: m for m, s in MODES.items()}.get(request["approve"], request["approve"])
    finished = float(data["heartbeat"]) if shown["done"] and data.get("heartbeat") else None
    return ImportTask(
        id=job,
        list_name=shown["list"],
        file=request.get("file") or request.get("source") or job,
        by=shown["created_by"],
        started_at=float(data.get("created_at") or 0),
        size=shown["file_bytes"],
        mode=mode,
        replace=bool(request.get("replace")),
        state=shown["state"],
        bytes_read=shown["file_bytes"] if shown["state"] == "done" else shown["bytes_read"],
        rows=shown["rows_read"],
        finished_at=finished,
        error=shown["error"] or "",
        summary=shown["summary"] or {},
    )


def list_id_of(data: dict[str, str]) -> int:
    return int(json.loads(data["request"])["list_id"])


class CountingWriter:
    """The error file: bad rows as CSV (after a header row), counted as they come."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("w", encoding="utf-8", newline="")
        self.lines = 0

    @property
    def rows(self) -> int:
        return max(self.lines - 1, 0)

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return self.handle.write(text)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


async def heartbeat_loop(beat: Any) -> None:
    """Call ``beat()`` (async) every :data:`HEARTBEAT_S` until cancelled."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await beat()
        except Exception:  # Redis away for a moment: the next beat tries again
            log.warning("import heartbeat failed", exc_info=True)


def now() -> float:
    return time.time()
