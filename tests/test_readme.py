"""Every shell block of the README runs as written on a fresh install.

Each ```sh block is run by ``bash -e`` in an empty directory of its own, with the
installed ``callscreen`` on PATH (and ``.venv`` there, as in a checkout) and a fresh
Redis: the private one ``scripts/serve`` would start, on ``var/redis/redis.sock``, for
the quick start; ``CALLSCREEN_REDIS_URL`` for the others, as a site sets it. Blocks
preceded by ``<!-- readme-test: skip (why) -->`` are not run: the reason says why
(a server that runs until stopped, the whole test suite).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
_BLOCK = re.compile(
    r"(<!-- readme-test: skip \((?P<why>[^)]*)\) -->\n)?```sh\n(?P<body>.*?)```", re.S
)

pytestmark = pytest.mark.slow


def blocks() -> list[tuple[int, str, str]]:
    """(line, body, skip reason or '') of every ```sh block."""
    text = README.read_text()
    return [
        (text.count("\n", 0, m.start("body")) + 1, m["body"], m["why"] or "")
        for m in _BLOCK.finditer(text)
    ]


def test_the_readme_has_runnable_blocks_and_says_why_others_are_not_run() -> None:
    found = blocks()
    assert len([b for b in found if not b[2]]) >= 2
    assert all(why for _, _, why in found if why)


@pytest.mark.timeout(300)  # a command's start-up is most of it: ~20 commands
@pytest.mark.parametrize(("line", "body", "why"), blocks(), ids=lambda v: str(v)[:12])
def test_a_readme_block_runs_as_written(
    line: int, body: str, why: str, tmp_path: Path, redis_url: str
) -> None:
    if why:
        pytest.skip(f"README line {line}: {why}")
    (tmp_path / ".venv").symlink_to(BIN.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(tmp_path)
    private = None
    if "var/redis/redis.sock" in body:
        sock = tmp_path / "var" / "redis" / "redis.sock"
        sock.parent.mkdir(parents=True)
        private = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
             "--dir", str(sock.parent)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(unix_socket_path=str(sock))
        for _ in range(200):
            try:
                client.ping()
                break
            except (redis.ConnectionError, OSError):
                subprocess.run(["sleep", "0.05"], check=True)
        client.close()
    else:
        env["CALLSCREEN_REDIS_URL"] = redis_url
    try:
        proc = subprocess.run(
            ["bash", "-e", "-c", body],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        if private is not None:
            private.terminate()
            private.wait(10)
    assert proc.returncode == 0, f"README line {line}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
