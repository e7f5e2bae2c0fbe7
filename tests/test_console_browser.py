"""The web console in a real browser: Debian's chromium driven by Playwright, against a
real ``callscreen api`` (uvicorn), a real redis-server and the real gateway
(``callscreen serve`` in a process of its own, called over FastAGI).

Screenshots of each page at 1280 and 390 px wide are written to the test's temporary
directory. Skipped on a developer machine without chromium or Playwright; never
under CI (``CI=true``), where a missing browser fails the tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callscreen.core.model import Action, Direction, Status
from callscreen.services import users
from callscreen.services.context import Actor
from tests.support.agiclient import FakeAsterisk
from tests.support.apiserver import ApiServer
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until
from tests.support.redisproc import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

IN_CI = bool(os.environ.get("CI"))
pytestmark = [
    pytest.mark.skipif(
        (CHROMIUM is None or sync_playwright is None) and not IN_CI,
        reason="chromium or playwright is not installed",
    ),
    pytest.mark.timeout(180),
]

PASSWORD = "correct horse battery"
WIDTHS = {"wide": 1280, "narrow": 390}
SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror=__xss=2>'
DIALOGS: dict[int, list[str]] = {}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--headless",
            ],
        )
        yield browser
        browser.close()


def make_user(api: ApiServer, name: str, role: str) -> None:
    with Admin(api.settings) as admin:
        ctx = admin.ctx.acting_as(Actor("test", "test"))
        admin.run(users.add(ctx, name, users.Role(role), PASSWORD))


def sign_in(browser: Browser, api: ApiServer, name: str, width: int = 1280) -> Page:
    context = browser.new_context(base_url=api.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen = DIALOGS.setdefault(id(page), [])

    def accept(dialog: Any) -> None:  # recorded, then accepted (a confirmation asked for)
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("/signin")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/lists$"))
    return page


def shoot(page: Page, shots: Path, name: str) -> None:
    """A screenshot of the page at both widths (the page is left at 1280)."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(shots / f"{name}-{label}.png"), full_page=True)
        # nothing sticks out sideways: the page scrolls vertically only (tables scroll
        # in their own box)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
              .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
              .filter(e => !e.closest('.scroll') || e.classList.contains('scroll'))
              .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""
        )
        assert overflow <= 1, f"{name} is {overflow}px too wide at {width}px: {wide}"
    page.set_viewport_size({"width": 1280, "height": 900})


class Gateway:
    """``callscreen serve`` in a process of its own, on free ports."""

    def __init__(self, tmp_path: Path, redis_url: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "serve.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        env = {
            **clean,
            "CALLSCREEN_REDIS_URL": redis_url,
            "CALLSCREEN_LISTEN_HOST": "127.0.0.1",
            "CALLSCREEN_LISTEN_PORT": str(self.port),
            "CALLSCREEN_METRICS_PORT": str(free_port()),
            "CALLSCREEN_DEFAULT_REGION": "FR",
            "CALLSCREEN_SHUTDOWN_GRACE_S": "1",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callscreen", "serve"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        until(
            lambda: "callscreen listening" in self.log.read_text(errors="replace"),
            "the gateway listening",
            timeout=30,
        )

    def call(self, number: str, callerid_name: str = "Alice") -> dict[str, str]:
        """One inbound FastAGI call (in a thread: Playwright's sync API owns this one)."""

        async def one() -> dict[str, str]:
            fake = FakeAsterisk("127.0.0.1", self.port)
            result = await fake.call(
                args=("inbound", number), callerid=number, calleridname=callerid_name
            )
            return result.variables

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, one()).result(30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()


def no_injection(page: Page) -> None:
    assert page.evaluate("window.__xss") is None
    assert not any("xss" in m for m in DIALOGS.get(id(page), []))
    assert page.locator("img").count() == 0


def test_review_upload_live_attempts_and_evidence(
    browser: Browser, api: ApiServer, redis_url: str, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"  # pytest keeps the last runs' temporary directories
    shots.mkdir()
    make_user(api, "alice", "admin")
    gateway = Gateway(tmp_path, redis_url)
    try:
        page = sign_in(browser, api, "alice")
        # create a list
        form = page.locator("#new-list")
        form.get_by_label("Name").fill("dnc")
        form.get_by_label("Action").select_option("block")
        form.get_by_role("button", name="Create list").click()
        expect(page.locator("#list-name")).to_have_text("dnc")
        list_url = page.url.split("?")[0]

        # upload 5,000 rows, 3 of them bad; the progress bar reaches 100 %
        rows = ["number,reason"] + [f"+336{n:08d},asked to stop" for n in range(5000)]
        for line in (101, 2002, 4003):
            rows[line - 1] = f"not-a-number-{line},bad"
        csv_path = tmp_path / "numbers.csv"
        csv_path.write_text("\n".join(rows) + "\n")
        page.get_by_role("link", name="Upload CSV").click()
        page.get_by_label("CSV file").set_input_files(str(csv_path))
        page.get_by_label("for review (pending)").check()
        page.get_by_role("button", name="Upload").click()
        expect(page.locator("#state")).to_have_text("done", timeout=60_000)
        expect(page.locator("#progress")).to_have_attribute("value", "100")
        expect(page.locator("#error-rows li")).to_have_count(3)
        expect(page.locator("#error-rows")).to_contain_text("line 101 (not-a-number-101,bad)")
        expect(page.locator("#n-added")).to_have_text("4997")
        shoot(page, shots, "task")
        page.goto("/tasks")
        expect(page.locator("#tasks")).to_contain_text("numbers.csv")
        shoot(page, shots, "tasks")

        # approve all pending
        page.goto(list_url + "?tab=review")
        expect(page.locator("#total")).to_have_text("4997")
        shoot(page, shots, "list")
        page.get_by_label("all 4997 matching this filter").check()
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.locator(".done")).to_contain_text("4997 approved")
        expect(page.locator("#total")).to_have_text("0")

        # a call to one of them is BLOCKED and appears on the Attempts page, live
        page.goto("/attempts")
        expect(page.locator("#live")).to_contain_text("Live")
        # the stream starts after the newest record the page was rendered with: a call
        # made before the browser's EventSource connects is still delivered
        variables = gateway.call("+33600000007", callerid_name=SCRIPT + IMG)
        assert variables["CALLSCREEN_RESULT"] == "BLOCKED"
        row = page.locator("#attempts tbody tr", has_text="+33600000007").first
        expect(row).to_contain_text("BLOCKED", timeout=20_000)
        expect(row).to_contain_text(SCRIPT + IMG)  # the caller name, as text
        no_injection(page)
        shoot(page, shots, "attempts")
        page.reload()  # and it stays there after a reload, escaped in the HTML too
        expect(page.locator("#attempts")).to_contain_text(SCRIPT + IMG)
        no_injection(page)

        # approve one permanently: the confirmation says it cannot be undone, with the count
        page.goto(list_url + "?tab=blacklisted&q=%2B33600000007")
        page.get_by_label("Select +33600000007").check()
        messages = DIALOGS[id(page)]
        assert messages == []
        page.get_by_role("button", name="Approve permanently").click()
        expect(page.locator(".done")).to_contain_text("1 approved")
        assert any("Approve 1 entry permanently" in m and "cannot be undone" in m for m in messages)
        page.goto(list_url + "?tab=blacklisted&status=permanent")
        expect(page.locator("#total")).to_have_text("1")
        # ... and deleting the list is refused
        page.locator("summary", has_text="Edit or delete").click()
        page.get_by_label("Type the list's name to delete it").fill("dnc")
        page.get_by_role("button", name="Delete list").click()
        expect(page.locator("#problem")).to_contain_text("permanent")

        # remove with a reason, then restore
        page.goto(list_url + "?tab=blacklisted&q=%2B33600000008")
        page.get_by_label("Select +33600000008").check()
        page.get_by_role("button", name="Remove").click()  # no reason: stopped in place
        expect(page).to_have_url(re.compile(r"tab=blacklisted"))
        page.locator("#remove-reason").fill("wrong number " + SCRIPT)
        page.get_by_role("button", name="Remove").click()
        expect(page.locator(".done")).to_contain_text("1 removed")
        page.goto(list_url + "?tab=removed")
        expect(page.locator("#entries")).to_contain_text("wrong number " + SCRIPT)
        no_injection(page)
        page.get_by_label("Select +33600000008").check()
        page.get_by_role("button", name="Restore").click()
        expect(page.locator(".done")).to_contain_text("1 restored")

        # search a number from the box on every page and see its page
        page.get_by_label("Find a number").fill("06 00 00 00 07")
        page.get_by_label("Find a number").press("Enter")
        expect(page.locator("#number")).to_have_text("+33600000007")
        expect(page.locator("#inbound")).to_contain_text("BLOCKED")
        expect(page.locator(".entry")).to_contain_text("permanent")
        expect(page.locator("#number-attempts")).to_contain_text("BLOCKED")
        no_injection(page)
        shoot(page, shots, "number")

        for name, path in (
            ("lists", "/lists"),
            ("upload", "/upload"),
            ("reports", "/reports"),
            ("campaigns", "/campaigns"),
            ("admin", "/admin"),
        ):
            page.goto(path)
            shoot(page, shots, name)
        page.context.close()
        signin = browser.new_page(base_url=api.url)
        signin.goto("/signin")
        shoot(signin, shots, "signin")
        signin.close()
        assert len(list(shots.glob("*.png"))) == 2 * 11
    finally:
        gateway.stop()


def test_a_viewer_sees_no_approve_buttons_and_posts_are_refused(
    browser: Browser, api: ApiServer
) -> None:
    make_user(api, "vic", "viewer")
    with Admin(api.settings) as admin:
        view = admin.create_list("dnc", Action.BLOCK, Direction.BOTH)
        admin.add("dnc", ["+33612345678"], status=Status.PENDING)
    page = sign_in(browser, api, "vic")
    page.goto(f"/lists/{view.id}")
    expect(page.locator("#entries")).to_contain_text("+33612345678")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove")).to_have_count(0)
    expect(page.locator("#add-form")).to_have_count(0)
    # posting anyway, with the session's CSRF token: 403
    status = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('input[name="csrf"]').value;
            const body = new URLSearchParams({csrf, op: "approve", entry: "+33612345678"});
            const r = await fetch(`/lists/${id}/change`, {method: "POST", body});
            return r.status;
        }""",
        view.id,
    )
    assert status == 403
    # a post without the CSRF token is refused whoever sends it
    status = page.evaluate(
        """async () => {
            const body = new URLSearchParams({name: "x", action: "block"});
            return (await fetch("/lists", {method: "POST", body})).status;
        }"""
    )
    assert status == 403
    page.context.close()


def test_outside_values_are_escaped(browser: Browser, api: ApiServer) -> None:
    make_user(api, "alice", "admin")
    page = sign_in(browser, api, "alice")
    hostile = SCRIPT + IMG
    # a list name and description
    form = page.locator("#new-list")
    form.get_by_label("Name").fill(hostile)
    form.get_by_label("Description").fill(hostile)
    form.get_by_role("button", name="Create list").click()
    expect(page.locator("#list-name")).to_have_text(hostile)
    no_injection(page)
    # numbers (refused per line, echoed as text) and reasons
    page.get_by_label("Numbers or prefixes (+33*), one per line").fill(hostile + "\n+33612345678")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-errors")).to_contain_text(hostile)
    no_injection(page)
    page.get_by_label("Numbers or prefixes (+33*), one per line").fill("+33612345678")
    page.locator("#add-reason").fill(hostile)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#entries")).to_contain_text(hostile)
    no_injection(page)
    page.goto("/lists")
    expect(page.locator("table")).to_contain_text(hostile)
    no_injection(page)
    # campaign names: refused by the service, echoed in filters as values
    page.goto("/attempts?campaign=" + hostile.replace("#", "%23"))
    expect(page.get_by_label("Campaign")).to_have_value(hostile[:80])
    no_injection(page)
    page.goto("/campaigns")
    page.get_by_label("Campaign", exact=True).fill(hostile)
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("#problem")).to_contain_text("campaign name")
    no_injection(page)
    page.goto("/numbers/" + "%3Cscript%3E")
    no_injection(page)
    page.context.close()
