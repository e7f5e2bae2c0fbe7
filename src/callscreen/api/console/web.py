"""The console's pages: sign-in, lists, a list's review queue, numbers, attempts (live),
reports, campaigns, admin.

Sessions: ``cs_session`` cookie (HttpOnly, SameSite=Strict, Secure when the request
came over TLS), the session itself in Redis (:mod:`callscreen.services.users`). Every
POST carries the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``) or is refused with 403; the sign-in form, before any session, uses
a double-submit cookie (``cs_pre``). Errors of the one tree answer an HTML page with
the status of :mod:`callscreen.api.problems`' table.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from jinja2.exceptions import TemplateRuntimeError, UndefinedError
from jinja2.utils import missing
from starlette.datastructures import FormData

from callscreen.api import problems
from callscreen.api.backend import Backend
from callscreen.core.errors import (
    CallscreenError,
    Forbidden,
    InvalidInput,
    RateLimited,
    Unauthenticated,
)
from callscreen.core.model import Action, Direction, Scope, Status
from callscreen.reports.render import attempt_json, report_csv, report_html
from callscreen.reports.report import LogQuery
from callscreen.schema.attempts import Outcome
from callscreen.services import browse, users
from callscreen.services.apikeys import KeyScope

SESSION_COOKIE = "cs_session"
PRE_COOKIE = "cs_pre"
PAGE_SIZES = (50, 100, 200)
ATTEMPTS_SHOWN = 100
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'self'; "
    "base-uri 'none'"
)
# the report page is the reports' own self-contained HTML (inline style sheet)
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

TABS = {
    "review": (frozenset({Status.PENDING}), "For review"),
    "blacklisted": (frozenset({Status.ACTIVE, Status.PERMANENT}), "Blacklisted"),
    "removed": (frozenset({Status.DELETED}), "Removed"),
    "expired": (frozenset({Status.EXPIRED}), "Expired"),
}


class _Unknown(Undefined):
    """An undefined page value renders empty; an attribute a value does not have is a
    template error (a renamed field would otherwise show as a blank cell)."""

    def __init__(self, hint: str | None = None, obj: Any = missing, name: str | None = None,
                 exc: type[TemplateRuntimeError] = UndefinedError) -> None:  # fmt: skip
        super().__init__(hint, obj, name, exc)
        if obj is not missing and not isinstance(obj, Undefined | dict):
            self._fail_with_undefined_error()


env = Environment(
    loader=PackageLoader("callscreen.api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=_Unknown,
)


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("T", " ").removesuffix("Z").removesuffix("+00:00")


env.filters["when"] = _when
env.filters["q"] = lambda value: quote(str(value), safe="")


class SignIn(Exception):
    """No valid session: go to the sign-in page."""


@dataclass(frozen=True, slots=True)
class Ctx:
    """A signed-in request: the session and the backend acting as its user."""

    request: Request
    session: users.Session
    backend: Backend
    form: FormData | None

    @property
    def user(self) -> users.User:
        return self.session.user

    def can(self, scope: KeyScope) -> bool:
        return scope in self.user.scopes

    def need(self, scope: KeyScope) -> None:
        if not self.can(scope):
            raise Forbidden(
                f"your role ({self.user.role.value}) does not allow this ({scope.value})",
                scope.value,
            )

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def page(
    request: Request,
    template: str,
    ctx: Ctx | None = None,
    *,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    html = env.get_template(template).render(
        request=request,
        user=ctx.user if ctx else None,
        csrf=ctx.session.csrf if ctx else "",
        can=(lambda scope: ctx.can(KeyScope(scope))) if ctx else (lambda scope: False),
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=_headers())


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_headers())


class ConsoleRoute(APIRoute):
    """Errors as HTML pages, a missing session as a redirect to the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await self._answer(handler, request)
            finally:
                await request.close()  # an uploaded file's spool, if any

        return run

    @staticmethod
    async def _answer(
        handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
    ) -> Response:
        try:
            return await handler(request)
        except SignIn:
            target = request.url.path
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            if request.headers.get("accept", "").startswith("text/event-stream"):
                return Response(status_code=401)
            return see_other("/signin?" + urlencode({"next": target}))
        except CallscreenError as exc:
            problem = problems.problem_of(exc)
            headers = {}
            if isinstance(exc, RateLimited):
                headers["Retry-After"] = str(exc.retry_after)
            response = page(
                request,
                "error.html",
                None,
                status=problem.status,
                title=problem.title,
                detail=str(exc),
                back=request.headers.get("referer", "/"),
            )
            response.headers.update(headers)
            return response


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def signed_in(request: Request) -> Ctx:
    """The request's session (redirect to sign in without one); on a POST, its CSRF
    token checked (403 without it)."""
    backend = _backend(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise SignIn
    try:
        current = await backend.session(token)
    except Unauthenticated:
        raise SignIn from None
    form = None
    if request.method == "POST":
        sent = request.headers.get("x-csrf-token", "")
        if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf")
            sent = value if isinstance(value, str) else sent
        if not users.csrf_ok(current, sent):
            raise Forbidden("this form has no valid CSRF token: reload the page and try again")
    return Ctx(request, current, backend.as_user(current.user), form)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# -- sign-in ----------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request, next: str = "/") -> Response:
    pre = secrets.token_urlsafe(24)
    count = await _backend(request).user_count()
    response = page(request, "signin.html", pre=pre, next=_safe_next(next), no_users=count == 0)
    response.set_cookie(
        PRE_COOKIE, pre, httponly=True, samesite="strict", secure=_secure(request), path="/signin"
    )
    return response


def _safe_next(target: str) -> str:
    """Only a path of this site (never ``//host`` or a scheme)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    pre = request.cookies.get(PRE_COOKIE, "")
    sent = form.get("pre")
    if not pre or not isinstance(sent, str) or not hmac.compare_digest(pre, sent):
        raise Forbidden("the sign-in form expired: reload the page and try again")
    name, password = form.get("user"), form.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise InvalidInput("give a user name and a password")
    address = request.client.host if request.client else "?"
    target = form.get("next")
    target = _safe_next(target if isinstance(target, str) else "/")
    try:
        _session, token = await _backend(request).sign_in(name, password, address)
    except (Unauthenticated, RateLimited) as exc:
        status = 429 if isinstance(exc, RateLimited) else 401
        fresh = secrets.token_urlsafe(24)
        response = page(
            request, "signin.html", status=status, pre=fresh, next=target, error=str(exc)
        )
        response.set_cookie(
            PRE_COOKIE,
            fresh,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/signin",
        )
        return response
    redirect = see_other(target)
    redirect.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",  # a browser-session cookie: Redis ends the session after 12 h idle
    )
    redirect.delete_cookie(PRE_COOKIE, path="/signin")
    return redirect


@router.post("/signout")
async def signout(request: Request) -> Response:
    ctx = await signed_in(request)
    await ctx.backend.sign_out(ctx.session)
    response = see_other("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- lists ------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    await signed_in(request)
    return see_other("/lists")


@router.get("/lists")
async def lists_page(request: Request) -> Response:
    ctx = await signed_in(request)
    views = await ctx.backend.list_lists()
    done = request.query_params.get("done", "")
    return page(request, "lists.html", ctx, lists=views, done=done, options=_options())


def _options() -> dict[str, list[str]]:
    return {
        "actions": [a.value for a in Action],
        "directions": [d.value for d in Direction],
        "scopes": [s.value for s in Scope],
    }


@router.post("/lists")
async def create_list(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    view = await ctx.backend.create_list(
        ctx.field("name").strip(),
        Action(_choice(ctx.field("action", "block"), Action)),
        Direction(_choice(ctx.field("direction", "both"), Direction)),
        Scope(_choice(ctx.field("scope", "global"), Scope)),
        ctx.field("description"),
    )
    return see_other(f"/lists/{view.id}")


def _choice(value: str, enum: Any) -> str:
    allowed = [e.value for e in enum]
    if value not in allowed:
        raise InvalidInput(f"choose one of {', '.join(allowed)}")
    return value


@router.post("/lists/{list_id}/edit")
async def edit_list(request: Request, list_id: int) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    changes: dict[str, Any] = {
        "name": ctx.field("name").strip() or None,
        "action": Action(_choice(ctx.field("action"), Action)),
        "direction": Direction(_choice(ctx.field("direction"), Direction)),
        "scope": Scope(_choice(ctx.field("scope"), Scope)),
        "description": ctx.field("description"),
    }
    await ctx.backend.update_list(list_id, changes)
    return see_other(f"/lists/{list_id}?" + urlencode({"done": "list saved"}))


@router.post("/lists/{list_id}/delete")
async def delete_list(request: Request, list_id: int) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    view = await ctx.backend.show_list(list_id)
    if ctx.field("confirm").strip() != view.name:
        raise InvalidInput("type the list's name to confirm its deletion")
    result = await ctx.backend.delete_list(list_id)
    return see_other("/lists?" + urlencode({"done": f"list {result.list_name} deleted"}))


@router.get("/lists/{list_id}")
async def list_page(request: Request, list_id: int) -> Response:
    ctx = await signed_in(request)
    return await _list_page(ctx, list_id)


async def _list_page(
    ctx: Ctx,
    list_id: int,
    *,
    status: int = 200,
    add_text: str = "",
    add_errors: list[tuple[int, str, str]] | None = None,
    error: str = "",
) -> Response:
    params = ctx.request.query_params
    tab = params.get("tab", "review")
    if tab not in TABS:
        tab = "review"
    statuses, _title = TABS[tab]
    only = params.get("status", "")
    if only and only in {s.value for s in statuses}:
        statuses = frozenset({Status(only)})
    search = params.get("q", "").strip()[:40]
    size = _int(params.get("size"), 50)
    if size not in PAGE_SIZES:
        size = 50
    after = params.get("after", "")
    keep, filters = _entry_filter(params)
    view = await ctx.backend.show_list(list_id)
    entries = None
    next_after = ""
    try:
        if search:
            # a whole number is read directly; part of one is searched in the list's
            # number index, pages in number order (the count on demand); without a
            # search, pages come in storage order, read only as far as the page goes
            entries = await ctx.backend.exact_entry_page(list_id, search, statuses, size)
        if search and entries is None:
            entries, next_after = await ctx.backend.search_entries(
                list_id,
                search=search,
                limit=size,
                after=after,
                statuses=statuses,
                count=params.get("count") == "1",
            )
        elif not search:
            entries, next_after = await ctx.backend.browse_entries(
                list_id, statuses, size, after, keep
            )
    except InvalidInput as exc:
        error = error or str(exc)
    base = {"tab": tab, "q": search, "size": size, "status": only, **filters}
    return page(
        ctx.request,
        "list.html",
        ctx,
        status=status,
        lst=view,
        tab=tab,
        tabs={k: v[1] for k, v in TABS.items()},
        search=search,
        only=only,
        size=size,
        sizes=PAGE_SIZES,
        page=entries,
        after=after,
        next_url="?" + urlencode({**base, "after": next_after}) if next_after else "",
        count_url="?" + urlencode({**base, "after": after, "count": "1"}),
        first_url="?" + urlencode(base),
        filter_query=urlencode(base),
        add_text=add_text,
        add_errors=add_errors or [],
        error=error,
        done=params.get("done", ""),
        options=_options(),
        statuses=sorted(s.value for s in TABS[tab][0]),
        filters=filters,
        filtered=not keep.empty,
    )


def _day(raw: str, what: str) -> float | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidInput(f"{what}: a date as YYYY-MM-DD") from None


def _entry_filter(params: Any) -> tuple[browse.Filter, dict[str, str]]:
    """The list page's filters besides status and search: batch, source, added
    between two days (UTC, the second one included)."""
    raw = {k: params.get(k, "").strip()[:200] for k in ("batch", "source", "from", "to")}
    if raw["batch"] and not raw["batch"].isdigit():
        raise InvalidInput("batch: a batch number")
    to = _day(raw["to"], "added until")
    keep = browse.Filter(
        batch=int(raw["batch"]) if raw["batch"] else None,
        source=raw["source"],
        added_from=_day(raw["from"], "added from"),
        added_to=to + 86400 if to is not None else None,
    )
    return keep, {k: v for k, v in raw.items() if v}


@router.post("/lists/{list_id}/add")
async def add_entries(request: Request, list_id: int) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    text = ctx.field("numbers")
    lines = text.splitlines()
    if len(lines) > 10_000:
        raise InvalidInput("at most 10,000 lines at once: upload a file for more")
    bad = await ctx.backend.check_lines(lines)
    numbers = [line.strip() for line in lines if line.strip()]
    if bad or not numbers:
        error = "" if numbers else "type at least one number"
        return await _list_page(
            ctx, list_id, status=422, add_text=text, add_errors=bad, error=error
        )
    pending = ctx.field("status", "pending") == "pending"
    if not pending:
        ctx.need(KeyScope.ENTRIES_APPROVE)
    result = await ctx.backend.add_entries(
        list_id,
        numbers,
        reason=ctx.field("reason"),
        external_id="",
        expires=None,
        status=Status.PENDING if pending else Status.ACTIVE,
    )
    done = "; ".join(f"{n} {k}" for k, n in result.outcomes.items() if n)
    tab = "review" if pending else "blacklisted"
    return see_other(f"/lists/{list_id}?" + urlencode({"tab": tab, "done": done}))


OPS = {
    "approve": ("approve", False, KeyScope.ENTRIES_APPROVE),
    "approve-permanent": ("approve", True, KeyScope.ENTRIES_APPROVE_PERMANENT),
    "unapprove": ("unapprove", False, KeyScope.ENTRIES_APPROVE),
    "remove": ("remove", False, KeyScope.LISTS_WRITE),
    "restore": ("restore", False, KeyScope.LISTS_WRITE),
}


@router.post("/lists/{list_id}/change")
async def change_entries(request: Request, list_id: int) -> Response:
    ctx = await signed_in(request)
    name = ctx.field("op")
    if name not in OPS:
        raise InvalidInput(f"unknown action {name!r}")
    op, permanent, scope = OPS[name]
    ctx.need(scope)
    reason = ctx.field("reason").strip()
    if op == "remove" and not reason:
        raise InvalidInput("give a reason to remove entries")
    if permanent and ctx.field("confirm") != "yes":
        raise InvalidInput("a permanent approval must be confirmed: it cannot be undone")
    tab = ctx.field("tab", "review")
    if tab not in TABS:
        tab = "review"
    if ctx.field("all") == "1":
        search = ctx.field("q").strip()[:40]
        statuses = TABS[tab][0]
        only = ctx.field("status")
        if only and only in {s.value for s in statuses}:
            statuses = frozenset({Status(only)})
        result = await ctx.backend.change_matching(
            list_id, op, statuses=statuses, search=search, reason=reason, permanent=permanent
        )
    else:
        chosen = [v for v in ctx.form.getlist("entry") if isinstance(v, str)] if ctx.form else []
        if not chosen:
            raise InvalidInput("select at least one entry")
        result = await ctx.backend.change_entries(
            list_id, op, chosen, reason=reason, permanent=permanent
        )
    done = f"{name}: " + ("; ".join(f"{n} {k}" for k, n in result.outcomes.items() if n) or "none")
    return see_other(f"/lists/{list_id}?" + urlencode({"tab": tab, "done": done}))


@router.get("/lists/{list_id}/export.csv")
async def export(request: Request, list_id: int, tab: str = "") -> Response:
    ctx = await signed_in(request)
    statuses = TABS[tab][0] if tab in TABS else None
    view = await ctx.backend.show_list(list_id)
    body = await ctx.backend.export_csv(list_id, statuses)
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in view.name) or "list"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


# -- numbers ----------------------------------------------------------------------------


@router.get("/numbers")
async def number_search(request: Request, q: str = "") -> Response:
    await signed_in(request)
    q = q.strip()
    if not q:
        return see_other("/lists")
    return see_other("/numbers/" + quote(q, safe="+"))


@router.get("/numbers/{number}")
async def number_page(request: Request, number: str, campaign: str | None = None) -> Response:
    """What ``callscreen number`` shows (the number service, through the backend)."""
    ctx = await signed_in(request)
    campaign = campaign.strip()[:80] if campaign else None
    card = await ctx.backend.number_page(number, campaign=campaign or None)
    return page(request, "number.html", ctx, card=card)


# -- attempts ---------------------------------------------------------------------------


def _log_query(ctx: Ctx) -> tuple[LogQuery, dict[str, str]]:
    params = ctx.request.query_params
    raw = {
        k: params.get(k, "").strip()[:80] for k in ("number", "campaign", "outcome", "direction")
    }
    outcome = Outcome(raw["outcome"]) if raw["outcome"] in {o.value for o in Outcome} else None
    direction = (
        Direction(raw["direction"])
        if raw["direction"] in (Direction.INBOUND.value, Direction.OUTBOUND.value)
        else None
    )
    number = LogQuery.parse_number(raw["number"], ctx.backend.settings.default_region) or None
    query = LogQuery(
        campaign=raw["campaign"] or None, number=number, outcome=outcome, direction=direction
    )
    return query, raw


@router.get("/attempts")
async def attempts_page(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.CALLS_READ)
    query, raw = _log_query(ctx)
    records, after = await ctx.backend.recent_attempts(query, ATTEMPTS_SHOWN)
    records.reverse()
    return page(
        request,
        "attempts.html",
        ctx,
        records=records,
        after=after,
        filters=raw,
        outcomes=[o.value for o in Outcome],
        stream_query=urlencode({**raw, "after": after}),
    )


@router.get("/attempts/stream")
async def attempts_stream(request: Request) -> Response:
    """Server-sent events: one ``attempt`` event per new record matching the filters
    (JSON as ``callscreen log --json`` prints it). The stream ends within a second of
    the client leaving or the server shutting down."""
    ctx = await signed_in(request)
    ctx.need(KeyScope.CALLS_READ)
    query, _raw = _log_query(ctx)
    after = request.query_params.get("after", "$")
    if after != "$" and not all(part.isdigit() for part in after.split("-", 1)):
        raise InvalidInput("not a stream id")
    stop = threading.Event()
    server_exiting = _exit_flag(request)

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        follower = ctx.backend.follow(query, after, stop)
        watcher = asyncio.create_task(_watch(request, stop, server_exiting))
        try:
            async for group in follower:
                for rec in group:
                    yield f"event: attempt\nid: {rec.id}\ndata: {attempt_json(rec)}\n\n"
        finally:
            stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await follower.aclose()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _exit_flag(request: Request) -> Callable[[], bool]:
    """Whether the server is shutting down (uvicorn sets ``should_exit``)."""
    server = getattr(request.app.state, "server", None)
    return lambda: bool(server is not None and server.should_exit)


async def _watch(request: Request, stop: threading.Event, exiting: Callable[[], bool]) -> None:
    while not stop.is_set():
        if exiting() or await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(0.25)


# -- reports ----------------------------------------------------------------------------


def _report_args(request: Request) -> tuple[int, str | None]:
    days = min(max(_int(request.query_params.get("days"), 7), 1), 366)
    campaign = request.query_params.get("campaign", "").strip()[:200] or None
    return days, campaign


@router.get("/reports")
async def reports_page(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.CALLS_READ)
    days, campaign = _report_args(request)
    query = urlencode({"days": days, "campaign": campaign or ""})
    campaigns = await ctx.backend.campaigns()
    return page(
        request,
        "reports.html",
        ctx,
        days=days,
        campaign=campaign or "",
        query=query,
        campaigns=[c.name for c in campaigns],
    )


@router.get("/reports/view")
async def report_view(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.CALLS_READ)
    days, campaign = _report_args(request)
    report = await ctx.backend.console_report(days, campaign)
    return HTMLResponse(
        report_html(report),
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/reports/report.csv")
async def report_download(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.CALLS_READ)
    days, campaign = _report_args(request)
    report = await ctx.backend.console_report(days, campaign)
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="callscreen-report.csv"'},
    )


# -- campaigns --------------------------------------------------------------------------


@router.get("/campaigns")
async def campaigns_page(request: Request) -> Response:
    ctx = await signed_in(request)
    views = await ctx.backend.campaigns()
    lists = await ctx.backend.list_lists()
    return page(
        request,
        "campaigns.html",
        ctx,
        campaigns=views,
        lists=[v for v in lists if v.scope is Scope.CAMPAIGN],
        done=request.query_params.get("done", ""),
    )


@router.post("/campaigns")
async def assign(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    name = ctx.field("campaign").strip()
    chosen = [v for v in ctx.form.getlist("list") if isinstance(v, str)] if ctx.form else []
    view = await ctx.backend.assign(name, chosen)
    done = f"campaign {view.name}: {', '.join(view.lists) or 'no list'}"
    return see_other("/campaigns?" + urlencode({"done": done}))


# -- admin ------------------------------------------------------------------------------


@router.get("/admin")
async def admin_page(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.KEYS_ADMIN)
    return await _admin_page(ctx)


async def _admin_page(ctx: Ctx, *, new_key: str = "", status: int = 200) -> Response:
    before = ctx.request.query_params.get("before") or None
    found, keys, events = await asyncio.gather(
        ctx.backend.list_users(),
        ctx.backend.list_keys(),
        ctx.backend.history(None, limit=50, before=before),
    )
    return page(
        ctx.request,
        "admin.html",
        ctx,
        status=status,
        users=found,
        keys=keys,
        events=events,
        roles=[r.value for r in users.Role],
        scopes=[s.value for s in KeyScope],
        new_key=new_key,
        done=ctx.request.query_params.get("done", ""),
        older=events[-1].id if len(events) == 50 else "",
    )


@router.post("/admin/users")
async def admin_add_user(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.KEYS_ADMIN)
    user = await ctx.backend.add_user(
        ctx.field("name").strip(), users.parse_role(ctx.field("role")), ctx.field("password")
    )
    return see_other("/admin?" + urlencode({"done": f"user {user.name} created"}))


@router.post("/admin/users/{name}")
async def admin_change_user(request: Request, name: str) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.KEYS_ADMIN)
    action = ctx.field("action")
    if action in ("disable", "enable"):
        if name == ctx.user.name and action == "disable":
            raise InvalidInput("you cannot disable yourself")
        await ctx.backend.set_user_disabled(name, action == "disable")
    elif action == "role":
        await ctx.backend.set_user_role(name, users.parse_role(ctx.field("role")))
    elif action == "password":
        await ctx.backend.set_user_password(name, ctx.field("password"))
    else:
        raise InvalidInput(f"unknown action {action!r}")
    return see_other("/admin?" + urlencode({"done": f"user {name}: {action} done"}))


@router.post("/admin/keys")
async def admin_create_key(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.KEYS_ADMIN)
    scopes = [v for v in ctx.form.getlist("scope") if isinstance(v, str)] if ctx.form else []
    lists = [part.strip() for part in ctx.field("lists").split(",") if part.strip()]
    _key, secret = await ctx.backend.create_key(
        ctx.field("name").strip(), scopes, lists, ctx.field("expires").strip() or None
    )
    # shown once, on this answer only (never in a URL, never stored)
    return await _admin_page(ctx, new_key=secret, status=201)


@router.post("/admin/keys/{name}/revoke")
async def admin_revoke_key(request: Request, name: str) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.KEYS_ADMIN)
    await ctx.backend.revoke_key(name)
    return see_other("/admin?" + urlencode({"done": f"API key {name} revoked"}))


# -- uploads and tasks ------------------------------------------------------------------


@router.get("/upload")
async def upload_page(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    views = await ctx.backend.list_lists()
    chosen = _int(request.query_params.get("list"), 0)
    return page(
        request,
        "upload.html",
        ctx,
        lists=views,
        chosen=chosen,
        limit_mb=ctx.backend.settings.api_max_body_bytes // (1024 * 1024),
    )


@router.post("/upload")
async def upload(request: Request) -> Response:
    ctx = await signed_in(request)
    ctx.need(KeyScope.LISTS_WRITE)
    mode = ctx.field("mode", "pending")
    if mode == "approve":
        ctx.need(KeyScope.ENTRIES_APPROVE)
    if mode == "permanent":
        ctx.need(KeyScope.ENTRIES_APPROVE_PERMANENT)
        if ctx.field("confirm") != "yes":
            raise InvalidInput("a permanent import must be confirmed: it cannot be undone")
    upload_file = ctx.form.get("file") if ctx.form is not None else None
    if upload_file is None or isinstance(upload_file, str) or not upload_file.filename:
        raise InvalidInput("choose a CSV file")
    task = await ctx.backend.start_upload(
        _int(ctx.field("list"), 0),
        upload_file.filename,
        upload_file.file,
        mode=mode,
        replace=ctx.field("replace") == "1",
    )
    return see_other(f"/tasks/{task.id}")


@router.get("/tasks")
async def tasks_page(request: Request) -> Response:
    ctx = await signed_in(request)
    found = await ctx.backend.list_tasks()
    return page(request, "tasks.html", ctx, tasks=found)


def _task_id(task_id: str) -> str:
    if not task_id.replace("-", "").isalnum() or len(task_id) > 40:
        raise InvalidInput("not a task id")
    return task_id


@router.get("/tasks/{task_id}.json")
async def task_json(request: Request, task_id: str) -> Response:
    ctx = await signed_in(request)
    task = await ctx.backend.task(_task_id(task_id))
    return Response(
        json.dumps(task.to_json()),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/tasks/{task_id}/errors.csv")
async def task_errors(request: Request, task_id: str) -> Response:
    ctx = await signed_in(request)
    path = await ctx.backend.task_errors(_task_id(task_id))
    headers = {"Content-Disposition": f'attachment; filename="{task_id}-errors.csv"'}
    if path is None:
        return Response("", media_type="text/csv; charset=utf-8", headers=headers)
    return FileResponse(path, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str) -> Response:
    ctx = await signed_in(request)
    task = await ctx.backend.task(_task_id(task_id))
    return page(request, "task.html", ctx, task=task)
