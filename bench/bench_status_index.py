"""The status indexes (``{cs}:st:L:p`` pending, ``{cs}:st:L:d`` removed): their bytes per
indexed entry, and the time of a page of pending entries read from the index against
the same page found by walking the list's buckets (what ``GET /lists/{id}/entries
?status=pending`` and the console's "For review" tab did before).

    python bench/bench_status_index.py                     # 1,000,000 entries
    python bench/bench_status_index.py --entries 200000 --pending 0.01

Starts its own redis-server. One list: the active entries imported with ``--approve``,
then the pending ones imported pending, then a share of the active ones removed (the
writers keep the indexes as they go). Prints the index's ``MEMORY USAGE`` divided by
its members, and page times (p50, p99, max over consecutive pages of 50, walking from
the start) both ways. Figures, no pass/fail: the box is shared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench.bench_import import _mobile as mobile  # noqa: E402
from bench.services import with_services  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Status  # noqa: E402
from callscreen.services import entries, importer  # noqa: E402
from callscreen.services.bulk import Bulk  # noqa: E402
from callscreen.services.facade import Services  # noqa: E402

REGION = "FR"
LIST = "dnc"


def import_numbers(table: Bulk, work: Path, numbers: list[str], status: Status) -> float:
    path = work / f"{status.value}.csv"
    path.write_text("\n".join(numbers) + "\n")
    options = importer.ImportOptions(approve=status, reason="bench", by="bench")
    started = time.perf_counter()
    importer.import_file(table, LIST, str(path), options)
    return time.perf_counter() - started


def index_bytes(client: Any, list_id: int, code: str) -> tuple[int, int]:
    key = f"{{cs}}:st:{list_id}:{code}"
    return int(client.zcard(key)), int(client.memory_usage(key, samples=0) or 0)


async def page_times(services: Services, pages: int, indexed: bool) -> tuple[list[float], int]:
    table = services.ctx.table
    info = await table.get_list(LIST)
    now = table.clock()

    def keep(_key: Any, record: Any) -> bool:
        return bool(record.effective_status(now) is Status.PENDING)

    times: list[float] = []
    shown = 0
    after = None
    for _ in range(pages):
        started = time.perf_counter()
        items, after = await entries.page_entries(
            table,
            info,
            after=after,
            limit=50,
            keep=keep,
            stored_status="p" if indexed else None,
        )
        times.append((time.perf_counter() - started) * 1000)
        shown += len(items)
        if after is None:
            break
    return times, shown


def report(label: str, times: list[float], shown: int) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label:<34}{len(times):>6}{shown:>8}{statistics.median(ordered):>9.2f}"
        f"{p99:>9.2f}{ordered[-1]:>9.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--pending", type=float, default=0.001, help="share of pending entries")
    parser.add_argument("--removed", type=float, default=0.01, help="share removed")
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    n = args.entries
    n_pending = max(1, int(n * args.pending))
    numbers = [mobile(i) for i in range(n)]
    active, pending = numbers[n_pending:], numbers[:n_pending]
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        work = Path(tmp)
        server = RedisProcess(work / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, default_region=REGION)
        table = Bulk(settings)
        try:
            version = client.info("server")["redis_version"]
            print(f"{n:,} entries, {n_pending:,} pending; Redis {version}")
            info = with_services(settings, lambda s: s.lists.create_list(LIST, Action.BLOCK))
            took = import_numbers(table, work, active, Status.ACTIVE)
            print(f"import of {len(active):,} active entries: {took:.1f} s")
            took = import_numbers(table, work, pending, Status.PENDING)
            print(f"import of {len(pending):,} pending entries: {took:.1f} s")
            removed = active[:: max(1, int(1 / args.removed))] if args.removed else []
            started = time.perf_counter()
            for start in range(0, len(removed), 10_000):
                part = removed[start : start + 10_000]
                with_services(
                    settings, lambda s, part=part: s.entries.remove(LIST, part, reason="x")
                )
            print(f"remove of {len(removed):,} entries: {time.perf_counter() - started:.1f} s")
            for code, label in (("p", "pending"), ("d", "removed")):
                members, used = index_bytes(client, info.id, code)
                each = used / max(members, 1)
                print(f"{label} index: {members:,} members, {used:,} B, {each:.1f} B each")
            head = f"{'pages of 50 pending entries':<34}{'pages':>6}{'shown':>8}"
            print(head + f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
            for label, indexed, pages in (
                ("from the pending index", True, args.pages),
                ("walking the list's buckets", False, min(args.pages, 20)),
            ):
                times, shown = with_services(
                    settings, lambda s, i=indexed, p=pages: page_times(s, p, i)
                )
                report(label, times, shown)
        finally:
            table.close()
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
