"""Errors as HTTP answers: one table from the error tree to statuses, and RFC 9457
problem details (``application/problem+json``) with a stable ``type`` per error.

Every class of :mod:`callscreen.core.errors` has its own row (a test checks it), so
adding an error means deciding its status here. The detail is the error's message:
it never contains an API key (the key service never puts one in a message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callscreen.core import errors

log = logging.getLogger("callscreen.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:callscreen:problem:"


@dataclass(frozen=True, slots=True)
class Problem:
    """What one error class answers: its status, its stable type and its title."""

    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return TYPE_BASE + self.slug


#: The one table: every error class, its status and type.
TABLE: dict[type[errors.CallscreenError], Problem] = {
    errors.CallscreenError: Problem(500, "internal", "Internal error"),
    errors.InvalidInput: Problem(422, "invalid-input", "Invalid input"),
    errors.InvalidNumber: Problem(422, "invalid-number", "Not a number or prefix"),
    errors.InvalidName: Problem(422, "invalid-name", "Invalid name"),
    errors.TooLarge: Problem(413, "too-large", "Request too large"),
    errors.NotFound: Problem(404, "not-found", "Not found"),
    errors.Conflict: Problem(409, "conflict", "Conflict"),
    errors.Refused: Problem(409, "refused", "Refused by a rule"),
    errors.NeedsConfirmation: Problem(409, "needs-confirmation", "Needs confirmation"),
    errors.StoreError: Problem(503, "store-error", "Store unavailable"),
    errors.StoreUnavailable: Problem(503, "store-unavailable", "Redis unavailable"),
    errors.StoreAuthError: Problem(503, "store-auth", "Redis refused the credentials"),
    errors.StoreProtocolError: Problem(503, "store-protocol", "Redis answered badly"),
    errors.AmiUnavailable: Problem(503, "ami-unavailable", "Asterisk manager unavailable"),
    errors.Unauthenticated: Problem(401, "unauthenticated", "Not authenticated"),
    errors.Forbidden: Problem(403, "forbidden", "Forbidden"),
    errors.RateLimited: Problem(429, "rate-limited", "Too many requests"),
    # AGI peer errors are never raised by the API's operations; one would be a bug
    errors.ProtocolError: Problem(500, "agi-protocol", "AGI protocol error"),
    errors.PeerHangup: Problem(500, "agi-hangup", "AGI peer hung up"),
}

#: Problems that are not errors of the tree: the request itself is malformed.
MALFORMED_JSON = Problem(400, "malformed-json", "Malformed JSON")
VALIDATION = Problem(422, "validation", "Validation failed")
HTTP = {
    404: Problem(404, "no-route", "No such resource"),
    405: Problem(405, "method-not-allowed", "Method not allowed"),
}
INTERNAL = TABLE[errors.CallscreenError]


def problem_of(exc: errors.CallscreenError) -> Problem:
    """The row of ``exc``'s class, or of its nearest ancestor in the table."""
    for cls in type(exc).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return INTERNAL


def problem_response(
    problem: Problem,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": problem.type, "title": problem.title, "status": problem.status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=problem.status, media_type=MEDIA_TYPE, headers=headers)


def error_response(exc: errors.CallscreenError) -> JSONResponse:
    """The answer to a callscreen error."""
    problem = problem_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="callscreen"'
    if isinstance(exc, errors.Forbidden) and exc.scope:
        extra["scope"] = exc.scope
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        extra["retry_after"] = exc.retry_after
    if problem.status >= 500 and problem.status != 503:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    return problem_response(problem, str(exc), headers=headers, **extra)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Every invalid field, with where it is (``loc``) and, inside a list, its index."""
    out = []
    for err in exc.errors():
        loc = [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())]
        item: dict[str, Any] = {"loc": loc, "message": str(err.get("msg", "")), "type": err["type"]}
        index = next((p for p in loc if isinstance(p, int)), None)
        if index is not None:
            item["index"] = index
        out.append(item)
    return out


def install(app: FastAPI) -> None:
    """Answer every error with problem details."""

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.CallscreenError)
        return error_response(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        found = _field_errors(exc)
        if any(e["type"] == "json_invalid" for e in found):
            return problem_response(
                MALFORMED_JSON, "the request body is not valid JSON", errors=found
            )
        count = len(found)
        detail = f"{count} invalid field{'s' if count != 1 else ''}"
        return problem_response(VALIDATION, detail, errors=found)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        problem = HTTP.get(
            exc.status_code, Problem(exc.status_code, f"http-{exc.status_code}", "HTTP error")
        )
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(problem, str(exc.detail), headers=headers)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem_response(INTERNAL, "internal error")

    app.add_exception_handler(errors.CallscreenError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
