"""Searching a list by the start of a number: read from the list's number index and
filtered in Redis (``search.lua``) call by call, pages in number order with a position
that stays right, the same entries as a plain filter over the whole list would keep.
The numbers a call reads and the small-list threshold are made small so that a few
hundred entries take every path a million would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callscreen.core.model import Action, EntryRecord, Status
from callscreen.core.numbers import EntryKey
from callscreen.services import browse, entries
from callscreen.services.entries import NUMBER_ORDER, Position, status_codes
from tests.support.blocking import SyncAdmin as Admin
from tests.support.clock import Clock
from tests.test_services import make_settings

Item = tuple[EntryKey, EntryRecord]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin(redis_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Admin]:
    monkeypatch.setattr(entries, "PAGE_SMALL_LIST", 0)  # every list takes the large path
    monkeypatch.setattr(entries, "SEARCH_CHUNK", 7)  # a page takes many script calls
    service = Admin(make_settings(redis_url), clock=clock)
    yield service
    service.close()


NUMBERS = [f"+336{n * 7919 % 10**8:08d}" for n in range(300)] + [
    f"+3361{n:07d}" for n in range(0, 10**7, 99_991)
]


def fill(admin: Admin, clock: Clock) -> None:
    admin.create_list("dnc", Action.BLOCK)
    admin.add("dnc", NUMBERS[::2])
    admin.add("dnc", NUMBERS[1::2], status=Status.PENDING)
    admin.add("dnc", ["+3361*", "+336*", "+44*", "+33612*"])
    admin.add("dnc", ["+33612345678", "+33612000001"], expires="1h")
    admin.add("dnc", ["+447911123456"])  # another country
    admin.remove("dnc", NUMBERS[:6], reason="x")
    clock.advance(7200)  # the two with an expiry are expired now


def everything(admin: Admin) -> list[Item]:
    info = admin.table.get_list("dnc")
    return admin.portal.collect(entries.scan_entries(admin.ctx.table, info))


def walk(
    admin: Admin, starting: str, statuses: frozenset[Status] | None, limit: int
) -> list[list[Item]]:
    info = admin.table.get_list("dnc")
    pages: list[list[Item]] = []
    after: Position | None = None
    while True:
        items, after = admin.run(
            entries.page_entries(
                admin.ctx.table,
                info,
                after=after,
                limit=limit,
                starting=starting,
                statuses=statuses,
                now=admin.ctx.clock(),
            )
        )
        pages.append(items)
        if after is None:
            return pages


@pytest.mark.parametrize(
    ("starting", "statuses"),
    [
        ("3361", None),
        ("336", frozenset({Status.PENDING})),
        ("33612", frozenset({Status.ACTIVE, Status.PERMANENT})),
        ("33612", frozenset({Status.EXPIRED})),
        ("336", frozenset({Status.DELETED})),
        ("44", None),
        ("91", None),
    ],
)
def test_a_search_keeps_what_a_filter_over_the_whole_list_keeps(
    admin: Admin, clock: Clock, starting: str, statuses: frozenset[Status] | None
) -> None:
    fill(admin, clock)
    now = admin.ctx.clock()
    expected = {
        (key.digits, key.is_prefix)
        for key, record in everything(admin)
        if key.digits.startswith(starting)
        and (statuses is None or record.effective_status(now) in statuses)
    }
    pages = walk(admin, starting, statuses, limit=7)
    found = [(key.digits, key.is_prefix) for page in pages for key, _record in page]
    assert len(found) == len(set(found)) and set(found) == expected
    assert all(len(page) == 7 for page in pages[:-1])  # full pages until the last
    for page in pages:
        for key, record in page:
            assert statuses is None or record.effective_status(now) in statuses, key
    if statuses is not None:  # the console's count agrees
        info = admin.table.get_list("dnc")
        counted = browse.count_matching(admin.ctx.table, info, starting, statuses, now)
        assert admin.run(counted) == len(expected)
    # the sorted listing (the CLI's entries --search) agrees
    listing = admin.list_entries("dnc", search="+" + starting, limit=500, statuses=statuses)
    assert listing.total == len(expected)
    assert {(v.entry.strip("+*"), v.entry.endswith("*")) for v in listing.entries} == expected


def test_search_pages_stay_right_while_entries_change(admin: Admin, clock: Clock) -> None:
    fill(admin, clock)
    info = admin.table.get_list("dnc")
    first, after = admin.run(
        entries.page_entries(admin.ctx.table, info, after=None, limit=40, starting="3361")
    )
    assert after is not None and len(first) == 40
    assert after == (NUMBER_ORDER, first[-1][0].digits)  # the last number read
    admin.add("dnc", ["+33619999999", "+33610000000"])  # anywhere, before or after
    admin.remove("dnc", [key.display for key, _ in first[-3:]], reason="x")
    later: list[Item] = []
    while after is not None:
        page, after = admin.run(
            entries.page_entries(admin.ctx.table, info, after=after, limit=40, starting="3361")
        )
        later += page
    seen = [key.digits for key, _ in first + later]
    assert len(seen) == len(set(seen))  # none twice
    old = {key.digits for key, _ in everything(admin) if key.digits.startswith("3361")}
    assert old - {"33619999999", "33610000000"} <= set(seen)  # none of the others missed


def test_one_call_reads_a_bounded_number_of_numbers(admin: Admin, clock: Clock) -> None:
    fill(admin, clock)
    info = admin.table.get_list("dnc")
    table = admin.ctx.table
    found = admin.run(entries.search_numbers(table, info, "9", limit=10))
    assert found.items == [] and found.done and found.read == 0  # nothing starts with 9
    found = admin.run(entries.search_numbers(table, info, "336", limit=3, budget=1000))
    # stopped early: 3 read from each index that holds numbers (pending, active, removed)
    assert len(found.items) == 3 and not found.done and found.read == 9
    assert found.last == found.items[-1][0].digits
    assert [k.digits for k, _ in found.items] == sorted(k.digits for k, _ in found.items)
    deleted = frozenset({Status.DELETED})  # 6 of the 400 numbers: their index alone
    found = admin.run(
        entries.search_numbers(table, info, "336", statuses=deleted, limit=50, budget=4)
    )
    assert found.read == 4 and not found.done and len(found.items) == 4  # the budget
    rest = admin.run(
        entries.search_numbers(
            table, info, "336", statuses=deleted, limit=50, budget=10_000, after=found.last
        )
    )
    assert rest.done and rest.read == 2 and len(found.items) + len(rest.items) == 6
    expired = frozenset({Status.EXPIRED})  # 2 of the active ones: their records are read
    found = admin.run(entries.search_numbers(table, info, "336", statuses=expired, limit=50))
    assert found.done and len(found.items) == 2 and found.read > 100


def test_a_page_reads_a_bounded_number_of_numbers(
    admin: Admin, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status that few of many matches have (expired: active entries past their
    expiry, in the active index): short pages, each reading at most SEARCH_PAGE_READ
    numbers, that together hold every match once, in number order."""
    fill(admin, clock)
    monkeypatch.setattr(entries, "SEARCH_PAGE_READ", 30)
    expired = frozenset({Status.EXPIRED})
    pages = walk(admin, "336", expired, limit=50)
    assert len(pages) > 5  # the 200 active numbers read 30 at a time
    found = [key.digits for page in pages for key, _record in page]
    now = admin.ctx.clock()
    expected = sorted(
        key.digits
        for key, record in everything(admin)
        if not key.is_prefix
        and key.digits.startswith("336")
        and record.effective_status(now) is Status.EXPIRED
    )
    assert found == expected and len(expected) == 2


def test_the_console_search_pages_and_counts(admin: Admin, clock: Clock) -> None:
    fill(admin, clock)
    info = admin.table.get_list("dnc")
    wanted = frozenset({Status.PENDING})
    count = admin.run(browse.count_matching(admin.ctx.table, info, "3361", wanted, clock()))
    seen: list[str] = []
    cursor: browse.Cursor | None = None
    while True:
        page = admin.run(browse.search(admin.ctx.table, info, "3361", wanted, 20, cursor))
        seen += [key.digits for key, _ in page.items]
        if page.next is None:
            break
        cursor = browse.Cursor.decode(page.next.encode())  # through the URL's form
    assert len(seen) == len(set(seen)) == count > 20


def test_status_codes() -> None:
    assert status_codes(None) == ""
    assert status_codes(frozenset({Status.ACTIVE, Status.EXPIRED})) == "ax"


def test_browse_walks_a_large_list_with_its_filters(admin: Admin, clock: Clock) -> None:
    fill(admin, clock)
    crm = [f"+3375{n:07d}" for n in range(0, 10**7, 333_331)]
    made = admin.add("dnc", crm, status=Status.PENDING, source="crm")
    info = admin.table.get_list("dnc")
    now = admin.ctx.clock()
    wanted = frozenset({Status.PENDING, Status.ACTIVE})

    def walk_browse(keep: browse.Filter) -> tuple[list[str], int | None]:
        seen: list[str] = []
        cursor: browse.Cursor | None = None
        while True:
            page = admin.run(browse.browse(admin.ctx.table, info, wanted, 7, cursor, now, keep))
            assert len(page.items) == 7 or page.next is None  # full pages until the last
            seen += [key.display for key, _ in page.items]
            if page.next is None:
                return seen, page.total
            cursor = browse.Cursor.decode(page.next.encode())

    every, total = walk_browse(browse.Filter())
    expected = {
        key.display for key, record in everything(admin) if record.effective_status(now) in wanted
    }
    assert len(every) == len(set(every)) == total and set(every) == expected
    assert every[:3] == ["+336*", "+3361*", "+33612*"]  # prefixes first, by digits
    by_source, unknown = walk_browse(browse.Filter(source="crm"))
    assert sorted(by_source) == sorted(crm) and unknown is None
    by_batch, _ = walk_browse(browse.Filter(batch=made.batch))
    assert sorted(by_batch) == sorted(crm)
    today = clock()
    assert walk_browse(browse.Filter(added_from=today + 86400))[0] == []
