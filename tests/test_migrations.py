"""Stored data across releases: every command refuses data of another schema version
with one line naming it; ``callscreen migrate`` upgrades step by step, idempotently;
``--dry-run`` writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
import redis.asyncio
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import EXIT_REFUSED, EXIT_SCHEMA
from callscreen.schema import keys as schema_keys
from callscreen.services import migrations
from callscreen.services.migrations import Migration
from callscreen.services.table import Table

NUM = "+33612345678"


class Cli:
    def __init__(self, redis_url: str) -> None:
        self.env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}

    def __call__(self, *args: str, code: int = 0, input_text: str | None = None) -> Any:
        result = CliRunner().invoke(
            app, list(args), env=self.env, catch_exceptions=False, input=input_text
        )
        assert result.exit_code == code, (args, result.output)
        return result


@pytest.fixture
def cli(redis_url: str) -> Cli:
    return Cli(redis_url)


@pytest.fixture
def client(redis_url: str) -> Any:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    yield r
    r.close()


def written_by_this_release(cli: Cli) -> None:
    """Lists and entries of this release's layout."""
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "+3361*", "--reason", "asked us")


def test_migrate_on_data_of_this_release(cli: Cli, client: Any) -> None:
    written_by_this_release(cli)
    version = schema_keys.SCHEMA_VERSION
    assert client.hget("{cs}:meta", "schema") == version
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)
    assert dry == {
        "stored_version": int(version),
        "version": int(version),
        "dry_run": True,
        "steps": [],
    }
    assert "up to date" in cli("migrate", "--dry-run").stdout
    assert "up to date" in cli("migrate").stdout
    cli("check", NUM)


def test_data_of_schema_version_1_moves_its_attempt_log(cli: Cli, client: Any) -> None:
    """Version 2 keeps the attempt log in shards: data of version 1 is refused until
    migrated (with no log to move, the step moves nothing; tests/test_logshards.py
    moves one)."""
    written_by_this_release(cli)
    client.hset("{cs}:meta", "schema", "1")
    cli("lists", "ls", code=EXIT_SCHEMA)
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == [
        "2: the attempt log into its shards: 0 records, 0 counter days, 0 listed sets, "
        "0 mark hashes, 0 decider hashes, 0 dropped keys",
        "3: entries keep their transitions: 0 pending entries marked as not enforced yet",
        "4: blocked calls kept by age; each number's attempt index: 0 moved, 0 indexed, 0 numbers",
        "5: the lookup index: 1 lists and 0 campaigns indexed",
        "6: status indexes: 0 pending/removed entries of 1 lists indexed",
        "7: number indexes: 1 numbers of 1 lists indexed",
        "8: the holders index: 1 numbers, 1 prefixes of 1 lists indexed",
    ]
    assert client.hget("{cs}:meta", "schema") == "8" and "dnc" in cli("lists", "ls").stdout


def test_data_of_schema_version_2_marks_pending_entries_never_enforced(
    cli: Cli, client: Any
) -> None:
    """Version 3 keeps each entry's transitions and first-enforced time: records of
    version 2 are read as they are, and a pending one without a trail is taken as not
    enforced yet, so that its approval becomes its first enforcement."""
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "--reason", "asked us")
    pending = "+33698765432"
    cli("lists", "create", "review", "--action", "block")
    cli("import", "review", "-", input_text=f"{pending}\n+33698765433\n")
    review = client.hget("{cs}:lists", "review")
    fields = [
        (f"{{cs}}:e:{review}:{n % 32768}", str(n // 32768)) for n in (33698765432, 33698765433)
    ]
    for key, field in fields:  # as version 2 wrote them: no trail
        client.hset(key, field, client.hget(key, field).split(";")[0] + ";" + "1")
    client.hset("{cs}:meta", "schema", "2")
    cli("lists", "ls", code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)["steps"]
    assert dry == ["3: entries keep their transitions: 2 pending entries without a trail to "
                   "mark as not enforced yet",
                   "4: blocked calls kept by age; each number's attempt index: 0 blocked/labeled "
                   "records to keep by age, 0 to index",
                   "5: the lookup index: 2 lists and 0 campaigns to index",
                   "6: status indexes: 2 pending/removed entries of 2 lists to index",
                   "7: number indexes: 3 numbers of 2 lists to index",
                   "8: the holders index: 3 numbers, 0 prefixes of 2 lists to index"]  # fmt: skip
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == ["3: entries keep their transitions: 2 pending entries marked as not "
                     "enforced yet",
                     "4: blocked calls kept by age; each number's attempt index: 0 moved, "
                     "0 indexed, 0 numbers",
                     "5: the lookup index: 2 lists and 0 campaigns indexed",
                     "6: status indexes: 2 pending/removed entries of 2 lists indexed",
                     "7: number indexes: 3 numbers of 2 lists indexed",
                     "8: the holders index: 3 numbers, 0 prefixes of 2 lists indexed"]  # fmt: skip
    assert [client.hget(key, field) for key, field in fields] == ["p;1;;;~;", "p;1;;;~;"]
    assert "up to date" in cli("migrate").stdout
    cli("approve", "review", pending)
    shown = json.loads(cli("entries", "review", "--json").stdout)["entries"]
    approved = next(e for e in shown if e["entry"] == "+" + pending[1:])
    assert approved["enforced_since"] == approved["updated_at"] != approved["created_at"]
    [active] = json.loads(cli("entries", "dnc", "--json").stdout)["entries"]
    assert active["enforced_since"] == active["created_at"]  # untouched


def test_data_of_schema_version_4_gets_its_lookup_index(cli: Cli, client: Any) -> None:
    """Version 5 adds the lookup index: without it the lookup refuses to answer (a call
    gets the fail policy, never "no list applies"); migrate builds it."""
    written_by_this_release(cli)
    cli("lists", "create", "spring-dnc", "--action", "block", "--campaign-only")
    cli("campaigns", "assign", "spring", "spring-dnc")
    index = client.hgetall("{cs}:lk")
    client.delete("{cs}:lk")
    client.hset("{cs}:meta", "schema", "4")
    cli("check", NUM, code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)["steps"]
    assert dry == ["5: the lookup index: 2 lists and 1 campaigns to index",
                   "6: status indexes: 0 pending/removed entries of 2 lists to index",
                   "7: number indexes: 1 numbers of 2 lists to index",
                   "8: the holders index: 1 numbers, 1 prefixes of 2 lists to index"]  # fmt: skip
    assert not client.exists("{cs}:lk")
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == ["5: the lookup index: 2 lists and 1 campaigns indexed",
                     "6: status indexes: 0 pending/removed entries of 2 lists indexed",
                     "7: number indexes: 1 numbers of 2 lists indexed",
                     "8: the holders index: 1 numbers, 1 prefixes of 2 lists indexed"]  # fmt: skip
    assert client.hgetall("{cs}:lk") == index
    assert "BLOCKED" in cli("check", "+33611112222", "--direction", "outbound").stdout


def test_data_of_schema_version_5_gets_its_status_indexes(cli: Cli, client: Any) -> None:
    """Version 6 indexes each list's pending and removed entries (paging by status
    reads them); migrate builds them from the entries, as the writers would have."""
    written_by_this_release(cli)
    cli("lists", "create", "review", "--action", "block")
    cli("import", "review", "-", input_text="+33698765432\n+33698765433\n+3370*\n")
    cli("remove", "dnc", NUM, "--reason", "asked twice")
    review = client.hget("{cs}:lists", "review")
    dnc = client.hget("{cs}:lists", "dnc")
    indexes = [f"{{cs}}:st:{review}:p", f"{{cs}}:st:{dnc}:d"]
    written = [client.zrange(key, 0, -1, withscores=True) for key in indexes]
    assert [len(w) for w in written] == [3, 1]
    client.delete(*indexes)
    client.hset("{cs}:meta", "schema", "5")
    cli("lists", "ls", code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)["steps"]
    assert dry == ["6: status indexes: 4 pending/removed entries of 2 lists to index",
                   "7: number indexes: 3 numbers of 2 lists to index",
                   "8: the holders index: 3 numbers, 2 prefixes of 2 lists to index"]  # fmt: skip
    assert not client.exists(*indexes)
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == ["6: status indexes: 4 pending/removed entries of 2 lists indexed",
                     "7: number indexes: 3 numbers of 2 lists indexed",
                     "8: the holders index: 3 numbers, 2 prefixes of 2 lists indexed"]  # fmt: skip
    assert [client.zrange(key, 0, -1, withscores=True) for key in indexes] == written
    shown = json.loads(cli("entries", "review", "--status", "pending", "--json").stdout)
    assert len(shown["entries"]) == 3


def test_data_of_schema_version_6_gets_its_number_indexes(cli: Cli, client: Any) -> None:
    """Version 7 indexes each list's exact numbers in digit order (a search by the start
    of a number reads it); migrate builds it from the entries, as the writers would
    have, and a search finds nothing until it is built."""
    written_by_this_release(cli)
    numbers = [f"+3369876{n:04d}" for n in range(300)]  # more than one chunk
    cli("import", "dnc", "-", input_text="\n".join(numbers) + "\n")
    cli("remove", "dnc", numbers[0], "--reason", "asked twice")  # removed: still indexed
    dnc = client.hget("{cs}:lists", "dnc")
    index = sorted(client.keys(f"{{cs}}:nx:{dnc}:*"))
    assert sum(client.zcard(k) for k in index) == 301
    client.delete(*client.keys(f"{{cs}}:n[dx]:{dnc}:*"))
    client.hset("{cs}:meta", "schema", "6")
    cli("entries", "dnc", "--search", "+336987", code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)["steps"]
    assert dry == ["7: number indexes: 301 numbers of 1 lists to index",
                   "8: the holders index: 301 numbers, 1 prefixes of 1 lists to index"]  # fmt: skip
    assert not client.keys(f"{{cs}}:nx:{dnc}:*")
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == [
        "7: number indexes: 301 numbers of 1 lists indexed",
        "8: the holders index: 301 numbers, 1 prefixes of 1 lists indexed",
    ]
    built = sorted(m for k in client.keys(f"{{cs}}:nx:{dnc}:*") for m in client.zrange(k, 0, -1))
    assert built == sorted(n[1:] for n in [NUM, *numbers])
    shown = json.loads(cli("entries", "dnc", "--search", "+3369876001", "--json").stdout)
    assert [e["entry"] for e in shown["entries"]] == numbers[10:20]
    assert "up to date" in cli("migrate").stdout


def test_data_of_schema_version_7_gets_its_holders_index(cli: Cli, client: Any) -> None:
    """Version 8 adds the holders index (which lists hold each number and prefix): the
    lookup refuses a lookup index of format 1 (a call gets the fail policy, never "not
    listed"); migrate builds the holders index from the entries, as the writers would
    have, and the lookup index's prefix lengths with it."""
    written_by_this_release(cli)
    cli("lists", "create", "review", "--action", "label")
    cli("import", "review", "-", input_text=f"{NUM}\n+33698765433\n+3370*\n")
    cli("approve", "review", NUM, "+33698765433", "+3370*")
    dnc, review = client.hget("{cs}:lists", "dnc"), client.hget("{cs}:lists", "review")
    written = {key: client.hgetall(key) for key in client.scan_iter(match="{cs}:n:*")}
    assert written["{cs}:n:p"] == {"3361": dnc, "3370": review}
    assert sorted(v for h in written.values() for v in h.values()) == [
        dnc, f"{dnc},{review}", review, review,
    ]  # fmt: skip
    index = client.hgetall("{cs}:lk")
    client.delete(*written)
    client.hdel("{cs}:lk", "pl")
    client.hset("{cs}:lk", mapping={"v": "1", "px": f",{dnc},{review},"})
    client.hset("{cs}:meta", "schema", "7")
    cli("check", NUM, code=EXIT_SCHEMA)
    dry = json.loads(cli("migrate", "--dry-run", "--json").stdout)["steps"]
    assert dry == ["8: the holders index: 2 numbers, 2 prefixes of 2 lists to index"]
    assert not any(client.scan_iter(match="{cs}:n:*"))
    steps = json.loads(cli("migrate", "--json").stdout)["steps"]
    assert steps == ["8: the holders index: 2 numbers, 2 prefixes of 2 lists indexed"]
    assert {key: client.hgetall(key) for key in client.scan_iter(match="{cs}:n:*")} == written
    assert client.hgetall("{cs}:lk") == index
    assert "BLOCKED" in cli("check", NUM, "--direction", "outbound").stdout
    assert "LABELED" in cli("check", "+33701112222", "--direction", "outbound").stdout
    assert "up to date" in cli("migrate").stdout


def test_a_lookup_index_of_format_1_is_refused_by_the_lookup(redis_url: str, client: Any) -> None:
    """A gateway or replica that reads data not migrated yet answers the fail policy
    rather than miss the entries the holders index does not name yet."""
    import asyncio

    from callscreen.callpath.decision import ScreenRequest
    from callscreen.callpath.screener import Screener
    from callscreen.core.config import Settings
    from callscreen.core.model import Direction

    client.hset("{cs}:lk", mapping={"v": "1", "buckets": "32768", "px": ","})
    settings = Settings(_env_file=None, redis_url=redis_url, default_region="FR")  # type: ignore[call-arg]

    async def screen() -> Any:
        screener = Screener.from_settings(settings)
        try:
            return await screener.screen(ScreenRequest(NUM, Direction.OUTBOUND))
        finally:
            await screener.close()

    decision = asyncio.run(screen())
    assert decision.failed and "migrate" in decision.reason


def test_an_empty_redis_needs_no_migration(cli: Cli) -> None:
    assert "no data yet" in cli("migrate", "--dry-run").stdout
    cli("lists", "ls")


def test_commands_refuse_older_data_until_migrated(
    cli: Cli, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_by_this_release(cli)
    client.hset("{cs}:meta", "schema", "1")
    runs: list[bool] = []

    async def step(table: Table, dry_run: bool) -> str:
        runs.append(dry_run)
        lists = await table.r.hlen(table.keys.lists)
        if not dry_run:
            await table.r.hset(table.keys.meta, "step2", "done")
        return f"{lists} lists looked at"

    monkeypatch.setattr(schema_keys, "SCHEMA_VERSION", "2")
    monkeypatch.setattr(migrations, "MIGRATIONS", [Migration(2, "an example step", step)])

    refused = cli("lists", "ls", code=EXIT_SCHEMA)
    assert refused.stderr.count("\n") == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: callscreen lists ls: ")
    assert "schema version 1" in refused.stderr and "callscreen migrate" in refused.stderr
    assert "callscreen add:" in cli("add", "dnc", NUM, code=EXIT_SCHEMA).stderr

    dry = cli("migrate", "--dry-run").stdout
    assert "would upgrade schema version 1 to 2" in dry and "1 lists looked at" in dry
    assert client.hget("{cs}:meta", "schema") == "1" and not client.hget("{cs}:meta", "step2")
    assert "upgraded schema version 1 to 2" in cli("migrate", "--by", "ops").stdout
    assert client.hget("{cs}:meta", "schema") == "2" and runs == [True, False]
    assert "up to date" in cli("migrate").stdout  # again: nothing done
    assert runs == [True, False]
    assert "dnc" in cli("lists", "ls").stdout
    history = json.loads(cli("history", "--json").stdout)
    assert (history[0]["op"], history[0]["by"]) == ("migrate", "ops")


def test_serve_refuses_older_data_with_the_migrate_exit_code(cli: Cli, client: Any) -> None:
    written_by_this_release(cli)
    client.hset("{cs}:meta", "schema", "1")
    refused = cli("serve", code=EXIT_SCHEMA)
    assert "callscreen serve: " in refused.stderr and "callscreen migrate" in refused.stderr


def test_newer_data_is_refused_too(cli: Cli, client: Any) -> None:
    written_by_this_release(cli)
    client.hset("{cs}:meta", "schema", "99")
    newer = cli("lists", "ls", code=EXIT_REFUSED)
    assert "newer than this release" in newer.stderr
    cli("migrate", code=EXIT_REFUSED)


async def test_the_gateway_refuses_to_serve_older_data(redis_url: str) -> None:
    from callscreen.core.errors import SchemaTooOld
    from callscreen.gateway.serve import Gateway
    from tests.test_operations import ops_settings

    settings = ops_settings(redis_url)
    seed = redis.asyncio.Redis.from_url(redis_url)
    await seed.hset("{cs}:meta", "schema", "0")
    await seed.aclose()
    gateway = Gateway(settings, load_settings=lambda: settings)
    with pytest.raises(SchemaTooOld, match=r"callscreen serve: .*callscreen migrate"):
        async with gateway:
            pass
    assert gateway.server.sockets == ()  # never listened
