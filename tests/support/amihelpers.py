"""What the AMI-side tests share: settings with the AMI fields, and call files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from callscreen.core.config import Settings


def make_settings(redis_url: str = "redis://127.0.0.1:1/0", **overrides: Any) -> Settings:
    """``Settings`` without ``.env``, for the tests: no spool directory that exists, a
    shorter AMI timeout and reconnect delay."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "default_region": "FR",
        "deadline_ms": 5_000,
        "spool_dir": "/nonexistent/callscreen-test-spool",
        "ami_timeout_s": 3.0,
        "ami_reconnect_s": 0.1,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def ami_overrides(port: int, **more: Any) -> dict[str, Any]:
    return {
        "ami_host": "127.0.0.1",
        "ami_port": port,
        "ami_username": "callscreen",
        "ami_secret": "s3cret",
        **more,
    }


def write_call_file(
    spool: Path,
    name: str,
    channel: str,
    *,
    callerid: str = '"Sales" <+33140000000>',
    extension: str = "s",
    context: str = "campaign-out",
    due_in: float = 3600.0,
    extra: str = "",
) -> Path:
    """A call file as a dialer writes it: written aside, then moved into the spool,
    with its time set ``due_in`` seconds from now (negative: already due)."""
    text = (
        f"Channel: {channel}\n"
        f"CallerID: {callerid}\n"
        "MaxRetries: 2\n"
        "RetryTime: 60\n"
        "WaitTime: 30\n"
        f"Context: {context}\n"
        f"Extension: {extension}\n"
        "Priority: 1\n"
        f"{extra}"
    )
    staging = spool.parent / f".{name}.tmp"
    staging.write_text(text)
    when = time.time() + due_in
    os.utime(staging, (when, when))
    path = spool / name
    os.replace(staging, path)
    return path


def mark_dialing(path: Path, retry_in: float = 60.0) -> None:
    """What Asterisk does when it starts dialing a call file: append ``StartRetry`` and
    move its time to the next retry."""
    now = time.time()
    with path.open("a") as handle:
        handle.write(f"\nStartRetry: 4242 1 ({int(now)})\n")
    os.utime(path, (now, now + retry_in))


def mark_attempt_failed(path: Path, retry_in: float = 60.0) -> None:
    """What Asterisk does when an attempt fails (the call was hung up): append
    ``EndRetry`` and schedule the next retry."""
    now = time.time()
    with path.open("a") as handle:
        handle.write(f"\nEndRetry: 4242 1 ({int(now)})\n")
    os.utime(path, (now, now + retry_in))


def spool_names(spool: Path) -> set[str]:
    return {p.name for p in spool.iterdir() if p.is_file()}
