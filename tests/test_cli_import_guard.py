"""``import --replace`` on the command line: a refused sweep exits 5 and says why."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import EXIT_REFUSED


def test_import_replace_refusals_exit_refused(redis_url: str, tmp_path: Path) -> None:
    env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result.output

    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", "+33612345671", "+33612345672", "+33612345673")
    empty, one = tmp_path / "empty.csv", tmp_path / "one.csv"
    empty.write_text("")
    one.write_text("+33612345671\n")
    out = cli("import", "dnc", str(empty), "--replace", "--no-progress", code=EXIT_REFUSED)
    assert "the file names no entry" in out and "--allow-empty" in out
    out = cli("import", "dnc", str(one), "--replace", "--no-progress", code=EXIT_REFUSED)
    assert "would remove 2 of the list's 3 live entries" in out
    assert "3 active" in cli("entries", "dnc")
    out = cli("import", "dnc", str(one), "--replace", "--max-remove", "70", "--no-progress")
    assert "removed    2 not in the file" in out
    out = cli("import", "dnc", str(empty), "--replace", "--allow-empty", "--no-progress")
    assert "removed    1 not in the file" in out
