"""``GET /api/v1/numbers/{number}``: the number page over real HTTP (a real uvicorn and a
real Redis): the shape, a key restricted to lists, scopes and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.apiserver import ApiServer
from tests.test_api import logged_calls, new_list, problem

NUM = "+33612345678"
PATH = "/numbers/%2B33612345678"


@pytest.fixture
def c(api: ApiServer) -> Iterator[httpx.Client]:
    with api.client(api.make_key("compliance")) as client:
        yield client


async def test_the_number_page_over_http(api: ApiServer, c: httpx.Client) -> None:
    secret = new_list(c, "secret")
    mine = new_list(c, "mine", action="label")
    other = new_list(c, "other")
    c.post(f"/lists/{secret}/entries", json={"entries": [{"number": NUM}], "reason": "private"})
    c.post(f"/lists/{mine}/entries", json={"entries": [{"number": "+336123*"}], "reason": "ours"})
    c.post(f"/lists/{other}/entries", json={"entries": [{"number": "+33698765432"}]})
    c.put("/campaigns/spring/lists", json={"lists": ["mine"]})
    await logged_calls(api.settings, [(NUM, "outbound", "spring"), (NUM, "inbound", "")])

    r = c.get(PATH)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["number"] == NUM
    lists = {x["list_name"]: x for x in card["lists"]}
    assert set(lists) == {"secret", "mine"}
    assert lists["secret"]["entries"][0]["reason"] == "private"
    assert [h["transition"] for h in lists["secret"]["entries"][0]["history"]] == ["added"]
    assert lists["mine"]["entries"][0]["kind"] == "prefix"
    assert lists["mine"]["campaigns"] == ["spring"]
    decisions = {(d["direction"], d["campaign"]): d for d in card["decisions"]}
    assert decisions["outbound", "spring"]["list_name"] == "secret"
    assert card["log"]["totals"] == {"BLOCKED": 2} and len(card["log"]["attempts"]) == 2
    assert card["log"]["attempts"][0]["list_name"] == "secret"
    # typed as an admin would, URL-encoded; a campaign narrows it
    spring = c.get("/numbers/06%2012%2034%2056%2078", params={"campaign": "spring"}).json()
    assert [a["campaign"] for a in spring["log"]["attempts"]] == ["spring"]
    assert spring["number"] == NUM and spring["campaign"] == "spring"
    # the OpenAPI schema documents it
    schema = c.get("/openapi.json").json()
    assert "/api/v1/numbers/{number}" in schema["paths"]

    # a key restricted to its lists sees the others as "another list", nothing of them
    restricted = api.make_key("crm", ["calls:read"], lists=["mine"])
    with api.client(restricted) as rc:
        seen = rc.get(PATH)
        assert seen.status_code == 200, seen.text
        assert "private" not in seen.text and "secret" not in seen.text
        shown = seen.json()
        assert [(x["list_name"], len(x["entries"])) for x in shown["lists"]] == [
            ("mine", 1),
            ("another list", 0),
        ]
        inbound = next(d for d in shown["decisions"] if d["direction"] == "inbound")
        assert (inbound["result"], inbound["list_name"], inbound["reason"]) == (
            "BLOCKED",
            "another list",
            "",
        )
        assert {m["list_name"] for m in inbound["matches"]} == {"mine", "another list"}
        assert all(a["list_name"] == "another list" for a in shown["log"]["attempts"])
        assert shown["log"]["last_decided_by"] is None


def test_scopes_and_bad_input(api: ApiServer, c: httpx.Client) -> None:
    with api.client() as anonymous:
        problem(anonymous.get(PATH), 401, "unauthenticated")
    lacking = api.make_key("lists-only", ["lists:read"])
    with api.client(lacking) as r:
        assert problem(r.get(PATH), 403, "forbidden")["scope"] == "calls:read"
    problem(c.get("/numbers/not-a-number"), 422, "invalid-number")
    problem(c.get("/numbers/%2B33%2A"), 422, "invalid-input")  # a prefix
    problem(c.get("/numbers/" + "1" * 101), 422, "validation")
    problem(c.get(PATH, params={"attempts": 500}), 422, "validation")
    assert c.get("/numbers/%2B33699999999").json()["lists"] == []
