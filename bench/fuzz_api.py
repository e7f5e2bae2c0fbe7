"""The long schemathesis run against the HTTP API (the test suite runs a short one).

    .venv/bin/python bench/fuzz_api.py [--examples 200] [--seed N] [--budget 1800]

Starts a private redis-server and the API (uvicorn, as ``callscreen api`` runs it) on
loopback, makes a key with every scope, seeds a list and a campaign, then runs every
operation of the OpenAPI schema with ``--examples`` valid and invalid cases each,
checking that no answer is a 5xx and that every answer matches the schema. Prints the
requests per operation and each failure; exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.apifuzz import fuzz  # noqa: E402
from tests.support.apiserver import ApiServer  # noqa: E402
from tests.support.redisproc import RedisProcess  # noqa: E402

from callscreen.core.config import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        redis.start()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=redis.url,
            api_data_dir=str(Path(tmp) / "api"),
            default_region="FR",
            spool_dir="",
            log_level="WARNING",
        )
        server = ApiServer(settings)
        server.start()
        try:
            key = server.make_key("fuzz")
            with server.client(key) as c:
                c.post("/lists", json={"name": "dnc", "action": "block"})
                c.post("/lists/1/entries", json={"entries": [{"number": "+33612345678"}]})
                c.put("/campaigns/spring/lists", json={"lists": ["dnc"]})
            print(f"seed {args.seed}, {args.examples} examples per operation and mode")
            report = fuzz(
                server.url, key, examples=args.examples, seed=args.seed, budget_s=args.budget
            )
        finally:
            server.stop()
            redis.stop()
    for operation, count in sorted(report.requests.items()):
        print(f"{count:7d}  {operation}")
    print(
        f"{sum(report.requests.values())} requests in {report.seconds:.0f} s"
        + (" (budget reached)" if report.budget_hit else "")
    )
    for operation, error in report.failures:
        print(f"\nFAILED {operation}\n{error}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
