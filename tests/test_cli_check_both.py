"""``check --direction both`` prints both decisions; ``entries --limit 0`` the totals."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from callscreen.cli import app

NUM = "+33612345678"


def test_check_both_directions_and_entries_limit_zero(redis_url: str) -> None:
    env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    cli("lists", "create", "dnc", "--action", "block", "--direction", "outbound")
    cli("add", "dnc", NUM, "+33612345679", "--reason", "asked us")

    both = json.loads(cli("check", NUM, "--direction", "both", "--json"))
    assert [(r["direction"], r["result"]) for r in both] == [
        ("inbound", "ALLOWED"),
        ("outbound", "BLOCKED"),
    ]
    text = cli("check", NUM, "--direction", "both")
    allowed, blocked = text.index("ALLOWED"), text.index("BLOCKED")
    assert allowed < blocked and "lists that apply (inbound)" in text
    assert "lists that apply (outbound): dnc" in text

    page = json.loads(cli("entries", "dnc", "--limit", "0", "--json"))
    assert (page["total"], page["entries"]) == (2, [])
    assert "showing none of 2" in cli("entries", "dnc", "--limit", "0")
