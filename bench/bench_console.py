"""Console benchmark: how long each page of the web console takes to answer with a list
of 1,000,000 entries.

    python bench/bench_console.py                   # 1M entries (the target)
    python bench/bench_console.py --entries 100000  # smaller
    python bench/bench_console.py --upload 50000    # and a 50,000-row upload through the console

Starts its own redis-server (as the tests do) and a real ``callscreen api`` (uvicorn,
uvloop, httptools) on a free port, imports ``--entries`` numbers into one list (half
pending, half approved), signs a user in over HTTP, then times every page (median and
worst of ``--repeat`` requests, over a keep-alive connection) and prints a table.
With ``--upload N`` it also uploads an N-row CSV through the console's upload form and
times it from the POST to the task's ``done``.

The entries are ``+33610000000`` on: a search for ``+3361000`` matches 1 in 100, one
for ``+336123`` a single entry, one for ``+3361`` every entry (in the *Removed* tab:
none of them, so its page reads the most numbers a page may read and comes back empty
with a cursor). The CLI's ``entries --search`` lines are sorted and counted.

Then the searches side by side, at the service level (one process, no HTTP): *before*
is the search as it was before the number index (``bench/search_buckets.lua``: the
list's buckets filtered in Redis, 256 a call, until the page is full or the list is
done), *after* the search over the number index; each row checks that both find the
same entries.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.support.apiserver import ApiServer  # noqa: E402
from tests.support.blocking import SyncAdmin as Admin  # noqa: E402
from tests.support.polling import until  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Direction, Status  # noqa: E402
from callscreen.schema.scripts import SEARCH, Script, prelude  # noqa: E402
from callscreen.services import browse, entries, store, users  # noqa: E402
from callscreen.services.context import Actor  # noqa: E402
from callscreen.services.importer import ImportOptions  # noqa: E402

PASSWORD = "benchmark password"


def load(settings: Settings, work: Path, entries: int) -> int:
    with Admin(settings) as admin:
        view = admin.create_list("big", Action.BLOCK, Direction.BOTH, by="bench")
        half = entries // 2
        for part, (start, count, status) in enumerate(
            ((0, half, Status.PENDING), (half, entries - half, Status.ACTIVE))
        ):
            path = work / f"part{part}.csv"
            with path.open("w") as out:
                out.write("number,reason\n")
                for n in range(start, start + count):
                    out.write(f"+3361{n:07d},bench\n")
            started = time.perf_counter()
            admin.import_file("big", str(path), ImportOptions(approve=status), by="bench")
            print(f"imported {count:,} {status.value} in {time.perf_counter() - started:.1f} s")
        admin.add("big", ["+33612345678"], reason="called twice", by="bench")
        return view.id


def sign_in(api: ApiServer) -> httpx.Client:
    with Admin(api.settings) as admin:
        ctx = admin.ctx.acting_as(Actor("bench", "bench"))
        admin.run(users.add(ctx, "bench", users.Role.ADMIN, PASSWORD))
    client = httpx.Client(base_url=api.url, timeout=120)
    pre = re.search(r'name="pre" value="([^"]+)"', client.get("/signin").text)
    assert pre
    r = client.post("/signin", data={"pre": pre.group(1), "user": "bench", "password": PASSWORD})
    assert r.status_code == 303, r.text
    return client


def time_page(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = r.status_code
    return statistics.median(times), max(times), status


def later_page(client: httpx.Client, list_id: int, pages: int = 20) -> str:
    """The URL of the ``pages``-th page of the review tab, followed link by link."""
    url = f"/lists/{list_id}?tab=review"
    for _ in range(pages):
        found = re.search(r'href="(\?[^"]*after=[^"]+)" id="next-page"', client.get(url).text)
        assert found, "no next page"
        url = f"/lists/{list_id}" + found.group(1).replace("&amp;", "&")
    return url


def upload(client: httpx.Client, list_id: int, rows: int, work: Path) -> float:
    path = work / "upload.csv"
    with path.open("w") as out:
        for n in range(rows):
            out.write(f"+3362{n:07d}\n")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/upload").text)
    assert csrf
    started = time.perf_counter()
    with path.open("rb") as handle:
        r = client.post(
            "/upload",
            data={"csrf": csrf.group(1), "list": str(list_id), "mode": "pending"},
            files={"file": ("upload.csv", handle, "text/csv")},
        )
    assert r.status_code == 303, r.text
    url = r.headers["location"] + ".json"
    until(
        lambda: client.get(url).json()["state"] not in ("queued", "running"),
        "the upload's end",
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    task = client.get(url).json()
    assert task["state"] == "done", task
    assert task["summary"]["added"] == rows, task
    return elapsed


def search_call_ms(admin: Admin) -> float:
    """How long one call of the search script holds Redis: ``entries.SEARCH_CHUNK``
    numbers of the active entries' index read, and each one's record, none kept (the
    expired entries: there are none), timed from here (a loopback round trip
    included)."""
    info = admin.table.get_list("big")
    times = []
    for _ in range(10):
        args = [admin.table.keys.base, info.id, admin.table.buckets, "a", "3361", ""]
        args += [entries.SEARCH_CHUNK, 50, "x", time.time()]
        started = time.perf_counter()
        reply = store.run_script_sync(admin.table.r, SEARCH, [admin.table.keys.meta], args)
        times.append((time.perf_counter() - started) * 1000)
        assert int(reply[2]) == entries.SEARCH_CHUNK, reply[:4]
    return statistics.median(times)


#: the search as it was before the number index: the list's buckets, filtered in Redis
BEFORE = Script(prelude() + (Path(__file__).parent / "search_buckets.lua").read_text())
BEFORE_CHUNK = 256  # buckets a call, as before


def number_ranges(digits: str) -> list[tuple[int, int]]:
    """The exact numbers that start with ``digits``, as inclusive ranges (one a length,
    up to 15 digits): what the bucket scan compared numbers with."""
    head = int(digits)
    return [
        (head * 10 ** (n - len(digits)), (head + 1) * 10 ** (n - len(digits)) - 1)
        for n in range(len(digits), 16)
    ]


def search_before(
    admin: Admin, starting: str, statuses: frozenset[Status] | None, limit: int
) -> list[str]:
    """A page of a search as it was read before the number index (storage order)."""
    info = admin.table.get_list("big")
    buckets = admin.table.buckets
    ranges = [str(n) for pair in number_ranges(starting) for n in pair]
    codes = entries.status_codes(statuses)
    found: list[str] = []
    bucket, after = 0, -1
    while bucket < buckets and len(found) < limit:
        args = [admin.table.keys.base, info.id, buckets, bucket, after]
        args += [BEFORE_CHUNK, limit - len(found), codes, time.time(), *ranges]
        reply = store.run_script_sync(admin.table.r, BEFORE, [admin.table.keys.meta], args)
        for i in range(2, len(reply), 3):
            found.append(str(int(reply[i + 1]) * buckets + int(reply[i])))
        bucket, after = int(reply[0]), int(reply[1])
    return found


def search_after(
    admin: Admin, starting: str, statuses: frozenset[Status] | None, limit: int
) -> list[str]:
    """A page of a search over the number index (number order), as the console reads it."""
    info = admin.table.get_list("big")
    items, _next = admin.run(
        entries.page_entries(
            admin.ctx.table, info, after=None, limit=limit, starting=starting, statuses=statuses
        )
    )
    return [key.digits for key, _record in items]


def count_before(admin: Admin, starting: str, statuses: frozenset[Status] | None) -> int:
    return len(search_before(admin, starting, statuses, 10**9))


def count_after(admin: Admin, starting: str, statuses: frozenset[Status] | None) -> int:
    """The console's count of a search's matches."""
    info = admin.table.get_list("big")
    every = frozenset(Status) if statuses is None else statuses
    return int(
        admin.run(browse.count_matching(admin.ctx.table, info, starting, every, time.time()))
    )


def side_by_side(admin: Admin, repeat: int) -> None:
    """The searches before and after the number index, timed in turn, same results."""
    pending = frozenset({Status.PENDING})
    shown = frozenset({Status.ACTIVE, Status.PERMANENT})
    rows: list[tuple[str, str, frozenset[Status] | None, bool]] = [
        ("rare +336123, any status", "336123", None, False),
        ("rare +336123, blacklisted", "336123", shown, False),
        ("rare +336123, for review", "336123", pending, False),
        ("common +3361000, any status", "3361000", None, False),
        ("common +3361000, for review", "3361000", pending, False),
        ("common +3361, blacklisted", "3361", shown, False),
        ("count all +3361000", "3361000", None, True),
        ("count all +336123", "336123", None, True),
    ]
    print("\nsearch, first page of 50 (service level)  before ms   after ms   matches")
    for name, starting, statuses, counted in rows:
        took: dict[str, list[float]] = {"before": [], "after": []}
        results: dict[str, Any] = {}
        for _ in range(repeat):
            for side in ("before", "after"):
                started = time.perf_counter()
                if counted:
                    run = count_before if side == "before" else count_after
                    results[side] = run(admin, starting, statuses)
                else:
                    read = search_before if side == "before" else search_after
                    results[side] = read(admin, starting, statuses, 50)
                took[side].append((time.perf_counter() - started) * 1000)
        before, after = results["before"], results["after"]
        if counted:
            assert before == after, (name, before, after)
            matches = before
        else:  # the same page when every match fits in it, else pages of matches
            assert len(before) == len(after), (name, len(before), len(after))
            assert all(n.startswith(starting) for n in before + after)
            if len(before) < 50:
                assert sorted(before) == after, name
            matches = len(after)
        print(
            f"{name:40} {statistics.median(took['before']):10.0f} "
            f"{statistics.median(took['after']):10.1f} {matches:>9,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--upload", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = RedisProcess(work / "redis")
        server.start()
        try:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                redis_url=server.url,
                default_region="FR",
                spool_dir="",
                log_level="WARNING",
                api_data_dir=str(work / "api"),
            )
            list_id = load(settings, work, args.entries)
            api = ApiServer(settings)
            api.start()
            try:
                client = sign_in(api)
                pages = [
                    ("lists", "/lists"),
                    ("list: for review, 50 rows", f"/lists/{list_id}?tab=review"),
                    ("list: for review, 200 rows", f"/lists/{list_id}?tab=review&size=200"),
                    ("list: a later page", later_page(client, list_id)),
                    ("list: blacklisted", f"/lists/{list_id}?tab=blacklisted"),
                    ("list: search a number", f"/lists/{list_id}?tab=review&q=%2B33610000123"),
                    ("list: search a part, common", f"/lists/{list_id}?q=%2B3361000"),
                    ("list: search a part, 200 rows", f"/lists/{list_id}?q=%2B3361000&size=200"),
                    ("list: search a part, rare", f"/lists/{list_id}?q=%2B336123"),
                    (
                        "list: search a rare part, blacklisted",
                        f"/lists/{list_id}?tab=blacklisted&q=%2B336123",
                    ),
                    ("list: search, none removed", f"/lists/{list_id}?tab=removed&q=%2B3361"),
                    ("list: search a part, counted", f"/lists/{list_id}?q=%2B3361000&count=1"),
                    ("list: search a rare part, counted", f"/lists/{list_id}?q=%2B336123&count=1"),
                    ("number page", "/numbers/%2B33612345678"),
                    ("attempts", "/attempts"),
                    ("reports (page)", "/reports"),
                    ("reports (the report, 7 days)", "/reports/view?days=7"),
                    ("campaigns", "/campaigns"),
                    ("tasks", "/tasks"),
                    ("admin", "/admin"),
                    ("sign-in page", "/signin"),
                ]
                print(f"\n{args.entries:,} entries in one list; {args.repeat} requests each")
                print(f"{'page':38} {'median ms':>10} {'worst ms':>10}")
                for name, path in pages:
                    median, worst, status = time_page(client, path, args.repeat)
                    assert status == 200, (path, status)
                    assert 'class="error"' not in client.get(path).text, path
                    print(f"{name:38} {median:10.0f} {worst:10.0f}")
                with Admin(settings) as admin:  # the CLI's entries --search: sorted, counted
                    for part in ("+3361000", "+336123"):
                        started = time.perf_counter()
                        found = admin.list_entries("big", search=part, limit=50)
                        took = (time.perf_counter() - started) * 1000
                        name = f"entries --search {part}"
                        print(f"{name:38} {took:10.0f} ({found.total:,} match)")
                    print(f"{'search.lua, one call':38} {search_call_ms(admin):10.1f} ms median")
                    side_by_side(admin, args.repeat)
                if args.upload:
                    seconds = upload(client, list_id, args.upload, work)
                    print(
                        f"\nupload of {args.upload:,} rows through the console: {seconds:.1f} s "
                        f"to done ({args.upload / seconds:,.0f} rows/s)"
                    )
                client.close()
            finally:
                api.stop()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
