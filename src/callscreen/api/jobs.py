"""Import jobs of the HTTP API: an uploaded CSV imported in the background.

The upload is streamed to ``CALLSCREEN_API_DATA_DIR/imports/JOB.csv`` (never held in
memory); the job's state lives in Redis (``{cs}:ij:JOB``), so that any API process
answers for it: ``queued``, ``running`` (with the rows and bytes read so far and a
heartbeat), ``done`` (the import's summary: added, updated, errors with their first 100
lines, …) or ``failed``. A running job whose heartbeat stopped (its process was
restarted) shows ``interrupted``; resuming it imports the file again, which is safe:
an import of the same rows changes nothing twice. Bad rows go to ``JOB.errors.csv``
beside the upload (``line,raw,error``), downloadable.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from callscreen.core.config import Settings
from callscreen.core.errors import NotFound

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


def new_job_id() -> str:
    return secrets.token_hex(8)


def upload_path(settings: Settings, job: str) -> Path:
    return Path(settings.api_data_dir) / "imports" / f"{job}.csv"


def errors_path(settings: Settings, job: str) -> Path:
    return Path(settings.api_data_dir) / "imports" / f"{job}.errors.csv"


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
