"""What ``callscreen serve`` says at start-up about what it cannot use: an unreachable
Redis (a WARNING, repeated while it stays down, rate-limited) and a missing spool
directory (one line, not one per ``add``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from callscreen.asterisk.cascade import spool_problem
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.config import Settings
from callscreen.core.model import Action
from callscreen.gateway.reachability import RedisReachability
from tests.support.blocking import SyncAdmin as Admin
from tests.support.polling import until_async as until
from tests.support.redisproc import RedisProcess, free_port


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "callscreen.serve"]


async def test_an_unreachable_redis_is_a_warning_at_start_and_while_it_stays_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = settings(redis_url=f"redis://127.0.0.1:{port}/0", fail_policy="closed")
    client = LeanRedis.from_settings(config)
    watch = RedisReachability(config, client, probe_s=0.05, warn_every_s=0.3)
    caplog.set_level(logging.INFO, logger="callscreen.serve")
    try:
        await watch.start()
        warnings = [r for r in ours(caplog) if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert f"Redis at redis://127.0.0.1:{port}/0 does not answer" in message
        assert "fail-closed" in message
        # every probe is a reconnect attempt; the warning comes back, rate-limited
        await until(lambda: watch.warnings >= 2)
        repeated = [r.getMessage() for r in ours(caplog) if r.levelno == logging.WARNING]
        assert "failed attempts" in repeated[-1]
        assert len(repeated) <= 3  # ~6 attempts in 0.3 s, not one line each
        server = RedisProcess(tmp_path / "redis", port)
        server.start()
        try:
            await until(lambda: watch.reachable is True)
        finally:
            server.stop()
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await watch.close()
        await client.close()


def test_a_default_spool_that_is_missing_is_said_once_by_serve_not_by_each_add(
    redis_url: str, tmp_path: Path
) -> None:
    default = settings(redis_url=redis_url)
    missing = str(tmp_path / "nope")
    # the default path on a machine without Asterisk: serve's one line, add says nothing
    values = {**dict(default), "spool_dir": missing}
    defaulted = Settings.model_construct(_fields_set=set(default.model_fields_set), **values)
    problem = spool_problem(defaulted)
    assert problem is not None and "set CALLSCREEN_SPOOL_DIR=" in problem
    with Admin(defaulted) as admin:
        admin.create_list("dnc", Action.BLOCK)
        report = admin.add("dnc", ["+33612345678"]).cascade
    assert report is not None and not report.spool_checked and report.notes == ()
    # configured explicitly: every add still says it
    explicit = settings(redis_url=redis_url, spool_dir=missing)
    assert "set CALLSCREEN_SPOOL_DIR=" not in (spool_problem(explicit) or "")
    with Admin(explicit) as admin:
        report = admin.add("dnc", ["+33612345679"]).cascade
    assert report is not None and report.notes
    assert spool_problem(settings(redis_url=redis_url, spool_dir=str(tmp_path))) is None
