"""``/lists/{id}/imports`` and ``/imports/{job}``: CSV imports run in the background
(:mod:`callscreen.api.jobs`)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from callscreen.api import jobs
from callscreen.api.auth import Principal, scoped
from callscreen.api.models import ERRORS, ImportJobOut
from callscreen.core.errors import InvalidInput, TooLarge
from callscreen.services.apikeys import KeyScope

router = APIRouter(tags=["imports"], responses=ERRORS)

Writer = Annotated[Principal, Depends(scoped(KeyScope.LISTS_WRITE))]
Reader = Annotated[Principal, Depends(scoped(KeyScope.LISTS_READ))]
ListId = Annotated[int, PathParam(ge=1, le=2**53, description="the list's numeric id")]
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")]

CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "the CSV file, as `callscreen import` reads it (streamed to disk)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


async def _write_upload(request: Request, path: Path, limit: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the file is larger than {limit} bytes")
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return size


@router.post(
    "/lists/{list_id}/imports",
    status_code=202,
    response_model=ImportJobOut,
    summary="Import a CSV file into a list, in the background (202 and a job)",
    description="The body is the file (`Content-Type: text/csv`), streamed to disk. New "
    "entries are pending unless `approve` is `active` (scope entries:approve) or "
    "`permanent` (scope entries:approve-permanent). Follow it at `GET /imports/{job}`.",
    openapi_extra=CSV_BODY,
)
async def start_import(
    list_id: ListId,
    request: Request,
    who: Writer,
    approve: Literal["pending", "active", "permanent"] = "pending",
    reason: Annotated[str | None, Query(max_length=500)] = None,
    source: Annotated[str | None, Query(max_length=100)] = None,
    restore_deleted: bool = False,
    replace: bool = False,
    keep_status: bool = False,
) -> dict[str, Any]:
    if approve == "active":
        who.need(KeyScope.ENTRIES_APPROVE)
    elif approve == "permanent":
        who.need(KeyScope.ENTRIES_APPROVE_PERMANENT)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "text/plain", "application/octet-stream"):
        raise InvalidInput("send the file as text/csv")
    info = await who.backend.show_list(list_id)  # 404 / 403 before taking the upload
    settings = who.backend.settings
    job = jobs.new_job_id()
    size = await _write_upload(
        request, jobs.upload_path(settings, job), settings.api_max_upload_bytes
    )
    job_request = jobs.ImportRequest(
        list_id=list_id,
        list_name=info.name,
        approve=approve,
        reason=reason,
        source=source,
        restore_deleted=restore_deleted,
        replace=replace,
        keep_status=keep_status,
        by=who.actor,
        key=who.key.name,
    )
    await who.backend.start_import(job, job_request, size)
    return await who.backend.import_status(job)


@router.get("/imports/{job}", response_model=ImportJobOut, summary="An import job's progress")
async def import_status(job: JobId, who: Reader) -> dict[str, Any]:
    return await who.backend.import_status(job)


@router.post(
    "/imports/{job}:resume",
    status_code=202,
    response_model=ImportJobOut,
    summary="Finish an interrupted import (imports are idempotent: rows done stay done)",
)
async def resume_import(job: JobId, who: Writer) -> dict[str, Any]:
    return await who.backend.resume_import(job)


@router.get(
    "/imports/{job}/errors",
    response_class=FileResponse,
    summary="The bad rows of an import (CSV: line, raw, error)",
    responses={200: {"content": {"text/csv": {}}, "description": "CSV"}},
)
async def import_errors(job: JobId, who: Reader) -> FileResponse:
    path = await who.backend.import_errors(job)
    return FileResponse(path, media_type="text/csv", filename=f"import-{job}-errors.csv")
