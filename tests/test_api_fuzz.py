"""schemathesis against the live API (a real uvicorn, a real Redis): a short seeded
run, time-boxed, bodies capped. The long run: ``bench/fuzz_api.py``."""

from __future__ import annotations

import pytest

from tests.support.apifuzz import fuzz
from tests.support.apiserver import ApiServer

SEED = 14
BUDGET_S = 40.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_input_gets_a_server_error_or_an_answer_off_the_schema(api: ApiServer) -> None:
    key = api.make_key("fuzz")
    with api.client(key) as c:
        # something to find: a list (id 1) with an entry, a campaign
        c.post("/lists", json={"name": "dnc", "action": "block"})
        c.post("/lists/1/entries", json={"entries": [{"number": "+33612345678"}]})
        c.put("/campaigns/spring/lists", json={"lists": ["dnc"]})
    report = fuzz(api.url, key, examples=8, seed=SEED, budget_s=BUDGET_S)
    assert not report.failures, "\n\n".join(f"{op}: {err}" for op, err in report.failures)
    assert len(report.requests) >= 15, report.requests  # every operation was reached
    assert sum(report.requests.values()) >= 100
