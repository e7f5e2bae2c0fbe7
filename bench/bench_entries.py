"""Entry records through a list's life: Redis bytes per entry before and after bulk
transitions, each of which adds one short item (a code and a batch id) to every entry's
trail and writes one batch record, never a reason per entry.

    python bench/bench_entries.py                    # 200,000 entries
    python bench/bench_entries.py --entries 1000000

Starts its own redis-server. Two lists of the same numbers, in one run:

- ``approved at import``: imported with ``--approve`` (records ``a;B``: what every
  approved entry cost before entries kept their transitions, since an approval then only
  changed the status letter);
- ``pending, then bulk``: imported pending (``p;B;;;~;``: never enforced yet), then
  ``approve --all-pending`` (``a;B;;;!aA;``), ``approve --permanent`` of every entry
  (``P;B;;;!aAPC;``), a bulk ``remove`` and ``restore`` of a tenth of them.

For each stage: the bytes of the list's entry hashes (``MEMORY USAGE`` of each, exact,
divided by the entries; the shared batch records, one per change, are not in it), the
mean record length, and (``index B``) the bytes per entry of the list's number indexes
(``{cs}:nd:L:S`` and their chunks: what a search by the start of a number reads), apart
from the entries' bytes. Bucket hashes stay listpacks while
every record is under ``hash-max-listpack-value`` (64 bytes): the stage column
``over 64 B`` counts the records past it (each turns its bucket into a hashtable).
Apart: the bytes of the holders index (``{cs}:n:*``, which lists hold each number: one
field per number, shared by the lists) per number, after the first list and at the end.
"""

from __future__ import annotations

import argparse
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
from callscreen.services import importer  # noqa: E402
from callscreen.services.bulk import Bulk  # noqa: E402

REGION = "FR"


def records(client: Any, list_id: int) -> tuple[list[bytes], int]:
    """The list's records, and the bytes of its entry hashes (MEMORY USAGE, exact)."""
    out: list[bytes] = []
    keys = list(client.scan_iter(match=f"{{cs}}:[ep]:{list_id}*", count=10_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hvals(key)
        pipe.memory_usage(key, samples=0)
    replies = pipe.execute()
    for values in replies[0::2]:
        out.extend(values)
    return out, sum(int(n or 0) for n in replies[1::2])


def memory_of(client: Any, pattern: str) -> int:
    """The bytes (MEMORY USAGE) of every key matching ``pattern``."""
    keys = list(client.scan_iter(match=pattern, count=10_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(int(n or 0) for n in pipe.execute())


def stage(client: Any, label: str, list_id: int, n: int, seconds: float) -> None:
    values, used = records(client, list_id)
    mean = sum(len(v) for v in values) / max(len(values), 1)
    over = sum(1 for v in values if len(v) > 64)
    index = memory_of(client, f"{{cs}}:n[dx]:{list_id}:*") / n
    print(
        f"{label:<36}{seconds:>7.1f}{used / n:>10.1f}{mean:>10.1f}{over:>11}{index:>10.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    args = parser.parse_args()
    n = args.entries
    numbers = [mobile(i) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        work = Path(tmp)
        path = work / "numbers.csv"
        path.write_text("\n".join(numbers) + "\n")
        server = RedisProcess(work / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, default_region=REGION)
        table = Bulk(settings)
        try:
            print(f"{n:,} entries; Redis {client.info('server')['redis_version']}")
            head = f"{'stage':<36}{'s':>7}{'B/entry':>10}{'record B':>10}{'over 64 B':>11}"
            print(head + f"{'index B':>10}")
            for name, approve in (("approved at import", True), ("pending, then bulk", False)):
                info = with_services(
                    settings, lambda s, name=name: s.lists.create_list(name, Action.BLOCK)
                )
                options = importer.ImportOptions(
                    approve=Status.ACTIVE if approve else Status.PENDING,
                    reason="national do-not-call registry",
                    by="bench",
                )
                started = time.perf_counter()
                importer.import_file(table, name, str(path), options)
                label = f"{name}: import"
                stage(client, label, info.id, n, time.perf_counter() - started)
                if approve:
                    holders = memory_of(client, "{cs}:n:*") / n
                    print(
                        f"  the holders index after this list: {holders:.1f} B per number",
                        flush=True,
                    )
                    continue
                steps: list[tuple[str, Any]] = [
                    (
                        "approve --all-pending",
                        lambda s, name=name: s.entries.approve(name, all_pending=True),
                    ),
                    (
                        "approve --permanent (every entry)",
                        lambda s, name=name: s.entries.approve(name, numbers, permanent=True),
                    ),
                ]
                for label, work_fn in steps:
                    started = time.perf_counter()
                    with_services(settings, work_fn)
                    stage(client, f"  {label}", info.id, n, time.perf_counter() - started)
            tenth = numbers[: n // 10]
            info = with_services(
                settings, lambda s: s.lists.create_list("removed, restored", Action.BLOCK)
            )
            options = importer.ImportOptions(approve=Status.ACTIVE, reason="crm", by="bench")
            importer.import_file(table, "removed, restored", str(path), options)
            started = time.perf_counter()
            with_services(
                settings,
                lambda s: s.entries.remove("removed, restored", tenth, reason="asked"),
            )
            with_services(settings, lambda s: s.entries.restore("removed, restored", tenth))
            label = "active: a tenth removed, restored"
            stage(client, label, info.id, n, time.perf_counter() - started)
            print(
                f"the holders index, each number in these 3 lists: "
                f"{memory_of(client, '{cs}:n:*') / n:.1f} B per number"
            )
        finally:
            table.close()
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
