"""Import benchmark: rows/s, peak memory (flat in the file size), Redis bytes per entry.

    python bench/bench_import.py            # 1M E.164 rows, 1M mixed rows, 100k own reasons
    python bench/bench_import.py --big      # also 5M E.164 rows: peak memory 1M vs 5M
    python bench/bench_import.py --workers 0 --rows 200000   # parse in-process, smaller

Generates its files in a temporary directory, starts its own redis-server (as the
tests do), and runs each import in a fresh child process so that its peak RSS
(``VmHWM`` of the importer and of its parse workers) is its own. Redis memory is
``INFO used_memory`` before and after each import, the import's temporary keys gone.

Files:

- ``e164``: one column, no header, distinct valid French mobiles ``+336…``;
- ``mixed``: header ``number``; E.164, national with spaces and dashes, ``+33 …``, some
  invalid (about 3 %) and some duplicated (about 5 %), read with region FR;
- ``reasons``: header ``number,reason``, every row its own reason (bytes per entry then
  include a batch record each).

Each file but ``reasons`` is imported twice; the second import must change nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench.services import with_services  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402
from callscreen.core.model import Action, Status  # noqa: E402
from callscreen.services import importer  # noqa: E402
from callscreen.services.bulk import Bulk  # noqa: E402

REGION = "FR"


# -- files ---------------------------------------------------------------------------


_MOBILE_BLOCKS = [f"{p:02d}" for p in range(90) if p != 39]  # +336PP… that phonenumbers accepts


def _mobile(n: int) -> str:
    """The n-th of 89M distinct valid French mobiles (+336 and 8 digits), scrambled."""
    k = (n * 7919 + 12345) % (len(_MOBILE_BLOCKS) * 1_000_000)
    return f"+336{_MOBILE_BLOCKS[k // 1_000_000]}{k % 1_000_000:06d}"


def write_lines(path: Path, lines: Any, header: str | None = None) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        if header is not None:
            out.write(header + "\r\n")
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 100_000:
                out.write("\r\n".join(batch) + "\r\n")
                batch = []
        if batch:
            out.write("\r\n".join(batch) + "\r\n")


def gen_e164(path: Path, rows: int, offset: int = 0) -> None:
    write_lines(path, (_mobile(offset + i) for i in range(rows)))


def _national(e164: str, style: int) -> str:
    digits = "0" + e164[3:]  # +336… -> 06…
    pairs = [digits[i : i + 2] for i in range(0, 10, 2)]
    if style == 0:
        return " ".join(pairs)
    if style == 1:
        return "-".join(pairs)
    if style == 2:
        return "+33 " + digits[1] + " " + " ".join(pairs[1:])
    return ".".join(pairs)


def gen_mixed(path: Path, rows: int, offset: int) -> None:
    rng = random.Random(7)
    invalid = ["06123", "abc", "+999123456789", "06 12 34", "0612345678901234", "+33 0*"]

    def lines() -> Any:
        for i in range(rows):
            roll = rng.random()
            if roll < 0.03:
                yield rng.choice(invalid)
            elif roll < 0.08 and i > 0:
                yield _national(_mobile(offset + rng.randrange(i)), rng.randrange(4))
            elif roll < 0.40:
                yield _mobile(offset + i)
            else:
                yield _national(_mobile(offset + i), rng.randrange(4))

    write_lines(path, lines(), header="number")


def gen_reasons(path: Path, rows: int, offset: int) -> None:
    write_lines(
        path,
        (f"{_mobile(offset + i)},opt-out request {i} received by web form" for i in range(rows)),
        header="number,reason",
    )


# -- the child: one import, its own peak memory --------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _hwm_kib(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(args: argparse.Namespace) -> None:

    worker_peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        me = os.getpid()
        while not stop.wait(0.05):
            for pid in _children(me):
                for sub in [pid, *_children(pid)]:  # forkserver, then its workers
                    worker_peaks[sub] = max(worker_peaks.get(sub, 0), _hwm_kib(sub))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    table = Bulk(Settings(redis_url=args.url, default_region=REGION))
    options = importer.ImportOptions(
        approve=Status.ACTIVE if args.approve else Status.PENDING,
        reason=args.reason,
        by="bench",
        workers=None if args.workers < 0 else args.workers,
    )
    started = time.perf_counter()
    summary = importer.import_file(table, args.list, args.child, options)
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    table.close()
    forkserver_and_workers = sorted(worker_peaks.values(), reverse=True)
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "summary": summary.to_json(),
                "main_peak_mib": _hwm_kib("self") / 1024,
                "worker_peak_mib": (forkserver_and_workers[0] / 1024)
                if forkserver_and_workers
                else 0.0,
            }
        )
    )


# -- the orchestrator ----------------------------------------------------------------


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def run_import(
    url: str, path: Path, list_name: str, workers: int, reason: str | None, approve: bool
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(path),
        "--url",
        url,
        "--list",
        list_name,
        "--workers",
        str(workers),
    ]
    if reason is not None:
        cmd += ["--reason", reason]
    if approve:
        cmd.append("--approve")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the E.164 file")
    parser.add_argument("--mixed-rows", type=int, default=1_000_000)
    parser.add_argument("--reason-rows", type=int, default=100_000)
    parser.add_argument("--big", action="store_true", help="also import 5M E.164 rows")
    parser.add_argument(
        "--workers", type=int, default=-1, help="parse processes (default: the importer's choice)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    parser.add_argument("--reason", help=argparse.SUPPRESS)
    parser.add_argument("--approve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        work = Path(tmp)
        plan: list[tuple[str, Path, int, str | None, bool, int]] = []
        started = time.perf_counter()
        e164 = work / "e164_1m.csv"
        gen_e164(e164, args.rows)
        plan.append(("e164", e164, args.rows, "national do-not-call registry", False, 2))
        if args.big:
            big = work / "e164_5m.csv"
            gen_e164(big, 5 * args.rows, offset=10_000_000)
            plan.append(("e164 x5", big, 5 * args.rows, "national do-not-call registry", False, 1))
        if args.mixed_rows:
            mixed = work / "mixed.csv"
            gen_mixed(mixed, args.mixed_rows, offset=40_000_000)
            plan.append(("mixed", mixed, args.mixed_rows, "crm export", True, 2))
        if args.reason_rows:
            reasons = work / "reasons.csv"
            gen_reasons(reasons, args.reason_rows, offset=60_000_000)
            plan.append(("own reasons", reasons, args.reason_rows, None, False, 1))
        print(f"files generated in {time.perf_counter() - started:.1f} s")

        server = RedisProcess(work / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            settings = Settings(redis_url=server.url, default_region=REGION)
            header = (
                f"{'file':<12}{'run':>4}{'rows':>10}{'MB':>7}{'s':>7}{'rows/s':>10}"
                f"{'main MiB':>10}{'worker MiB':>11}{'added':>9}{'updated':>8}{'skipped':>9}"
                f"{'errors':>8}{'B/entry':>9}"
            )
            print(header)
            for label, path, rows, reason, approve, runs in plan:
                name = f"bench {label}"
                with_services(
                    settings, lambda s, name=name: s.lists.create_list(name, Action.BLOCK)
                )
                for run in range(1, runs + 1):
                    before = used_memory(client)
                    result = run_import(server.url, path, name, args.workers, reason, approve)
                    after = used_memory(client)
                    s = result["summary"]
                    entries = s["added"] if run == 1 else 0
                    per_entry = f"{(after - before) / entries:.1f}" if entries else "-"
                    print(
                        f"{label:<12}{run:>4}{rows:>10}{path.stat().st_size / 1e6:>7.1f}"
                        f"{result['seconds']:>7.1f}{rows / result['seconds']:>10,.0f}"
                        f"{result['main_peak_mib']:>10.1f}{result['worker_peak_mib']:>11.1f}"
                        f"{s['added']:>9}{s['updated']:>8}{s['skipped']:>9}{s['errors']:>8}"
                        f"{per_entry:>9}",
                        flush=True,
                    )
            leftovers = list(client.scan_iter(match="{cs}:imp:*", count=10_000))
            print(f"temporary import keys left in Redis: {len(leftovers)}")
            print(f"total {time.perf_counter() - started:.0f} s")
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
