"""The web console over real HTTP (a real uvicorn, a real redis-server): users and
roles, sessions, CSRF, sign-in limits, the pages and what they change. The browser
flows are in tests/test_console_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import CliRunner

from callscreen.cli import app as cli_app
from callscreen.cli.exits import EXIT_CONFLICT
from callscreen.core.errors import RateLimited, Unauthenticated
from callscreen.core.model import Action, Direction, Status
from callscreen.schema.keys import Keys
from callscreen.services import users
from callscreen.services.context import Actor
from tests.support.apiserver import ApiServer
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until

PASSWORD = "correct horse battery"


def make_user(api: ApiServer, name: str, role: str = "admin") -> None:
    with Admin(api.settings) as admin:
        ctx = admin.ctx.acting_as(Actor("test", "test"))
        admin.run(users.add(ctx, name, users.Role(role), PASSWORD))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(api: ApiServer, name: str, password: str = PASSWORD) -> httpx.Client:
    with httpx.Client(base_url=api.url, timeout=30) as first:
        page = first.get("/signin")
        pre = re.search(r'name="pre" value="([^"]+)"', page.text)
        assert pre
        r = first.post("/signin", data={"pre": pre.group(1), "user": name, "password": password})
        assert r.status_code == 303, r.text
        # a client not yet opened, so that a test can use it in a with block
        return httpx.Client(base_url=api.url, timeout=30, cookies=first.cookies)


@pytest.fixture
def admin_client(api: ApiServer) -> Iterator[httpx.Client]:
    make_user(api, "alice", "admin")
    with sign_in(api, "alice") as client:
        yield client


def page_csrf(client: httpx.Client, path: str = "/lists") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


# -- users and sessions ------------------------------------------------------------------


def test_users_cli_add_passwd_disable(api: ApiServer) -> None:
    runner = CliRunner()
    env = {"CALLSCREEN_REDIS_URL": api.settings.redis_url}
    r = runner.invoke(
        cli_app,
        ["users", "add", "bob", "--role", "editor", "--password-stdin", "--by", "ops"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli_app,
        ["users", "add", "bob", "--role", "viewer", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert r.exit_code == EXIT_CONFLICT and "exists" in r.output
    r = runner.invoke(
        cli_app,
        ["users", "add", "carol", "--role", "boss", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert r.exit_code != 0 and "unknown role" in r.output
    r = runner.invoke(cli_app, ["users", "ls", "--json"], env=env)
    assert '"role": "editor"' in r.output and '"created_by": "ops"' in r.output
    stored = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
    record = stored.hgetall(Keys().user("bob"))
    assert record["hash"].startswith("$argon2id$") and PASSWORD not in str(record)

    with sign_in(api, "bob") as client:
        assert client.get("/lists").status_code == 200
        r = runner.invoke(
            cli_app,
            ["users", "passwd", "bob", "--password-stdin"],
            input="another password\n",
            env=env,
        )
        assert r.exit_code == 0, r.output
        # a new password ends the sessions
        assert client.get("/lists").status_code == 303
    with sign_in(api, "bob", "another password") as client:
        r = runner.invoke(cli_app, ["users", "disable", "bob"], env=env)
        assert r.exit_code == 0
        assert client.get("/lists").headers["location"].startswith("/signin")
    with httpx.Client(base_url=api.url) as bad:
        pre = re.search(r'name="pre" value="([^"]+)"', bad.get("/signin").text)
        assert pre
        r = bad.post(
            "/signin", data={"pre": pre.group(1), "user": "bob", "password": "another password"}
        )
        assert r.status_code == 401
    stored.close()
    with Admin(api.settings) as admin:
        events = [e.detail for e in admin.history(None)]
    assert "user bob: role editor" in events and "user bob" in events


def test_sign_in_page_says_how_to_make_the_first_user(api: ApiServer) -> None:
    r = httpx.get(api.url + "/signin")
    assert "callscreen users add NAME --role admin" in r.text
    r = httpx.get(api.url + "/lists", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Flists"


def test_session_cookie_flags_and_idle_expiry(api: ApiServer) -> None:
    make_user(api, "alice")
    client = httpx.Client(base_url=api.url)
    request_close = client.close
    pre = re.search(r'name="pre" value="([^"]+)"', client.get("/signin").text)
    assert pre
    r = client.post(
        "/signin",
        data={
            "pre": pre.group(1),
            "user": "alice",
            "password": PASSWORD,
            "next": "//evil.example/",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "cs_session" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age" not in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is set
    stored = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
    (key,) = stored.keys(Keys().session("*"))
    assert 43000 < stored.ttl(key) <= users.IDLE_S
    stored.expire(key, 100)
    assert client.get("/lists").status_code == 200
    assert stored.ttl(key) > 43000  # each request renews it
    stored.delete(key)
    assert client.get("/lists").status_code == 303
    request_close()
    stored.close()


def test_api_never_accepts_the_session_cookie(admin_client: httpx.Client) -> None:
    r = admin_client.get("/api/v1/lists")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


def test_sign_in_failures_are_limited_per_user_and_per_address(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # smaller limits, the same rules: each failure costs an argon2 verification
    monkeypatch.setattr(users, "USER_FAILURES", 3)
    monkeypatch.setattr(users, "ADDRESS_FAILURES", 5)
    make_user(api, "alice")
    admin = Admin(api.settings)
    table = admin.table

    def sign_in_as(name: str, password: str, address: str) -> None:
        admin.run(users.sign_in(admin.ctx, name, password, address))

    for _ in range(users.USER_FAILURES):
        with pytest.raises(Unauthenticated):
            sign_in_as("alice", "wrong", "10.0.0.1")
    # the right password from anywhere is refused for the rest of the short window
    with pytest.raises(RateLimited) as caught:
        sign_in_as("alice", PASSWORD, "10.0.0.2")
    assert caught.value.retry_after <= users.USER_WINDOW_S
    # ... and no longer once the window is over (a stranger cannot lock alice out for long)
    table.r.delete(table.keys.signin_user("alice"))
    sign_in_as("alice", PASSWORD, "10.0.0.2")
    # an address that keeps failing is stopped whatever the names it tries
    for n in range(users.ADDRESS_FAILURES):
        with pytest.raises(Unauthenticated):
            sign_in_as(f"guess{n}", "wrong", "10.0.0.9")
    with pytest.raises(RateLimited):
        sign_in_as("alice", PASSWORD, "10.0.0.9")
    sign_in_as("alice", PASSWORD, "10.0.0.3")
    admin.close()


# -- CSRF and roles ------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused(admin_client: httpx.Client) -> None:
    r = admin_client.post("/lists", data={"name": "dnc", "action": "block"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = admin_client.post("/lists", data={"name": "dnc", "action": "block", "csrf": "forged"})
    assert r.status_code == 403
    r = admin_client.post(
        "/lists", data={"name": "dnc", "action": "block", "csrf": page_csrf(admin_client)}
    )
    assert r.status_code == 303
    # a sign-in form without its double-submit cookie is refused too
    r = httpx.post(
        str(admin_client.base_url) + "/signin",
        data={"pre": "x", "user": "alice", "password": PASSWORD},
    )
    assert r.status_code == 403


def test_a_viewer_sees_no_change_buttons_and_gets_403(api: ApiServer) -> None:
    make_user(api, "vic", "viewer")
    with Admin(api.settings) as admin:
        view = admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
        admin.add("dnc", ["+33612345678"], status=Status.PENDING)
    with sign_in(api, "vic") as client:
        page = client.get(f"/lists/{view.id}")
        assert page.status_code == 200 and "+33612345678" in page.text
        assert 'value="approve"' not in page.text and 'id="add-form"' not in page.text
        csrf = csrf_of(page.text)
        r = client.post(
            f"/lists/{view.id}/change",
            data={"csrf": csrf, "op": "approve", "entry": "+33612345678"},
        )
        assert r.status_code == 403 and "entries:approve" in r.text
        assert client.get("/admin").status_code == 403
        r = client.post("/lists", data={"csrf": csrf, "name": "x", "action": "block"})
        assert r.status_code == 403


# -- pages ---------------------------------------------------------------------------------


def test_review_queue_flow(api: ApiServer, admin_client: httpx.Client) -> None:
    csrf = page_csrf(admin_client)
    r = admin_client.post(
        "/lists",
        data={
            "csrf": csrf,
            "name": "dnc",
            "action": "block",
            "direction": "both",
            "scope": "global",
        },
    )
    assert r.status_code == 303
    list_url = r.headers["location"]
    # per-line errors, in place, nothing added
    r = admin_client.post(
        list_url + "/add",
        data={"csrf": csrf, "numbers": "+33612345678\nnot a number\n\n+33612345679\n12"},
    )
    assert r.status_code == 422
    assert "line 2 (not a number)" in r.text and "line 5 (12)" in r.text
    assert "not a number" in r.text.split('id="numbers"')[1]
    r = admin_client.post(
        list_url + "/add",
        data={
            "csrf": csrf,
            "numbers": "+33612345678\n06 12 34 56 79\n+33612345680",
            "reason": "asked",
        },
    )
    assert r.status_code == 303
    page = admin_client.get(list_url + "?tab=review").text
    assert page.count('name="entry"') == 3 and '<span id="total">3</span>' in page
    # all matching a filter
    r = admin_client.post(
        list_url + "/change",
        data={"csrf": csrf, "op": "approve", "all": "1", "tab": "review", "q": "+3361234567"},
    )
    assert r.status_code == 303, r.text
    page = admin_client.get(list_url + "?tab=blacklisted").text
    assert page.count('name="entry"') == 2
    # permanent without the confirmation is refused; with it, deletion is refused
    r = admin_client.post(
        list_url + "/change",
        data={
            "csrf": csrf,
            "op": "approve-permanent",
            "entry": "+33612345678",
            "tab": "blacklisted",
        },
    )
    assert r.status_code == 422 and "cannot be undone" in r.text
    r = admin_client.post(
        list_url + "/change",
        data={
            "csrf": csrf,
            "op": "approve-permanent",
            "entry": "+33612345678",
            "confirm": "yes",
            "tab": "blacklisted",
        },
    )
    assert r.status_code == 303
    r = admin_client.post(
        list_url + "/change",
        data={"csrf": csrf, "op": "remove", "entry": "+33612345678", "reason": "x"},
    )
    assert r.status_code == 409
    r = admin_client.post(list_url + "/delete", data={"csrf": csrf, "confirm": "dnc"})
    assert r.status_code == 409 and "permanent" in r.text
    # remove needs a reason; restore brings it back
    r = admin_client.post(
        list_url + "/change", data={"csrf": csrf, "op": "remove", "entry": "+33612345679"}
    )
    assert r.status_code == 422
    r = admin_client.post(
        list_url + "/change",
        data={"csrf": csrf, "op": "remove", "entry": "+33612345679", "reason": "wrong number"},
    )
    assert r.status_code == 303
    page = admin_client.get(list_url + "?tab=removed").text
    assert "+33612345679" in page and "wrong number" in page
    r = admin_client.post(
        list_url + "/change",
        data={"csrf": csrf, "op": "restore", "entry": "+33612345679", "tab": "removed"},
    )
    assert r.status_code == 303
    csv = admin_client.get(list_url + "/export.csv?tab=blacklisted")
    assert csv.status_code == 200 and "+33612345679" in csv.text and "asked" in csv.text
    with Admin(api.settings) as admin:
        history = admin.history("dnc", limit=20)
    assert {e.by for e in history} == {"user:alice"}


def test_cursor_pages(api: ApiServer, admin_client: httpx.Client) -> None:
    with Admin(api.settings) as admin:
        view = admin.create_list("big", Action.BLOCK, Direction.BOTH)
        numbers = [f"+336{n * 7919:08d}" for n in range(120)]
        admin.add("big", numbers, status=Status.PENDING)
        admin.add("big", ["+3361*", "+33699999999"])  # active: not on the review tab
    seen: list[str] = []
    url = f"/lists/{view.id}?tab=review&size=50"
    pages = 0
    while url:
        page = admin_client.get(url).text
        assert '<span id="total">120</span>' in page
        seen += re.findall(r'name="entry" value="([^"]+)"', page)
        following = re.search(r'href="(\?[^"]*after=[^"]+)" id="next-page"', page)
        url = f"/lists/{view.id}" + following.group(1).replace("&amp;", "&") if following else ""
        pages += 1
        if pages == 1:
            # a page stays right while entries are added before it
            with Admin(api.settings) as admin:
                admin.add("big", ["+33698765432", "+33699999998"])
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120 and set(seen) == set(numbers)
    # a search for part of a number: pages in number order, walked to the end, and
    # the count of all matching on demand
    url, found = f"/lists/{view.id}?tab=review&size=50&q=%2B336", []
    while url:
        page = admin_client.get(url).text
        assert 'id="total"' not in page and 'id="count-matching"' in page
        found += re.findall(r'name="entry" value="([^"]+)"', page)
        following = re.search(r'href="(\?[^"]*after=[^"]+)" id="next-page"', page)
        url = f"/lists/{view.id}" + following.group(1).replace("&amp;", "&") if following else ""
    assert len(found) == len(set(found)) == 120 and set(found) == set(numbers)
    assert found == sorted(found)
    counted = admin_client.get(f"/lists/{view.id}?tab=review&q=%2B336&count=1").text
    assert '<span id="total">120</span>' in counted and 'id="all-matching"' in counted
    few = admin_client.get(f"/lists/{view.id}?tab=review&q=%2B3360000").text  # one page
    assert '<span id="total">' in few


def test_number_page_and_search(api: ApiServer, admin_client: httpx.Client) -> None:
    with Admin(api.settings) as admin:
        admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
        admin.add("dnc", ["+33612345678"], reason="asked twice", by="user:alice")
        admin.create_list("fr", Action.LABEL, Direction.INBOUND)
        admin.add("fr", ["+336*"], reason="mobiles")
    r = admin_client.get("/numbers", params={"q": "06 12 34 56 78"}, follow_redirects=True)
    assert r.status_code == 200
    assert "+33612345678" in r.text and "asked twice" in r.text and "mobiles" in r.text
    inbound = r.text.split('id="inbound"')[1].split("</dd>")[0]
    assert "BLOCKED" in inbound and "dnc" in inbound
    r = admin_client.get("/numbers/garbage")
    assert r.status_code == 422


def test_campaigns_admin_and_reports_pages(api: ApiServer, admin_client: httpx.Client) -> None:
    with Admin(api.settings) as admin:
        admin.create_list("c1", Action.BLOCK, Direction.BOTH, campaign_only=True)
    csrf = page_csrf(admin_client, "/campaigns")
    r = admin_client.post("/campaigns", data={"csrf": csrf, "campaign": "spring", "list": "c1"})
    assert r.status_code == 303
    assert "spring" in admin_client.get("/campaigns").text
    r = admin_client.post(
        "/admin/keys", data={"csrf": csrf, "name": "crm", "scope": ["lists:read", "check"]}
    )
    assert r.status_code == 201
    key = re.search(r'<code id="new-key">(cs_[a-z0-9]+)</code>', r.text)
    assert key
    assert (
        httpx.get(
            api.url + "/api/v1/lists", headers={"Authorization": f"Bearer {key.group(1)}"}
        ).status_code
        == 200
    )
    assert key.group(1) not in admin_client.get("/admin").text  # shown once
    r = admin_client.post(
        "/admin/users", data={"csrf": csrf, "name": "vic", "role": "viewer", "password": PASSWORD}
    )
    assert r.status_code == 303
    history = admin_client.get("/admin").text
    assert "user-add" in history and "key-create" in history and "user:alice" in history
    assert admin_client.get("/reports").status_code == 200
    view = admin_client.get("/reports/view?days=3")
    assert view.status_code == 200 and "<svg" in view.text
    csv = admin_client.get("/reports/report.csv?days=3")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")


def test_attempts_stream_ends_on_shutdown(redis_url: str) -> None:
    from callscreen.core.config import Settings

    settings = Settings(_env_file=None, redis_url=redis_url, log_level="WARNING")  # type: ignore[call-arg]
    server = ApiServer(settings)
    server.start()
    make_user(server, "alice")
    with (
        sign_in(server, "alice") as client,
        client.stream(
            "GET", "/attempts/stream", headers={"accept": "text/event-stream"}, timeout=30
        ) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        started = time.monotonic()
        server.server.should_exit = True
        for _line in lines:
            pass
    server.thread.join(10)
    assert not server.thread.is_alive()
    assert time.monotonic() - started < 5


def test_upload_runs_as_a_task_with_progress_and_errors(
    api: ApiServer, admin_client: httpx.Client
) -> None:
    with Admin(api.settings) as admin:
        view = admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
    rows = ["number,reason"] + [f"+336{n:08d},from the file" for n in range(300)]
    rows[10] = "garbage,bad row"
    body = ("\n".join(rows) + "\n").encode()
    csrf = page_csrf(admin_client, f"/upload?list={view.id}")
    r = admin_client.post(
        "/upload",
        data={"csrf": csrf, "list": str(view.id), "mode": "pending"},
        files={"file": ("numbers.csv", body, "text/csv")},
    )
    assert r.status_code == 303, r.text
    task_url = r.headers["location"]
    until(
        lambda: admin_client.get(task_url + ".json").json()["state"] not in ("queued", "running"),
        "the import's end",
    )
    task = admin_client.get(task_url + ".json").json()
    assert task["state"] == "done" and task["percent"] == 100, task
    assert task["summary"]["added"] == 299 and task["summary"]["errors"] == 1
    assert task["by"] == "user:alice" and task["file"] == "numbers.csv"
    page = admin_client.get(task_url).text
    assert "line 11 (garbage,bad row)" in page
    errors = admin_client.get(task_url + "/errors.csv").text
    assert "11" in errors and "garbage" in errors
    tasks_page = admin_client.get("/tasks").text
    assert "numbers.csv" in tasks_page and "done" in tasks_page
    listing = admin_client.get(f"/lists/{view.id}?tab=review").text
    assert '<span id="total">299</span>' in listing
    # a running task whose process died reads as interrupted
    stored = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
    task_id = task_url.rsplit("/", 1)[1]
    stored.hset(Keys().import_job(task_id), mapping={"state": "running", "heartbeat": "0"})
    assert admin_client.get(task_url + ".json").json()["state"] == "interrupted"
    stored.close()


def test_filters_by_source_batch_and_day_added(api: ApiServer, admin_client: httpx.Client) -> None:
    with Admin(api.settings) as admin:
        view = admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
        first = admin.add("dnc", ["+33612345678", "+33612345679"], status=Status.PENDING)
        admin.add("dnc", ["+33612345680"], status=Status.PENDING, source="crm")
    base = f"/lists/{view.id}?tab=review"

    def shown(query: str) -> set[str]:
        page = admin_client.get(base + query)
        assert page.status_code == 200, page.text
        return set(re.findall(r'name="entry" value="([^"]+)"', page.text))

    assert shown("") == {"+33612345678", "+33612345679", "+33612345680"}
    assert shown("&source=crm") == {"+33612345680"}
    assert shown(f"&batch={first.batch}") == {"+33612345678", "+33612345679"}
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert len(shown(f"&from={today}&to={today}")) == 3
    assert shown("&to=2001-01-01") == set()
    page = admin_client.get(base + "&source=crm").text
    assert 'id="all-matching"' not in page and "shown on this page (filtered)" in page
    bad = admin_client.get(base + "&from=yesterday")
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text


def test_uploads_are_the_apis_import_jobs(api: ApiServer, admin_client: httpx.Client) -> None:
    """One import mechanism: the console's upload is an API import job (readable at
    /api/v1/imports/JOB), and the task log lists the API's jobs beside the console's."""
    with Admin(api.settings) as admin:
        view = admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
    csrf = page_csrf(admin_client, f"/upload?list={view.id}")
    r = admin_client.post(
        "/upload",
        data={"csrf": csrf, "list": str(view.id), "mode": "pending"},
        files={"file": ("console.csv", b"+33612345678\n", "text/csv")},
    )
    assert r.status_code == 303, r.text
    job = r.headers["location"].rsplit("/", 1)[1]
    with api.client(api.make_key("crm")) as c:
        until(lambda: c.get(f"/imports/{job}").json()["done"], "the console's import")
        state = c.get(f"/imports/{job}").json()
        assert state["state"] == "done" and state["created_by"] == "user:alice", state
        r = c.post(
            f"/lists/{view.id}/imports",
            content="+33612345679\n",
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 202, r.text
        api_job = r.json()["job"]
        until(lambda: c.get(f"/imports/{api_job}").json()["done"], "the API's import")
    tasks_page = admin_client.get("/tasks").text
    assert f"/tasks/{job}" in tasks_page and f"/tasks/{api_job}" in tasks_page
    assert "console.csv" in tasks_page and "key:crm" in tasks_page
    # the console's import is recorded as its user via the console
    with Admin(api.settings) as admin:
        events = admin.history("dnc", limit=10)
    assert {(e.by, e.via) for e in events if e.op == "import"} == {
        ("user:alice", "console"),
        ("key:crm", "api"),
    }


def test_four_eyes_rule_holds_through_the_console(redis_url: str, tmp_path: Path) -> None:
    """With CALLSCREEN_FOUR_EYES=true the console's permanent approval is the entry
    service's: refused (409) for the user who added the entry, done for another."""
    from callscreen.core.config import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        redis_url=redis_url,
        default_region="FR",
        spool_dir="",
        log_level="WARNING",
        four_eyes=True,
        api_data_dir=str(tmp_path / "api"),
    )
    server = ApiServer(settings)
    server.start()
    try:
        make_user(server, "ann", "approver")
        make_user(server, "bea", "approver")
        with Admin(settings) as admin:
            view = admin.create_list("fe", Action.BLOCK, Direction.BOTH)
        list_url = f"/lists/{view.id}"
        with sign_in(server, "ann") as ann:
            csrf = page_csrf(ann, list_url)
            r = ann.post(list_url + "/add", data={"csrf": csrf, "numbers": "+33612345678"})
            assert r.status_code == 303, r.text
            permanent = {
                "csrf": csrf,
                "op": "approve-permanent",
                "entry": "+33612345678",
                "confirm": "yes",
                "tab": "review",
            }
            r = ann.post(list_url + "/change", data=permanent)
            assert r.status_code == 409 and "four-eyes" in r.text
        with Admin(settings) as admin:
            entry = admin.show_entry("fe", "+33612345678")
            assert entry.status is not Status.PERMANENT and entry.created_by == "user:ann"
        with sign_in(server, "bea") as bea:
            permanent["csrf"] = page_csrf(bea, list_url)
            r = bea.post(list_url + "/change", data=permanent)
            assert r.status_code == 303, r.text
        with Admin(settings) as admin:
            assert admin.show_entry("fe", "+33612345678").status is Status.PERMANENT
    finally:
        server.stop()
