"""The console's number page in a real browser (Debian's chromium, Playwright), against
a real ``callscreen api`` and a real Redis: found from the search box of another page,
it shows what ``callscreen number`` shows; every outside value is escaped."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.model import Action, Direction, Result, Status
from callscreen.gateway.attemptlog import CallLog
from callscreen.schema.attempts import LogSettings
from tests.support.apiserver import ApiServer
from tests.support.blocking import SyncAdmin as Admin
from tests.test_console_browser import (
    IMG,
    SCRIPT,
    Browser,
    browser,  # noqa: F401 - the module-scoped browser fixture
    expect,
    make_user,
    no_injection,
    pytestmark,  # noqa: F401 - skipped where the other browser tests are
    shoot,
    sign_in,
)

NUM = "+33612345678"
HOSTILE = SCRIPT + IMG


async def log_calls(url: str) -> None:
    log = CallLog(LogSettings(flush_interval_s=0.01, node="t"), LeanRedis.from_url(url))
    log.start()
    allowed = Decision(Result.ALLOWED, NUM)
    log.record(ScreenRequest(NUM, Direction.INBOUND, "", "a1", HOSTILE), allowed, 0)
    assert await log.flush()
    blocked = Decision(Result.BLOCKED, NUM, HOSTILE, NUM, HOSTILE)
    log.record(ScreenRequest(NUM, Direction.OUTBOUND, "spring", "b1", HOSTILE), blocked, 0)
    await log.stop()
    await log.client.close()


def test_number_page_in_the_browser(
    browser: Browser,  # noqa: F811
    api: ApiServer,
    redis_url: str,
    tmp_path: Path,
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    with Admin(api.settings) as admin:
        admin.create_list(HOSTILE, Action.BLOCK, Direction.BOTH)
        admin.add(HOSTILE, [NUM], reason=HOSTILE, by="user:alice")
        admin.create_list("spring-dnc", Action.BLOCK, Direction.OUTBOUND, campaign_only=True)
        admin.assign("spring", ["spring-dnc"])
        admin.add("spring-dnc", ["+336123*"], reason="spring range")
        admin.create_list("vip", Action.ALLOW, Direction.BOTH)
        admin.add("vip", [NUM], reason="customer", status=Status.PENDING)
        admin.create_list("old", Action.BLOCK, Direction.BOTH)
        admin.add("old", [NUM], reason="old campaign")
        admin.delete_list("old", reason=HOSTILE)
    # Playwright's sync API runs an event loop in this thread: the log writes from another
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, log_calls(redis_url)).result()
    make_user(api, "alice", "viewer")
    page = sign_in(browser, api, "alice")

    page.get_by_label("Find a number").fill("06 12 34 56 78")
    page.get_by_label("Find a number").press("Enter")
    expect(page.locator("#number")).to_have_text(NUM)
    expect(page.locator("#inbound")).to_contain_text("BLOCKED")
    expect(page.locator("#inbound")).to_contain_text(HOSTILE)  # the list, as text
    expect(page.locator("#decisions")).to_contain_text("campaign spring")
    holding = page.locator(".list-holding")
    expect(holding).to_have_count(3)
    expect(holding.filter(has_text="vip")).to_contain_text("pending")
    expect(holding.filter(has_text="vip")).to_contain_text("not enforced")
    expect(holding.filter(has_text="spring-dnc")).to_contain_text("+336123*")
    expect(page.locator(".history").first).to_contain_text("by user:alice")
    expect(page.locator(".deleted-list")).to_contain_text("old")
    expect(page.locator(".deleted-list")).to_contain_text(HOSTILE)
    expect(page.locator("#first-contact")).not_to_contain_text("never")
    expect(page.locator("#totals")).to_contain_text("BLOCKED 1")
    expect(page.locator("#number-attempts tbody tr")).to_have_count(2)
    no_injection(page)
    shoot(page, shots, "number-page")

    # one campaign: its attempts only
    page.get_by_label("Campaign").fill("spring")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#number-attempts tbody tr")).to_have_count(1)
    expect(page.locator("#number-attempts")).to_contain_text("spring")
    no_injection(page)
    # a number nobody holds, and no number at all
    page.goto("/numbers/%2B33699999999")
    expect(page.locator("main")).to_contain_text("No list holds this number")
    page.goto("/numbers/" + "%3Cscript%3E")
    no_injection(page)
    page.context.close()
