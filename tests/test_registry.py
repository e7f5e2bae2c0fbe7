"""The US National Do Not Call Registry's files in a registry list (synthetic files only),
against a real Redis: formats, full loads replacing area codes, change files, the lookup
in the same round trip, the exemption of the company's allow entries, read-only lists."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.screener import Screener
from callscreen.cli import app
from callscreen.cli.exits import EXIT_INVALID, EXIT_REFUSED
from callscreen.core.config import Settings
from callscreen.core.errors import Refused
from callscreen.core.model import Action, Direction, Result
from callscreen.services.importer import ImportOptions
from callscreen.services.registry import FileResult, read_changes, read_full
from tests.support.blocking import SyncAdmin

OUT, IN = Direction.OUTBOUND, Direction.INBOUND
DAY = date(2026, 11, 30)


def make_settings(url: str) -> Settings:
    return Settings(_env_file=None, redis_url=url, default_region="US")  # type: ignore[call-arg]


@pytest.fixture
def admin(redis_url: str) -> Iterator[SyncAdmin]:
    with SyncAdmin(make_settings(redis_url)) as admin:
        yield admin


def load(admin: SyncAdmin, paths: list[str], *, by: str = "", **kw: Any) -> list[FileResult]:
    """``registry load us`` through the registry service, as ``by``."""
    return admin.run(admin.acting(by).registry.load("us", paths, **kw))


def update(admin: SyncAdmin, paths: list[str], *, by: str = "", **kw: Any) -> list[FileResult]:
    """``registry update us`` through the registry service, as ``by``."""
    return admin.run(admin.acting(by).registry.update("us", paths, **kw))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_file_formats_parse_without_a_parse_per_row() -> None:
    result = FileResult("f", "full")
    maps = read_full(
        b"Phone Number\n2025550145\r\n202,5550146\n\n2025550145\n1025550145\n20255501\n"
        b"x202555014\n2125550000\n",
        result,
    )
    assert (result.lines, result.rejected) == (4, 3)
    assert set(maps) == {b"202555", b"212555"}
    bits = maps[b"202555"]
    assert bits[145 >> 3] & (0x80 >> (145 & 7)) and bits[146 >> 3] & (0x80 >> (146 & 7))
    changes = FileResult("c", "changes")
    got = read_changes(
        b"number,change\n2025550145,A\n202,5550146,delete\n2025550147,add\n2025550148,x\n",
        changes,
    )
    assert got == [(b"2025550145", True), (b"2025550146", False), (b"2025550147", True)]
    assert changes.rejected == 1
    marked = FileResult("m", "changes")
    assert read_changes(b"D\n2025550145\n202,5550146\n", marked) == [
        (b"2025550145", False),
        (b"2025550146", False),
    ]
    unmarked = FileResult("u", "changes")
    assert read_changes(b"2025550145\n", unmarked) == [] and unmarked.rejected == 1


async def test_load_update_and_lookup_in_one_round_trip(
    admin: SyncAdmin, redis_url: str, tmp_path: Path
) -> None:
    full = write(tmp_path / "202.txt", "2025550145\n2025550146\n202,5550147\n2035550100\n")
    (result,) = load(admin, [full], file_date=DAY, by="ops")
    assert (result.lines, result.added, result.removed, result.area_codes) == (4, 4, 0, 2)
    view = admin.show_list("us-dnc")
    assert (view.action, view.direction, view.counts["active"]) == (Action.BLOCK, OUT, 4)

    check = admin.check("+1 202 555 0145", OUT)
    assert (check.result, check.list_name, check.match) == ("BLOCKED", "us-dnc", "+12025550145")
    assert check.matches[0].kind == "registry"
    assert "National Do Not Call Registry, file of 2026-11-30" in check.reason
    assert (admin.check("+12025550148", OUT)).result == "ALLOWED"
    assert (admin.check("+12025550145", IN)).result == "ALLOWED"  # outbound list
    assert (admin.check("+33123456789", OUT)).result == "ALLOWED"

    # one round trip a decision, as without a registry
    screener = Screener.from_settings(make_settings(redis_url))
    try:
        decision = await screener.screen(ScreenRequest("+12025550145", OUT))
        assert decision.result is Result.BLOCKED and screener.client.requests == 1
    finally:
        await screener.close()

    # a change file: one deletion, one addition, one repeat (counted once)
    changes = write(tmp_path / "chg.txt", "2025550145,D\n2025550199,A\n2025550146,A\n")
    (applied,) = update(admin, [changes], file_date=DAY)
    assert (applied.added, applied.removed) == (1, 1)
    assert (admin.check("+12025550145", OUT)).result == "ALLOWED"
    assert (admin.check("+12025550199", OUT)).result == "BLOCKED"
    assert admin.show_list("us-dnc").counts["active"] == 4

    # a full file of area code 202 replaces 202 only: 203 stays
    again = write(tmp_path / "202b.txt", "2025550001\n")
    (reload,) = load(admin, [again], file_date=DAY)
    assert (reload.added, reload.removed, reload.listed) == (1, 3, 1)
    assert (admin.check("+12025550146", OUT)).result == "ALLOWED"
    assert (admin.check("+12035550100", OUT)).result == "BLOCKED"
    assert admin.show_list("us-dnc").counts["active"] == 2

    # each file is one audit event with its counts
    events = admin.history("us-dnc")
    assert [e.op for e in events[:3]] == ["registry-load", "registry-update", "registry-load"]
    assert events[0].count == 4 and "202b.txt" in events[0].detail and events[0].by


async def test_allow_entries_override_the_registry_but_never_company_blocks(
    admin: SyncAdmin, tmp_path: Path
) -> None:
    load(admin, [write(tmp_path / "f.txt", "2025550145\n2025550146\n")], file_date=DAY)
    admin.create_list("customers", Action.ALLOW)
    admin.add("customers", ["+12025550145", "+1202555014*"], reason="existing customer")
    admin.create_list("own-dnc", Action.BLOCK)
    admin.add("own-dnc", ["+12025550146"], reason="asked us to stop")

    exempt = admin.check("+12025550145", OUT)
    assert (exempt.result, exempt.list_name) == ("ALLOWED", "customers")
    assert "established business relationship" in exempt.explanation
    own = admin.check("+12025550146", OUT)  # an allow prefix, a registry listing
    assert (own.result, own.list_name) == ("BLOCKED", "own-dnc")  # and the company's block


def test_a_registry_list_is_read_only_to_other_commands(admin: SyncAdmin, tmp_path: Path) -> None:
    load(admin, [write(tmp_path / "f.txt", "2025550145\n")])
    with pytest.raises(Refused, match="registry"):
        admin.add("us-dnc", ["+12025550100"])
    with pytest.raises(Refused, match="registry"):
        admin.remove("us-dnc", ["+12025550145"], reason="x")
    with pytest.raises(Refused, match="registry"):
        admin.delete_list("us-dnc")
    with pytest.raises(Refused, match="registry"):
        admin.update_list("us-dnc", direction=Direction.BOTH)
    with pytest.raises(Refused, match="registry"):
        admin.approve("us-dnc", ["+12025550145"])
    with pytest.raises(Refused, match="registry"):
        admin.import_file("us-dnc", write(tmp_path / "i.csv", "+12025550100\n"), ImportOptions())
    # reading it is allowed
    assert admin.show_list("us-dnc").counts["active"] == 1
    assert [e.op for e in admin.history("us-dnc")][:2] == ["registry-load", "create"]
    admin.create_list("mine", Action.BLOCK)
    with pytest.raises(Refused, match="not the US registry"):
        load(admin, [str(tmp_path / "f.txt")], list_name="mine")


def test_bytes_per_number_at_registry_density(
    admin: SyncAdmin, redis_url: str, tmp_path: Path
) -> None:
    rng = random.Random(3)
    numbers = []
    for exchange in range(200):  # 200 exchanges of area code 212, 7.5 % of each listed
        lines = rng.sample(range(10_000), 750)
        numbers += [f"212{200 + exchange}{line:04d}" for line in lines]
    path = write(tmp_path / "212.txt", "\n".join(numbers) + "\n")
    r = redis.Redis.from_url(redis_url)
    before = int(r.info("memory")["used_memory"])
    (result,) = load(admin, [path])
    used = int(r.info("memory")["used_memory"]) - before
    assert result.listed == len(numbers) == 150_000
    print(f"\n{used / len(numbers):.2f} B a registry number, {result.rate:,.0f} numbers/s")
    assert used / len(numbers) < 4


def test_cli_registry_load_and_update(redis_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--redis-url", redis_url, "--region", "US"]
    full = write(tmp_path / "202.txt", "202,5550145\n202,5550146\n")
    out = runner.invoke(
        app, [*base, "registry", "load", "us", full, "--json", "--date", "2026-11-30"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["files"][0]["added"] == 2
    changes = write(tmp_path / "del.txt", "deletions\n2025550145\n")
    out = runner.invoke(app, [*base, "registry", "update", "us", changes])
    assert out.exit_code == 0 and "-1 no longer listed" in out.output, out.output
    out = runner.invoke(app, [*base, "check", "+12025550146", "--direction", "outbound", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["matches"][0]["kind"] == "registry"
    out = runner.invoke(app, [*base, "registry", "load", "uk", full])
    assert out.exit_code == EXIT_INVALID and "unknown registry" in out.output, out.output
    out = runner.invoke(app, [*base, "registry", "load", "us", full, "--date", "30/11/2026"])
    assert out.exit_code == EXIT_INVALID and "--date" in out.output, out.output
    out = runner.invoke(app, [*base, "add", "us-dnc", "+12025550100", "--reason", "x"])
    assert out.exit_code == EXIT_REFUSED and "registry" in out.output, out.output
