"""The README's HTTP API session, run as it is written: a real ``callscreen api``
process, the real CLI, curl, a real redis-server. (tests/test_readme.py skips this
block: it leaves the API running, which this test stops.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redisproc import free_port

ROOT = Path(__file__).resolve().parent.parent


def api_session() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def documents(text: str) -> list[object]:
    """The JSON documents curl printed one after the other (no newline between)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        found.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


@pytest.mark.timeout(90)
def test_the_readme_curl_session_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    script = api_session()
    assert "apikeys create" in script and "--quiet" in script and "/optouts" in script
    env = {
        **os.environ,
        "CALLSCREEN_REDIS_URL": redis_url,
        "CALLSCREEN_API_PORT": str(free_port()),
        "CALLSCREEN_SPOOL_DIR": "",
        "CALLSCREEN_API_DATA_DIR": str(tmp_path / "api"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=out_file,
            stderr=err_file,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=60)
        finally:
            # the session leaves `callscreen api` running in the background: stop its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    out, err = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 0, err
    assert out.startswith("{"), (out, err)
    added, checked, opted = documents(out)
    assert [o["outcome"] for o in added["outcomes"]] == ["added", "added"]
    results = [(d["result"], d["list"], d["entry"]) for d in checked["decisions"]]
    assert results == [
        ("BLOCKED", "dnc", "+33123456789"),
        ("BLOCKED", "dnc", "+1900*"),
        ("ALLOWED", "", ""),
    ]
    assert opted["recorded"] is True and opted["list"] == "do-not-call"
