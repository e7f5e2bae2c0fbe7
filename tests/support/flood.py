"""Hostile peers for the limits tests and ``bench/soak.py``, run in a process of their
own so that their work does not share the gateway's event loop.

    python -m tests.support.flood idle HOST PORT \
        --sources 127.0.0.3-127.0.0.60 --per-source 6 --seconds 3

``idle``: every source address holds ``--per-source`` connections that send nothing,
each reopened as soon as the server closes it, for ``--seconds``. Prints one JSON line
when every connection is open (``{"ready": N}``) and one at the end
(``{"connects": N, "closed_by_server": N, "failed": N}``). Loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import resource
import sys
import time


def sources(spec: str) -> list[str]:
    """``127.0.0.3-127.0.0.60`` -> every address in the range (loopback only)."""
    first, _, last = spec.partition("-")
    start = ipaddress.ip_address(first)
    end = ipaddress.ip_address(last or first)
    out = []
    for value in range(int(start), int(end) + 1):
        address = ipaddress.ip_address(value)
        if not address.is_loopback:
            raise SystemExit(f"{address} is not a loopback address")
        out.append(str(address))
    return out


def raise_nofile() -> None:
    """Raise the soft limit of open files to the hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def idle(
    host: str,
    port: int,
    addresses: list[str],
    per_source: int,
    seconds: float,
    reopen_delay: float = 0.0,
) -> None:
    counts = {"connects": 0, "closed_by_server": 0, "failed": 0}
    ready = asyncio.Event()
    opened = 0
    total = len(addresses) * per_source
    stop_at = time.monotonic() + seconds

    async def hold(source: str) -> None:
        nonlocal opened
        first = True
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            except OSError:
                counts["failed"] += 1
                await asyncio.sleep(0.01)
                continue
            counts["connects"] += 1
            if first:
                first = False
                opened += 1
                if opened == total:
                    ready.set()
            try:
                left = stop_at - time.monotonic()
                if left > 0 and await asyncio.wait_for(reader.read(), left) == b"":
                    counts["closed_by_server"] += 1
            except (TimeoutError, OSError):
                pass
            finally:
                writer.close()
            if reopen_delay:
                await asyncio.sleep(reopen_delay)

    tasks = [asyncio.create_task(hold(a)) for a in addresses for _ in range(per_source)]
    await asyncio.wait([asyncio.create_task(ready.wait())], timeout=seconds)
    print(json.dumps({"ready": opened}), flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps(counts), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["idle"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--sources", default="127.0.0.3-127.0.0.60")
    parser.add_argument("--per-source", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reopen-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    raise_nofile()
    addresses = sources(args.sources)
    asyncio.run(
        idle(args.host, args.port, addresses, args.per_source, args.seconds, args.reopen_delay)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
