"""The command line against a real Redis: exit codes, --json, errors on stderr."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import (
    EXIT_CONFLICT,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
)
from tests.support.redisproc import free_port

NUM = "+33612345678"


class Cli:
    """Runs ``callscreen`` in-process with CALLSCREEN_REDIS_URL set."""

    def __init__(self, redis_url: str) -> None:
        self.env = {"CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(redis_url: str) -> Cli:
    return Cli(redis_url)


def test_minimal_flow_create_add_check(cli: Cli) -> None:
    out = cli("lists", "create", "dnc", "--action", "block", "--direction", "inbound").stdout
    assert "created list dnc" in out
    out = cli("add", "dnc", NUM, "06 98 76 54 32", "+3389*", "--reason", "asked us").stdout
    assert "dnc: 3 added" in out
    out = cli("add", "dnc", NUM, "--external-id", "T-1").stdout
    assert f"{NUM}: updated (already in the list)" in out

    check = cli.json("check", "06 12 34 56 78")
    assert (check["result"], check["list_name"], check["match"]) == ("BLOCKED", "dnc", NUM)
    assert check["reason"] == "asked us" and check["matches"][0]["decides"] is True
    text = cli("check", NUM).stdout
    assert text.startswith(f"BLOCKED  {NUM}") and "why:" in text
    assert cli.json("check", NUM, "--direction", "outbound")["result"] == "ALLOWED"


def test_scrub_answers_each_number_of_a_lead_file(cli: Cli, tmp_path: Any) -> None:
    cli("lists", "create", "dnc", "--action", "block")
    cli("lists", "create", "spring-dnc", "--action", "block", "--campaign-only")
    cli("campaigns", "assign", "spring", "spring-dnc")
    cli("add", "dnc", NUM, "+3389*", "--reason", "=asked us")
    cli("add", "spring-dnc", "+33622222222", "--reason", "campaign")
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "phone,name\n"
        f"{NUM},Ann\n"
        "\n"
        "06 12 34 56 78,Bob\n"
        "+33891234567,Cy\n"
        "+33622222222,Di\n"
        "=HYPERLINK(1),Eve\n"
        "+33655555555,Flo\n"
    )
    out = tmp_path / "scrubbed.csv"
    result = cli("scrub", str(leads), "--campaign", "spring", "--output", str(out))
    rows = out.read_text().splitlines()
    assert rows[0] == "input,result,label,number,list,entry,reason"
    assert rows[1:] == [
        f"{NUM},BLOCKED,Blacklisted,{NUM},dnc,{NUM},'=asked us",
        f"06 12 34 56 78,BLOCKED,Blacklisted,{NUM},dnc,{NUM},'=asked us",
        "+33891234567,BLOCKED,Blacklisted,+33891234567,dnc,+3389*,'=asked us",
        "+33622222222,BLOCKED,Blacklisted,+33622222222,spring-dnc,+33622222222,campaign",
        "'=HYPERLINK(1),ALLOWED,,,,,not a phone number: '=HYPERLINK(1)'",
        "+33655555555,ALLOWED,,+33655555555,,,",
    ]
    assert result.stderr.strip() == (
        "scrubbed 6 numbers (outbound, campaign spring): ALLOWED 2, BLOCKED 4"
    )
    # without the campaign, and as POST /check's document
    doc = cli.json("scrub", str(leads))
    cli("scrub", str(leads), "--json", "-o", str(out))
    assert json.loads(out.read_text()) == doc
    assert doc["counts"] == {"BLOCKED": 3, "ALLOWED": 3}
    assert doc["decisions"][3] == {
        "input": "+33622222222",
        "result": "ALLOWED",
        "label": "",
        "number": "+33622222222",
        "list": "",
        "entry": "",
        "reason": "",
    }
    piped = cli.runner.invoke(app, ["scrub", "-"], env=cli.env, input=f"{NUM}\r\n+33655555555\r\n")
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.splitlines()[1:] == [
        f"{NUM},BLOCKED,Blacklisted,{NUM},dnc,{NUM},'=asked us",
        "+33655555555,ALLOWED,,+33655555555,,,",
    ]
    missing = cli("scrub", str(tmp_path / "nope.csv"), code=2)
    assert "nope.csv" in missing.stderr and "Traceback" not in missing.stderr
    binary = tmp_path / "leads.xlsx"
    binary.write_bytes(b"0612345678\n\xff\xfe\x00garbage\n")
    refused = cli("scrub", str(binary), "-o", str(out), code=EXIT_INVALID)
    assert refused.stderr == "error: line 2 of the file is not UTF-8 text\n"
    assert "Traceback" not in refused.stderr


def test_read_commands_have_json(cli: Cli) -> None:
    cli("lists", "create", "dnc", "--action", "block", "--description", "opt-outs")
    cli("lists", "create", "camp-only", "--action", "label", "--campaign-only")
    cli("add", "dnc", NUM, "--by", "alice", "--expires", "30d")
    cli("campaigns", "assign", "sales", "camp-only", "camp-only", "dnc")

    lists = cli.json("lists", "ls")
    assert [(item["name"], item["campaigns"]) for item in lists] == [
        ("camp-only", ["sales"]),
        ("dnc", ["sales"]),
    ]
    shown = cli.json("lists", "show", "dnc")
    assert shown["counts"]["active"] == 1 and shown["counts"]["total"] == 1
    assert shown["description"] == "opt-outs" and shown["campaigns"] == ["sales"]
    page = cli.json("entries", "dnc")
    assert page["total"] == 1 and page["entries"][0]["updated_by"] == "alice"
    assert page["entries"][0]["expires"].endswith("Z")
    assert cli.json("campaigns", "show", "sales")["lists"] == ["camp-only", "dnc"]
    assert cli.json("campaigns", "ls") == [
        {"name": "sales", "lists": ["camp-only", "dnc"], "global_lists": []}
    ]
    history = cli.json("history", "dnc")
    assert [event["op"] for event in history] == ["add", "create"]
    assert history[0]["by"] == "alice"
    assert cli.json("history", "dnc", NUM)[0]["entries"] == [NUM]
    assert cli.json("history")[0]["op"] == "assign"


def test_permanent_entries_are_refused(cli: Cli) -> None:
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "+33*")
    cli("approve", "dnc", NUM, "--permanent")
    result = cli("remove", "dnc", NUM, "--reason", "x", code=EXIT_REFUSED)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "permanently approved" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    cli("unapprove", "dnc", NUM, code=EXIT_REFUSED)
    assert "needs --yes" in cli("lists", "delete", "dnc", code=EXIT_REFUSED).stderr
    deleted = cli("lists", "delete", "dnc", "--yes", code=EXIT_REFUSED)
    assert "permanently approved" in deleted.stderr
    # a whole country code needs explicit confirmation (no terminal to ask)
    refused = cli("approve", "dnc", "+33*", "--permanent", code=EXIT_REFUSED)
    assert "--confirm-country" in refused.stderr
    assert cli.json("entries", "dnc", "--status", "permanent")["total"] == 1
    cli("approve", "dnc", "+33*", "--permanent", "--confirm-country")
    assert cli.json("entries", "dnc", "--status", "permanent")["total"] == 2


def test_add_on_a_permanent_entry_says_permanent_unchanged(cli: Cli) -> None:
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "--reason", "court order", "--external-id", "CASE-1")
    cli("approve", "dnc", NUM, "--permanent")
    out = cli("add", "dnc", NUM, "--expires", "0d").stdout
    assert f"{NUM}: permanent, unchanged" in out
    assert "dnc: 1 permanent, unchanged" in out
    assert "do not match" not in out
    data = cli.json("add", "dnc", NUM, "--reason", "new", "--external-id", "CASE-2")
    assert data["entries"] == {NUM: "permanent-unchanged"}
    assert data["outcomes"] == {"permanent-unchanged": 1} and data["changed"] == 0
    [entry] = cli.json("entries", "dnc")["entries"]
    assert (entry["status"], entry["reason"], entry["external_id"], entry["expires"]) == (
        "permanent",
        "court order",
        "CASE-1",
        None,
    )


def test_remove_restore_and_purge(cli: Cli) -> None:
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM)
    removed = json.loads(cli("remove", "dnc", NUM, "--reason", "court order", "--json").stdout)
    assert removed["outcomes"] == {"removed": 1} and removed["reason"] == "court order"
    assert cli.json("check", NUM)["result"] == "ALLOWED"
    entry = cli.json("entries", "dnc", "--status", "deleted")["entries"][0]
    assert entry["removed_reason"] == "court order" and entry["removed_at"]
    assert "restored" in cli("restore", "dnc", NUM).stdout
    assert cli.json("check", NUM)["result"] == "BLOCKED"
    assert "nothing to do" in cli("purge", "dnc", "--before", "2100-01-01").stdout
    cli("purge", "dnc", "--before", "someday", code=EXIT_INVALID)


def test_pending_entries_show_in_check(cli: Cli, redis_url: str) -> None:
    from callscreen.core.config import Settings
    from tests.support.blocking import SyncAdmin as Admin
    from tests.test_services import add_pending

    cli("lists", "create", "dnc", "--action", "block")
    with Admin(Settings(redis_url=redis_url, default_region="FR")) as admin:
        add_pending(admin, "dnc", NUM)
    check = cli.json("check", NUM)
    assert check["result"] == "ALLOWED"
    assert check["matches"][0]["status"] == "pending"
    assert check["matches"][0]["enforced"] is False
    assert "pending (not enforced)" in cli("check", NUM).stdout
    assert "1 pending" in cli("lists", "show", "dnc").stdout
    cli("approve", "dnc", "--all-pending")
    assert cli.json("check", NUM)["result"] == "BLOCKED"


def test_not_found_invalid_input_conflict_and_refusal_have_their_codes(cli: Cli) -> None:
    missing = cli("lists", "show", "nope", code=EXIT_NOT_FOUND)
    assert missing.stderr == "error: no list named 'nope'\n"
    cli("lists", "create", "dnc", "--action", "block")
    cli("lists", "create", "dnc", "--action", "block", code=EXIT_CONFLICT)
    bad = cli("add", "dnc", "not-a-number", code=EXIT_INVALID)
    assert "not a phone number" in bad.stderr and bad.stdout == ""
    cli("add", "dnc", NUM, "--expires", "soon", code=EXIT_INVALID)
    cli("lists", "create", "x" * 501, "--action", "block", code=EXIT_INVALID)
    cli("campaigns", "assign", "sales", "nope", code=EXIT_NOT_FOUND)
    cli("history", "nope", code=EXIT_NOT_FOUND)
    cli("add", "dnc", NUM)
    cli("approve", "dnc", NUM, "--permanent")
    cli("remove", "dnc", NUM, "--reason", "x", code=EXIT_REFUSED)
    cli("approve", "dnc", "+33*", "--permanent", code=EXIT_REFUSED)  # needs confirmation


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli("lists", "create", "x", "--action", "maybe", code=2)
    cli("lists", "create", "x", code=2)  # --action is required
    cli("add", "dnc", code=2)
    cli("remove", "dnc", NUM, code=2)  # --reason is required
    cli("check", NUM, "--direction", "sideways", code=2)
    cli("entries", "dnc", "--status", "nonsense", code=2)
    cli("no-such-command", code=2)


def test_help_documents_exit_codes(cli: Cli) -> None:
    out = cli("--help").stdout
    assert "Exit codes: 0 ok; 1 failed; 2 usage error; 3 invalid input" in out
    assert "75 Redis unavailable, retry later" in out


def test_global_options_override_the_environment(cli: Cli, redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = cli("--redis-url", dead, "lists", "ls", code=EXIT_UNAVAILABLE)
    assert result.stderr.startswith("error: Redis unavailable") and "Traceback" not in result.stderr
    checked = cli("--redis-url", dead, "check", NUM, code=EXIT_UNAVAILABLE)
    assert checked.stderr.startswith("error: ") and checked.stderr.count("\n") == 1
    assert cli("--redis-url", redis_url, "lists", "ls").stdout == "no lists\n"
    cli("lists", "create", "dnc", "--action", "block")
    cli("--region", "US", "add", "dnc", "(202) 555-0100")
    assert cli.json("entries", "dnc")["entries"][0]["entry"] == "+12025550100"
    invalid = cli("--region", "France", "lists", "ls", code=EXIT_INVALID)
    assert "invalid settings" in invalid.stderr


def test_console_script_end_to_end(redis_url: str) -> None:
    env = {**os.environ, "CALLSCREEN_REDIS_URL": redis_url, "CALLSCREEN_DEFAULT_REGION": "FR"}
    run = [sys.executable, "-c", "from callscreen.cli import main; main()"]

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run, *args], env=env, capture_output=True, text=True, timeout=30)

    assert call("lists", "create", "dnc", "--action", "block").returncode == 0
    assert call("add", "dnc", NUM).returncode == 0
    checked = call("check", NUM, "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["result"] == "BLOCKED"
    refused = call("lists", "show", "nope")
    assert (refused.returncode, refused.stdout) == (EXIT_NOT_FOUND, "")
    assert refused.stderr == "error: no list named 'nope'\n"
    usage = call("lists", "create", "x", "--action", "maybe")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_json_has_one_name_per_field_and_one_time_format(cli: Cli) -> None:
    """``list_name`` everywhere a list is named by an output, and every time in ISO 8601
    UTC with milliseconds."""
    import re

    moment = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
    cli("lists", "create", "dnc", "--action", "block")
    cli("add", "dnc", NUM, "--expires", "2031-01-31")
    cli("remove", "dnc", NUM, "--reason", "gone")
    shown = cli.json("lists", "show", "dnc")
    page = cli.json("entries", "dnc")
    [entry] = page["entries"]
    [event, *_] = cli.json("history", "dnc")
    assert page["list_name"] == "dnc" and "list" not in page
    assert event["list_name"] == "dnc" and "list" not in event
    assert cli.json("check", NUM)["list_name"] == ""
    times = [shown["created_at"], shown["updated_at"], event["at"]]
    times += [entry[k] for k in ("expires", "created_at", "updated_at", "removed_at")]
    assert all(moment.match(t) for t in times), times
    assert entry["removed_reason"] == "gone" and "removal_reason" not in entry


def test_arguments_that_are_not_utf8_are_refused_clearly(redis_url: str) -> None:
    # what a Latin-1 terminal sends for "Crédit": a lone 0xE9 byte
    for args in ([b"add", b"dnc", b"+33123456789", b"--reason", b"Cr\xe9dit"],):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"callscreen", *args],
            capture_output=True,
            env={**os.environ, "CALLSCREEN_REDIS_URL": redis_url},
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.decode().startswith(f"error: argument {len(args)} is not valid UTF-8")
        assert b"internal error" not in done.stderr and b"Traceback" not in done.stderr


def test_campaign_lists_added_and_removed_one_by_one(cli: Cli) -> None:
    for name in ("a", "b", "c"):
        cli("lists", "create", name, "--action", "block", "--campaign-only")
    cli("campaigns", "assign", "sales", "a")
    assert cli.json("campaigns", "add", "sales", "b", "c", "b")["lists"] == ["a", "b", "c"]
    assert cli.json("campaigns", "add", "sales", "a")["lists"] == ["a", "b", "c"]
    assert cli.json("campaigns", "remove", "sales", "b")["lists"] == ["a", "c"]
    cli("campaigns", "add", "sales", "nope", code=EXIT_NOT_FOUND)
    # a campaign-only block list with a permanent entry stays with its campaign
    cli("add", "c", NUM)
    cli("approve", "c", NUM, "--permanent")
    refused = cli("campaigns", "remove", "sales", "c", code=EXIT_REFUSED)
    assert "permanent" in refused.stderr
    assert cli("campaigns", "remove", "sales", "a", "--by", "alice").stdout.startswith(
        "campaign sales: c"
    )
    trail = cli.json("history")
    assigned = [(event["by"], event["detail"]) for event in trail if event["op"] == "assign"]
    assert assigned[0] == ("alice", "sales: - a (now c)")  # newest first; the refusal left none
    assert (getpass.getuser(), "sales: + b, c (now a, b, c)") in assigned
