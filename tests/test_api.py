"""The HTTP API over real HTTP: a real uvicorn (uvloop, httptools) on a free port, a
real redis-server. Keys and scopes, every error status, every endpoint."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from callscreen.api import jobs, problems
from callscreen.api.backend import EXPORT_CHUNK, Backend
from callscreen.api.models import MAX_ENTRIES
from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.screener import Screener
from callscreen.cli import app as cli_app
from callscreen.cli.exits import EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND
from callscreen.core import errors
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Status
from callscreen.gateway.attemptlog import CallLog, LoggedScreener
from callscreen.schema.attempts import LogSettings
from callscreen.schema.keys import Keys
from callscreen.services import apikeys
from callscreen.services import entries as entries_module
from tests.support.apiserver import ApiServer, ManualClock
from tests.support.blocking import SyncAdmin
from tests.support.polling import until
from tests.support.redisproc import free_port

NUM = "+33612345678"
PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == problems.TYPE_BASE + slug, body
    assert body["status"] == status
    return body


def new_list(c: httpx.Client, name: str = "dnc", **fields: Any) -> int:
    r = c.post("/lists", json={"name": name, "action": "block", **fields})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture
def key(api: ApiServer) -> str:
    return api.make_key("crm")


@pytest.fixture
def c(api: ApiServer, key: str) -> Iterator[httpx.Client]:
    with api.client(key) as client:
        yield client


# -- keys and authentication -------------------------------------------------------------


def test_cli_key_is_shown_once_stored_hashed_and_revoked_everywhere(
    api: ApiServer, redis_url: str
) -> None:
    runner = CliRunner()
    env = {"CALLSCREEN_REDIS_URL": redis_url}
    out = runner.invoke(
        cli_app,
        ["apikeys", "create", "dialer", "--scope", "check,lists:read", "--quiet", "--by", "ops"],
        env=env,
    )
    assert out.exit_code == 0, out.output
    secret = out.stdout.strip()
    assert re.fullmatch(r"cs_[a-z2-7]{52}", secret), secret  # 32 bytes, base32

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    dump = {k: r.type(k) for k in r.keys("*")}
    for name, kind in dump.items():
        assert secret not in name
        if kind == "hash":
            assert secret not in json.dumps(r.hgetall(name))
        if kind == "stream":
            assert secret not in json.dumps(r.xrange(name))
    record = r.hgetall(f"{{cs}}:ak:h:{hashlib.sha256(secret.encode()).hexdigest()}")
    r.close()
    assert record["name"] == "dialer" and record["scopes"] == "check lists:read"
    assert record["created_by"] == "ops"

    with api.client(secret) as c:
        assert c.get("/lists").status_code == 200
    listed = runner.invoke(cli_app, ["apikeys", "ls", "--json"], env=env)
    [shown] = json.loads(listed.stdout)
    assert shown["name"] == "dialer" and shown["last_used_at"] is not None
    assert "key" not in shown and secret not in listed.stdout

    again = runner.invoke(cli_app, ["apikeys", "create", "dialer", "--scope", "check"], env=env)
    assert again.exit_code == EXIT_CONFLICT and "exists" in again.output
    bad = runner.invoke(cli_app, ["apikeys", "create", "x", "--scope", "nope"], env=env)
    assert bad.exit_code == EXIT_INVALID and "unknown scope nope" in bad.output
    gone = runner.invoke(cli_app, ["apikeys", "revoke", "nobody"], env=env)
    assert gone.exit_code == EXIT_NOT_FOUND and "no API key named" in gone.output

    assert runner.invoke(cli_app, ["apikeys", "revoke", "dialer"], env=env).exit_code == 0
    with api.client(secret) as c:
        body = problem(c.get("/lists"), 401, "unauthenticated")
    assert secret not in json.dumps(body)


def test_missing_unknown_malformed_and_expired_keys_get_401(api: ApiServer) -> None:
    expired = api.make_key("old", expires="30d")
    with SyncAdmin(api.settings, clock=lambda: time.time() - 100) as admin:
        _key, past = admin.run(admin.services.apikeys.create("past", ["lists:read"], expires="10s"))
    assert expired
    cases = [
        api.client(),
        api.client("cs_" + "a" * 52),
        api.client(past),
        api.client(None, Authorization="Basic dXNlcjpwYXNz"),
    ]
    for client in cases:
        with client:
            r = client.get("/lists")
            body = problem(r, 401, "unauthenticated")
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "cs_" not in body["detail"]
    with api.client(past) as client:
        assert "expired" in client.get("/lists").json()["detail"]


def test_failed_authentications_are_limited_per_address(api: ApiServer, key: str) -> None:
    clock = ManualClock(1000.2)
    api.reset_limits(clock)
    with api.client("cs_wrong") as bad, api.client(key) as good:
        for _ in range(api.settings.api_auth_failures_per_s):
            assert bad.get("/lists").status_code == 401
        r = bad.get("/lists")
        body = problem(r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) == 1 and body["retry_after"] == 1
        # the address is held back whatever key it sends, until the second is over
        assert good.get("/lists").status_code == 429
        clock.advance(1.0)
        assert good.get("/lists").status_code == 200
        assert bad.get("/lists").status_code == 401


SCOPED = [
    ("lists:read", "GET", "/lists", None),
    ("lists:write", "POST", "/lists", {"name": "x", "action": "block"}),
    ("entries:approve", "POST", "/lists/{id}/entries:approve", {"numbers": [NUM]}),
    (
        "entries:approve-permanent",
        "POST",
        "/lists/{id}/entries:approve",
        {"numbers": [NUM], "permanent": True},
    ),
    ("check", "POST", "/check", {"numbers": [NUM]}),
    ("optout:write", "POST", "/optouts", {"number": NUM}),
    ("keys:admin", "GET", "/keys", None),
    ("calls:read", "GET", "/attempts", None),
]


@pytest.mark.parametrize(("scope", "method", "path", "body"), SCOPED)
def test_each_scope_is_required(
    api: ApiServer, c: httpx.Client, scope: str, method: str, path: str, body: Any
) -> None:
    list_id = new_list(c)
    others = [s.value for s in apikeys.KeyScope if s.value != scope]
    lacking = api.make_key("lacking", others)
    with api.client(lacking) as limited:
        r = limited.request(method, path.format(id=list_id), json=body)
    out = problem(r, 403, "forbidden")
    assert out["scope"] == scope and scope in out["detail"]


def test_a_key_restricted_to_lists_sees_only_those(api: ApiServer, c: httpx.Client) -> None:
    mine = new_list(c, "crm-dnc")
    other = new_list(c, "secret-list")
    c.post(f"/lists/{other}/entries", json={"entries": [{"number": NUM}], "reason": "private"})
    c.post(f"/lists/{mine}/entries", json={"entries": [{"number": "+33612345679"}]})
    restricted = api.make_key("crm2", ["lists:read", "lists:write", "check"], lists=["crm-dnc"])
    with api.client(restricted) as r:
        assert [x["name"] for x in r.get("/lists").json()] == ["crm-dnc"]
        assert r.get(f"/lists/{mine}").status_code == 200
        problem(r.get(f"/lists/{other}"), 403, "forbidden")
        problem(r.get(f"/lists/{other}/entries"), 403, "forbidden")
        problem(
            r.post(f"/lists/{other}/entries", json={"entries": [{"number": NUM}]}),
            403,
            "forbidden",
        )
        problem(r.post("/lists", json={"name": "new", "action": "block"}), 403, "forbidden")
        decisions = r.post("/check", json={"numbers": [NUM, "+33612345679"]}).json()["decisions"]
    assert decisions[0]["result"] == "BLOCKED"
    assert decisions[0]["list"] == "another list" and decisions[0]["reason"] == ""
    assert decisions[1]["list"] == "crm-dnc"


def test_changes_are_recorded_as_the_key_and_its_actor(api: ApiServer, key: str) -> None:
    with api.client(key, **{"X-Actor": "agent 4411"}) as c:
        list_id = new_list(c)
        c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": NUM}]})
        events = c.get("/history", params={"list_id": list_id}).json()["events"]
        assert {e["by"] for e in events} == {"key:crm (agent 4411)"}
        entry = c.get(f"/lists/{list_id}/entries/{NUM}").json()
        assert entry["created_by"] == "key:crm (agent 4411)"
    with api.client(key, **{"X-Actor": "x" * 101}) as c:
        problem(c.get("/lists"), 422, "invalid-input")


def test_keys_over_the_api(api: ApiServer, c: httpx.Client) -> None:
    new_list(c)
    r = c.post("/keys", json={"name": "bot", "scopes": ["check"], "lists": ["dnc"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith("cs_") and made["lists"] == ["dnc"]
    assert [k["name"] for k in c.get("/keys").json()] == ["bot", "crm"]
    assert all("key" not in k for k in c.get("/keys").json())
    problem(c.post("/keys", json={"name": "bot", "scopes": ["check"]}), 409, "conflict")
    problem(c.post("/keys", json={"name": "b", "scopes": ["nope"]}), 422, "validation")
    with api.client(made["key"]) as bot:
        assert bot.post("/check", json={"numbers": [NUM]}).status_code == 200
        assert c.delete("/keys/bot").status_code == 204
        problem(bot.post("/check", json={"numbers": [NUM]}), 401, "unauthenticated")
    problem(c.delete("/keys/bot"), 404, "not-found")


# -- errors ----------------------------------------------------------------------------------


def _all_errors(cls: type[errors.CallscreenError]) -> set[type[errors.CallscreenError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _all_errors(sub)
    return found


def test_every_error_class_has_its_row_in_the_table() -> None:
    classes = _all_errors(errors.CallscreenError)
    assert len(classes) >= 15
    assert classes - set(problems.TABLE) == set()
    types = [p.type for p in problems.TABLE.values()]
    assert len(types) == len(set(types)), "each error has its own type"
    assert problems.TABLE[errors.StoreUnavailable].status == 503


def test_error_statuses(api: ApiServer, c: httpx.Client) -> None:
    problem(
        c.post("/lists", content=b'{"name": ', headers={"content-type": "application/json"}),
        400,
        "malformed-json",
    )
    problem(c.get("/lists/999"), 404, "not-found")
    problem(c.get("/nowhere"), 404, "no-route")
    list_id = new_list(c)
    body = problem(c.post("/lists", json={"name": "dnc", "action": "block"}), 409, "conflict")
    assert "dnc" in body["detail"]
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": NUM}]})
    r = c.post(f"/lists/{list_id}/entries:approve", json={"numbers": [NUM], "permanent": True})
    assert r.status_code == 200, r.text
    problem(c.delete(f"/lists/{list_id}"), 409, "refused")
    problem(
        c.post(f"/lists/{list_id}/entries:remove", json={"numbers": [NUM], "reason": "x"}),
        409,
        "refused",
    )
    # a permanent entry is frozen: a later add of it is "permanent-unchanged"
    r = c.post(
        f"/lists/{list_id}/entries",
        json={"entries": [{"number": NUM, "reason": "new", "external_id": "X"}]},
    )
    assert r.status_code == 200, r.text
    assert [o["outcome"] for o in r.json()["outcomes"]] == ["permanent-unchanged"]
    shown = c.get(f"/lists/{list_id}/entries/{NUM}").json()
    assert (shown["status"], shown["reason"], shown["external_id"]) == ("permanent", "", "")
    # 422 names every invalid field, with the index of each bad entry
    entries = [{"number": NUM}, {"number": NUM, "reason": "r" * 501}, {"nope": 1}]
    body = problem(
        c.post(f"/lists/{list_id}/entries", json={"entries": entries}), 422, "validation"
    )
    assert sorted({e["index"] for e in body["errors"]}) == [1, 2]
    # 413: too many entries, or a body past the limit
    many = [{"number": f"+3361{i:07d}"} for i in range(MAX_ENTRIES + 1)]
    problem(c.post(f"/lists/{list_id}/entries", json={"entries": many}), 413, "too-large")
    huge = b'{"numbers": ["' + b"1" * api.settings.api_max_body_bytes + b'"]}'
    problem(
        c.post("/check", content=huge, headers={"content-type": "application/json"}),
        413,
        "too-large",
    )


def test_redis_unavailable_is_503(redis_url: str) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        log_level="WARNING",
        redis_connect_timeout_ms=200,
    )
    server = ApiServer(settings)
    server.start()
    try:
        with server.client("cs_whatever") as c:
            problem(c.get("/lists"), 503, "store-unavailable")
            problem(c.get("/readyz"), 503, "store-unavailable")
            assert c.get("/healthz").status_code == 200
    finally:
        server.stop()


# -- lists -----------------------------------------------------------------------------------


def test_lists_crud(c: httpx.Client) -> None:
    r = c.post(
        "/lists",
        json={"name": "vip", "action": "allow", "direction": "inbound", "description": "d"},
    )
    assert r.status_code == 201
    made = r.json()
    assert (made["action"], made["direction"], made["scope"]) == ("allow", "inbound", "global")
    camp = new_list(c, "camp", scope="campaign")
    assert c.get("/lists", params={"name": "camp"}).json()[0]["id"] == camp
    assert c.get("/lists", params={"name": "none"}).json() == []
    r = c.patch(f"/lists/{made['id']}", json={"description": None, "name": "vip2"})
    assert r.status_code == 200 and r.json()["description"] == "" and r.json()["name"] == "vip2"
    problem(c.patch(f"/lists/{made['id']}", json={"action": None}), 422, "invalid-input")
    assert c.put("/campaigns/spring/lists", json={"lists": ["camp", "camp"]}).json()["lists"] == [
        "camp"
    ]
    shown = c.get(f"/lists/{camp}").json()
    assert shown["campaigns"] == ["spring"] and shown["counts"]["total"] == 0
    assert c.get("/campaigns/spring").json()["global_lists"] == ["vip2"]
    assert [x["name"] for x in c.get("/campaigns").json()] == ["spring"]
    assert c.put("/campaigns/spring/lists", json={"lists": []}).json()["lists"] == []
    problem(c.put("/campaigns/x/lists", json={"lists": ["missing"]}), 404, "not-found")
    assert c.delete(f"/lists/{camp}").status_code == 204
    problem(c.get(f"/lists/{camp}"), 404, "not-found")


# -- entries ---------------------------------------------------------------------------------


def test_bulk_add_outcomes_per_entry(c: httpx.Client) -> None:
    list_id = new_list(c)
    first = c.post(
        f"/lists/{list_id}/entries",
        json={"entries": [{"number": NUM}, {"number": "06 12 34 56 79"}], "reason": "asked"},
    ).json()
    assert [o["outcome"] for o in first["outcomes"]] == ["added", "added"]
    assert first["outcomes"][1]["entry"] == "+33612345679" and len(first["batches"]) == 1
    second = c.post(
        f"/lists/{list_id}/entries",
        json={
            "entries": [
                {"number": NUM},
                {"number": "+33612345679", "external_id": "CRM-7"},
                {"number": "not a number"},
                {"number": "+3389*", "expires": "30d"},
                {"number": "+33612345670", "expires": "someday"},
            ],
            "reason": "asked",
        },
    ).json()
    got = [(o["index"], o["outcome"]) for o in second["outcomes"]]
    assert got == [(0, "unchanged"), (1, "updated"), (2, "invalid"), (3, "added"), (4, "invalid")]
    assert second["counts"]["invalid"] == 2 and "not a phone number" in str(second)
    pending = c.post(
        f"/lists/{list_id}/entries",
        json={"entries": [{"number": "+33612000000"}], "status": "pending"},
    ).json()
    assert pending["outcomes"][0]["outcome"] == "added"
    assert c.get(f"/lists/{list_id}/entries/+33612000000").json()["status"] == "pending"


def test_idempotency_key(c: httpx.Client, api: ApiServer) -> None:
    list_id = new_list(c)
    body = {"entries": [{"number": NUM}], "reason": "r"}
    headers = {"Idempotency-Key": "req-1"}
    first = c.post(f"/lists/{list_id}/entries", json=body, headers=headers)
    again = c.post(f"/lists/{list_id}/entries", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.json()["outcomes"][0]["outcome"] == "added"
    adds = [e for e in c.get("/history", params={"list_id": list_id}).json()["events"]]
    assert [e["op"] for e in adds] == ["add", "create"]  # added once
    other = {"entries": [{"number": NUM}], "reason": "other"}
    problem(c.post(f"/lists/{list_id}/entries", json=other, headers=headers), 422, "invalid-input")
    # per key: another key may use the same Idempotency-Key
    with api.client(api.make_key("second")) as c2:
        r = c2.post(f"/lists/{list_id}/entries", json=other, headers=headers)
        assert r.json()["outcomes"][0]["outcome"] == "updated"


def pages(c: httpx.Client, list_id: int, **params: Any) -> list[list[str]]:
    out, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = c.get(f"/lists/{list_id}/entries", params=query).json()
        out.append([e["entry"] for e in page["entries"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_entries_pages_by_cursor_stay_right_while_entries_change(c: httpx.Client) -> None:
    list_id = new_list(c)
    numbers = [f"+336{i:08d}" for i in range(0, 700, 7)]  # 100 numbers
    prefixes = ["+3389*", "+3390*"]
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": n} for n in numbers]})
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": p} for p in prefixes]})
    seen = pages(c, list_id, limit=30)
    assert [len(p) for p in seen] == [30, 30, 30, 12]
    flat = [e for page in seen for e in page]
    assert flat[:2] == prefixes and sorted(flat[2:]) == numbers  # each once, prefixes first

    # entries added and removed between pages: none seen twice, none of the others missed
    first = c.get(f"/lists/{list_id}/entries", params={"limit": 40}).json()
    added = [f"+336{i:08d}" for i in range(1, 700, 7)]
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": n} for n in added]})
    c.post(f"/lists/{list_id}/entries:remove", json={"numbers": flat[45:50], "reason": "x"})
    cursor, later = first["next_cursor"], []
    while cursor:
        page = c.get(f"/lists/{list_id}/entries", params={"limit": 40, "cursor": cursor}).json()
        later += [e["entry"] for e in page["entries"]]
        cursor = page["next_cursor"]
    before = [e["entry"] for e in first["entries"]]
    assert not set(before) & set(later) and len(later) == len(set(later))
    assert set(flat) - set(before) <= set(later)  # removed ones are still listed (deleted)
    assert set(before) | set(later) >= set(flat)

    # filters: status and search, walked to the end
    deleted = [e for page in pages(c, list_id, status="deleted", limit=3) for e in page]
    assert sorted(deleted) == sorted(flat[45:50])
    found = [e for page in pages(c, list_id, search="+33600000", limit=200) for e in page]
    assert sorted(found) == sorted(n for n in numbers + added if n.startswith("+33600000"))
    # a search's pages come in number order; its cursor goes on from the last number
    paged = [e for page in pages(c, list_id, search="+33600000", limit=7) for e in page]
    assert paged == found == sorted(found) and len(found) > 7
    page1 = c.get(f"/lists/{list_id}/entries", params={"limit": 2}).json()
    problem(
        c.get(f"/lists/{list_id}/entries", params={"cursor": page1["next_cursor"], "search": "+1"}),
        422,
        "invalid-input",
    )
    problem(c.get(f"/lists/{list_id}/entries", params={"cursor": "garbage!"}), 422, "invalid-input")
    problem(c.get(f"/lists/{list_id}/entries", params={"limit": 201}), 422, "validation")


def test_entry_changes_numbers_filter_and_dry_run(api: ApiServer, c: httpx.Client) -> None:
    list_id = new_list(c)
    pending = ["+33612000001", "+33612000002"]
    c.post(
        f"/lists/{list_id}/entries",
        json={"entries": [{"number": n} for n in pending], "status": "pending"},
    )
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": NUM}]})
    dry = c.post(
        f"/lists/{list_id}/entries:approve", json={"filter": {"status": "pending"}, "dry_run": True}
    ).json()
    assert dry["dry_run"] is True and dry["entries"] == {n: "pending" for n in pending}
    assert c.get(f"/lists/{list_id}").json()["counts"]["pending"] == 2
    done = c.post(f"/lists/{list_id}/entries:approve", json={"filter": {"status": "pending"}})
    assert done.json()["counts"] == {"approved": 2}
    problem(
        c.post(f"/lists/{list_id}/entries:remove", json={"numbers": [NUM]}), 422, "invalid-input"
    )
    removed = c.post(
        f"/lists/{list_id}/entries:remove", json={"numbers": [NUM], "reason": "customer asked"}
    ).json()
    assert removed["counts"] == {"removed": 1} and removed["by"] == "key:crm"
    entry = c.get(f"/lists/{list_id}/entries/{NUM}").json()
    assert entry["status"] == "deleted" and entry["removed_reason"] == "customer asked"
    assert [h["op"] for h in entry["history"]][:2] == ["remove", "add"]
    restored = c.post(f"/lists/{list_id}/entries:restore", json={"numbers": [NUM]}).json()
    assert restored["counts"] == {"restored": 1}
    unapproved = c.post(f"/lists/{list_id}/entries:unapprove", json={"numbers": [NUM]}).json()
    assert unapproved["counts"] == {"unapproved": 1}
    # the entry tells its transitions, the last one in updated_by/at and last_change
    entry = c.get(f"/lists/{list_id}/entries/{NUM}").json()
    assert [(t["transition"], t["by"]) for t in entry["transitions"]] == [
        ("added", "key:crm"),
        ("removed", "key:crm"),
        ("restored", "key:crm"),
        ("unapproved", "key:crm"),
    ]
    assert entry["transitions"][1]["reason"] == "customer asked"
    assert (entry["last_change"], entry["updated_at"]) == (
        "unapproved",
        entry["transitions"][-1]["at"],
    )
    problem(
        c.post(f"/lists/{list_id}/entries:approve", json={"numbers": ["+339*"]}), 404, "not-found"
    )
    c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": "+33*"}]})
    broad = {"numbers": ["+33*"], "permanent": True}
    problem(c.post(f"/lists/{list_id}/entries:approve", json=broad), 409, "needs-confirmation")
    sure = c.post(f"/lists/{list_id}/entries:approve", json={**broad, "confirm_broad": True})
    assert sure.json()["counts"] == {"approved": 1}
    assert c.get(f"/lists/{list_id}/entries/+33*").json()["status"] == "permanent"
    problem(
        c.post(f"/lists/{list_id}/entries:approve", json={"numbers": [NUM], "filter": {}}),
        422,
        "invalid-input",
    )
    problem(c.get(f"/lists/{list_id}/entries/+33699999999"), 404, "not-found")
    problem(c.get(f"/lists/{list_id}/entries/garbage"), 422, "invalid-number")


# -- screening -------------------------------------------------------------------------------


async def test_check_gives_the_gateways_decision(api: ApiServer, c: httpx.Client) -> None:
    block = new_list(c)
    allow = new_list(c, "vip")
    c.patch(f"/lists/{allow}", json={"action": "allow"})
    c.post(f"/lists/{block}/entries", json={"entries": [{"number": "+3389*"}], "reason": "premium"})
    c.post(f"/lists/{allow}/entries", json={"entries": [{"number": "+33891234567"}]})
    label = new_list(c, "spam", scope="campaign")
    c.patch(f"/lists/{label}", json={"action": "label"})
    c.post(f"/lists/{label}/entries", json={"entries": [{"number": NUM}]})
    c.put("/campaigns/spring/lists", json={"lists": ["spam"]})
    numbers = ["+33891234567", "0891234568", NUM, "112", "anonymous", "15", "+33 6 12 34 56 78"]
    admin = SyncAdmin(api.settings)
    try:
        for direction in ("inbound", "outbound"):
            for campaign in ("", "spring"):
                r = c.post(
                    "/check",
                    json={"numbers": numbers, "direction": direction, "campaign": campaign},
                )
                assert r.status_code == 200, r.text
                for raw, got in zip(numbers, r.json()["decisions"], strict=True):
                    want = admin.check(raw, Direction(direction), campaign)
                    assert (got["result"], got["list"], got["entry"], got["reason"]) == (
                        want.result,
                        want.list_name,
                        want.match,
                        want.reason,
                    ), (raw, direction, campaign)
    finally:
        admin.close()
    out = c.post("/check", json={"numbers": ["0891234568"], "direction": "outbound"}).json()
    assert out["decisions"][0]["result"] == "BLOCKED" and out["counts"] == {"BLOCKED": 1}
    problem(c.post("/check", json={"numbers": []}), 422, "validation")
    problem(c.post("/check", json={"numbers": ["1"] * 10_001}), 413, "too-large")


def test_optout_is_idempotent_and_blocks_at_once(api: ApiServer, key: str) -> None:
    with api.client(key, **{"X-Actor": "agent 7"}) as c:
        body = {"number": "06 12 34 56 78", "campaign": "spring", "source": "crm", "note": "call 9"}
        first = c.post("/optouts", json=body)
        assert first.status_code == 200, first.text
        got = first.json()
        assert (got["number"], got["list"], got["result"], got["recorded"]) == (
            NUM,
            "do-not-call",
            "BLOCKED",
            True,
        )
        assert "campaign spring" in got["reason"] and got["reason"].endswith(": call 9")
        # the number's queued calls are the gateway's to cancel: one plan queued, as an
        # add queues it, never hanging up (the caller is the one opting out)
        r = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
        queue = Keys(api.settings.key_tag).cascade_queue
        [(_job, fields)] = r.xrange(queue)
        plan = json.loads(fields["plan"])
        assert (plan["list_name"], plan["targets"], plan["hangup_live"]) == (
            "do-not-call",
            [NUM],
            False,
        )
        assert c.post("/optouts", json=body).json()["recorded"] is True
        assert r.xlen(queue) == 1  # nothing recorded again, nothing queued again
        r.close()
        [dnc] = c.get("/lists", params={"name": "do-not-call"}).json()
        assert (dnc["action"], dnc["scope"], dnc["counts"]["active"]) == ("block", "global", 1)
        events = c.get("/history", params={"list_id": dnc["id"]}).json()["events"]
        adds = [e for e in events if e["op"] == "add"]
        assert len(adds) == 1 and adds[0]["by"] == "key:crm (agent 7)"
        entry = c.get(f"/lists/{dnc['id']}/entries/{NUM}").json()
        assert entry["source"] == "crm"
        decision = c.post("/check", json={"numbers": [NUM], "direction": "inbound"}).json()
        assert decision["decisions"][0]["result"] == "BLOCKED"
        problem(c.post("/optouts", json={"number": "+33*"}), 422, "invalid-number")
        problem(c.post("/optouts", json={"number": "hello"}), 422, "invalid-number")


# -- evidence and health ---------------------------------------------------------------------


def test_history_pages_and_health(c: httpx.Client) -> None:
    for name in ("a", "b", "c"):
        new_list(c, name)
    page1 = c.get("/history", params={"limit": 2}).json()
    assert [e["list_name"] for e in page1["events"]] == ["c", "b"]
    page2 = c.get("/history", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [e["list_name"] for e in page2["events"]][:1] == ["a"]
    problem(c.get("/history", params={"cursor": "x"}), 422, "invalid-input")
    assert c.get("/healthz").json() == {"status": "ok", "detail": {}}
    assert c.get("/readyz").json()["status"] == "ready"


def test_openapi_and_docs_are_served(api: ApiServer) -> None:
    with httpx.Client(base_url=api.url) as c:
        schema = c.get("/api/v1/openapi.json").json()
        assert "/api/v1/lists/{list_id}/entries" in schema["paths"]
        assert c.get("/api/docs").status_code == 200
        assert c.get("/healthz").status_code == 200


async def logged_calls(settings: Settings, calls: list[tuple[str, str, str]]) -> None:
    """Screen ``calls`` (number, direction, campaign) as the gateway does, logged."""
    log = CallLog(
        LogSettings(flush_interval_s=0.01, node="test"),
        LeanRedis.from_url(settings.redis_url),
        own_client=True,
    )
    log.start()
    screener = LoggedScreener(Screener.from_settings(settings), log)
    start = time.time()
    try:
        for i, (number, direction, campaign) in enumerate(calls):
            # a millisecond apart: the log's shards are merged by call time
            log.clock = lambda i=i: start + i / 1000  # type: ignore[misc]
            request = ScreenRequest(number, Direction(direction), campaign, f"u{i}", "Caller")
            await screener.screen(request)
    finally:
        await log.stop()
        await screener.close()


async def test_attempts_and_reports(api: ApiServer, c: httpx.Client) -> None:
    secret = new_list(c, "secret")
    mine = new_list(c, "mine")
    c.post(f"/lists/{secret}/entries", json={"entries": [{"number": NUM}], "reason": "private"})
    c.post(f"/lists/{mine}/entries", json={"entries": [{"number": "+33612345679"}]})
    calls = [
        (NUM, "inbound", ""),
        ("+33612345679", "outbound", "spring"),
        ("+33612345670", "outbound", "spring"),
        (NUM, "outbound", "spring"),
        ("+33612345671", "inbound", ""),
    ]
    await logged_calls(api.settings, calls)
    page1 = c.get("/attempts", params={"limit": 2}).json()
    assert [a["uniqueid"] for a in page1["attempts"]] == ["u4", "u3"]  # newest first
    page2 = c.get("/attempts", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [a["uniqueid"] for a in page2["attempts"]] == ["u2", "u1"]
    blocked = c.get("/attempts", params={"result": "BLOCKED", "campaign": "spring"}).json()
    assert [(a["number"], a["list_name"]) for a in blocked["attempts"]] == [
        (NUM, "secret"),
        ("+33612345679", "mine"),
    ]
    one = c.get("/attempts", params={"number": "06 12 34 56 78", "direction": "inbound"}).json()
    assert [a["uniqueid"] for a in one["attempts"]] == ["u0"]
    problem(c.get("/attempts", params={"result": "nope"}), 422, "validation")
    problem(c.get("/attempts", params={"cursor": "zz"}), 422, "invalid-input")

    report = c.get("/reports", params={"days": 1}).json()
    assert report["totals"]["BLOCKED"] == 3 and report["totals"]["ALLOWED"] == 2
    problem(c.get("/reports", params={"days": 1, "since": "2027-01-01"}), 422, "invalid-input")

    restricted = api.make_key("crm3", ["calls:read"], lists=["mine"])
    with api.client(restricted) as r:
        shown = r.get("/attempts", params={"result": "BLOCKED"}).json()["attempts"]
        assert [(a["list_name"], a["reason"]) for a in shown] == [
            ("another list", ""),
            ("mine", ""),
            ("another list", ""),
        ]
        problem(r.get("/reports"), 403, "forbidden")
    lacking = api.make_key("nocalls", ["lists:read"])
    with api.client(lacking) as r:
        assert problem(r.get("/attempts"), 403, "forbidden")["scope"] == "calls:read"


def test_export_streams_the_clis_csv(api: ApiServer, c: httpx.Client) -> None:
    list_id = new_list(c)
    numbers = [f"+336{i:08d}" for i in range(3000)]
    for start in range(0, 3000, 1000):
        chunk = numbers[start : start + 1000]
        c.post(f"/lists/{list_id}/entries", json={"entries": [{"number": n} for n in chunk]})
    c.post(f"/lists/{list_id}/entries:remove", json={"numbers": numbers[:5], "reason": "r"})
    with c.stream("GET", f"/lists/{list_id}/export") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"] == 'attachment; filename="dnc.csv"'
        body = b"".join(r.iter_bytes()).decode()
    expected = io.StringIO(newline="")
    with SyncAdmin(api.settings) as admin:
        admin.export_list("dnc", expected)
    assert body == expected.getvalue() and len(body) > EXPORT_CHUNK
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 3001
    deleted = c.get(f"/lists/{list_id}/export", params={"status": "deleted"}).text
    assert len(list(csv.reader(io.StringIO(deleted)))) == 6
    problem(c.get(f"/lists/{list_id}/export", params={"status": "nope"}), 422, "validation")
    problem(c.get("/lists/99/export"), 404, "not-found")


def test_paging_by_buckets_gives_the_order_of_the_small_list_path(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big lists are paged by walking buckets, small ones read whole: same entries, same
    order, same positions (the walk is forced here on a small list)."""
    admin = SyncAdmin(api.settings)
    try:
        admin.create_list("big", Action.BLOCK)
        admin.add("big", [f"+336{i:08d}" for i in range(0, 300_000, 997)] + ["+3389*", "+1900*"])
        admin.remove("big", ["+33600000997", "+33600001994"], reason="r")

        def walk(limit: int, **filters: Any) -> list[tuple[list[str], Any]]:
            out, after = [], None
            while True:
                page = admin.page_entries("big", limit=limit, after=after, **filters)
                out.append(([v.entry for v in page.entries], page.next))
                if page.next is None:
                    return out
                after = page.next

        small = walk(25)
        small_deleted = walk(1, status=Status.DELETED)
        monkeypatch.setattr(entries_module, "PAGE_SMALL_LIST", 0)
        monkeypatch.setattr(entries_module, "PAGE_MAX_BUCKETS", 8192)
        walked = walk(25)
        deleted = [e for page, _next in walk(1, status=Status.DELETED) for e in page]
    finally:
        admin.close()
    flat = [e for page, _next in small for e in page]
    assert len(flat) == len(set(flat)) == 303 and flat[:2] == ["+1900*", "+3389*"]
    assert [e for page, _next in walked for e in page] == flat
    assert [page for page, _next in walked if page] == [page for page, _next in small]
    assert sorted(deleted) == sorted(e for page, _n in small_deleted for e in page)
    assert sorted(deleted) == ["+33600000997", "+33600001994"]


def test_imports_run_in_the_background_and_resume(api: ApiServer, c: httpx.Client) -> None:
    list_id = new_list(c)
    rows = ["number,reason"] + [f"+336{i:08d},crm" for i in range(500)] + ["garbage,x"]
    csv_text = "\n".join(rows) + "\n"
    headers = {"Content-Type": "text/csv"}
    r = c.post(f"/lists/{list_id}/imports", content=csv_text, headers=headers)
    assert r.status_code == 202, r.text
    job = r.json()["job"]

    def finished() -> bool:
        return bool(c.get(f"/imports/{job}").json()["done"])

    until(finished, "the import to finish", timeout=30)
    state = c.get(f"/imports/{job}").json()
    assert state["state"] == "done" and state["list"] == "dnc", state
    assert state["summary"]["added"] == 500 and state["errors"] == 1
    assert state["first_errors"][0]["line"] == 502 and state["rows_read"] == 501
    assert c.get(f"/lists/{list_id}").json()["counts"]["pending"] == 500  # pending by default
    errors_csv = c.get(f"/imports/{job}/errors")
    assert errors_csv.status_code == 200 and "garbage" in errors_csv.text
    problem(c.post(f"/imports/{job}:resume"), 409, "conflict")
    # done: the upload is gone (nothing can run it again), the error file stays
    assert not jobs.upload_path(api.settings, job).exists()
    assert jobs.errors_path(api.settings, job).is_file()

    # a job whose process died: its heartbeat stopped, it shows interrupted, resumes
    r = c.post(
        f"/lists/{list_id}/imports", params={"approve": "active"}, content=csv_text, headers=headers
    )
    job2 = r.json()["job"]
    until(lambda: c.get(f"/imports/{job2}").json()["done"], "the import", timeout=30)
    # what a process that died in the middle leaves: the upload, a stale running state
    jobs.upload_path(api.settings, job2).write_text(csv_text)
    client = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
    try:
        client.hset(f"{{cs}}:ij:{job2}", mapping={"state": "running", "heartbeat": "0"})
    finally:
        client.close()
    assert c.get(f"/imports/{job2}").json()["state"] == "interrupted"
    resumed = c.post(f"/imports/{job2}:resume")
    assert resumed.status_code == 202, resumed.text
    until(lambda: c.get(f"/imports/{job2}").json()["done"], "the import", timeout=30)
    again = c.get(f"/imports/{job2}").json()
    assert again["state"] == "done" and again["started"] == 2
    assert c.get(f"/lists/{list_id}").json()["counts"]["active"] == 500
    assert not jobs.upload_path(api.settings, job2).exists()
    # an interrupted job whose file is gone cannot be resumed
    client = redis.Redis.from_url(api.settings.redis_url, decode_responses=True)
    try:
        client.hset(f"{{cs}}:ij:{job2}", mapping={"state": "running", "heartbeat": "0"})
    finally:
        client.close()
    problem(c.post(f"/imports/{job2}:resume"), 404, "not-found")

    problem(c.get("/imports/0123456789abcdef"), 404, "not-found")
    problem(c.post(f"/lists/{list_id}/imports", content="x", headers={}), 422, "invalid-input")
    problem(c.post("/lists/99/imports", content=csv_text, headers=headers), 404, "not-found")
    lacking = api.make_key("writer", ["lists:write", "lists:read"])
    with api.client(lacking) as w:
        r = w.post(
            f"/lists/{list_id}/imports",
            params={"approve": "permanent"},
            content=csv_text,
            headers=headers,
        )
        assert problem(r, 403, "forbidden")["scope"] == "entries:approve-permanent"


def test_the_api_removes_the_import_files_no_job_needs_when_it_starts(
    api: ApiServer, tmp_path: Path
) -> None:
    settings = api.settings.model_copy(update={"api_data_dir": str(tmp_path)})
    folder = tmp_path / "imports"
    folder.mkdir()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        for job, state in (("a" * 16, "done"), ("b" * 16, "failed"), ("c" * 16, "running")):
            client.hset(f"{{cs}}:ij:{job}", mapping={"state": state, "heartbeat": "0"})
    finally:
        client.close()
    made = {
        "done upload": folder / f"{'a' * 16}.csv",
        "done errors": folder / f"{'a' * 16}.errors.csv",
        "failed upload": folder / f"{'b' * 16}.csv",
        "interrupted upload": folder / f"{'c' * 16}.csv",
        "expired upload": folder / f"{'d' * 16}.csv",
        "expired errors": folder / f"{'d' * 16}.errors.csv",
        "upload being written": folder / f"{'e' * 16}.csv",
    }
    for path in made.values():
        path.write_text("number\n+33612345678\n")
    old = time.time() - jobs.ORPHAN_S - 60
    for name in ("expired upload", "expired errors"):
        os.utime(made[name], (old, old))
    server = ApiServer(settings)
    server.start()
    server.stop()
    kept = {name for name, path in made.items() if path.exists()}
    assert kept == {"done errors", "failed upload", "interrupted upload", "upload being written"}


def test_forwarded_addresses_count_only_from_trusted_proxies(api: ApiServer) -> None:
    # untrusted peer: X-Forwarded-For is ignored, every failure counts for the peer
    api.reset_limits(ManualClock())
    limit = api.settings.api_auth_failures_per_s
    with api.client("cs_wrong") as bad:
        for i in range(limit):
            bad.get("/lists", headers={"X-Forwarded-For": f"203.0.113.{i}"})
        r = bad.get("/lists", headers={"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 429
    trusted = api.settings.model_copy(update={"api_forwarded_allow_ips": ["127.0.0.1"]})
    proxied = ApiServer(trusted)
    proxied.start()
    proxied.reset_limits(ManualClock())
    first = {"X-Forwarded-For": "203.0.113.5"}
    try:
        with proxied.client("cs_wrong") as bad:
            for _ in range(limit):
                assert bad.get("/lists", headers=first).status_code == 401
            assert bad.get("/lists", headers=first).status_code == 429
            # another client behind the same proxy is not held back
            other = {"X-Forwarded-For": "203.0.113.6"}
            assert bad.get("/lists", headers=other).status_code == 401
    finally:
        proxied.stop()


async def test_the_api_refuses_data_of_an_older_schema(redis_url: str) -> None:
    """As ``callscreen serve`` does: data of an older layout is migrated first."""
    settings = Settings(redis_url=redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    backend = Backend.connect(settings)
    try:
        await backend.check_schema()  # an empty Redis: nothing to refuse
        r.hset(Keys(settings.key_tag).meta, "schema", 0)
        with pytest.raises(errors.SchemaTooOld, match=r"callscreen api.*callscreen migrate"):
            await backend.check_schema()
    finally:
        await backend.close()
        r.close()
