"""No part of a Redis URL's user-info is ever shown: in messages, errors, logs,
``health`` and ``health --json``, settings dumps — whatever the password holds
(``/ ? # @ :`` unencoded included). A wrong password stops the start."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from typer.testing import CliRunner

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis, RedisTarget
from callscreen.callpath.screener import Screener
from callscreen.cli import app
from callscreen.core.config import Settings, mask_url
from callscreen.core.errors import InvalidInput, StoreAuthError
from callscreen.core.model import Direction, Result
from callscreen.gateway import serve
from callscreen.gateway.health import redis_description
from tests.support.redisproc import RedisProcess

#: every character that ends a URL's user-info early in a naive parser; "Pw" and the
#: user name "alice" must appear in nothing that is printed
PASSWORD = "Pw1/Pw2?Pw3#Pw4@Pw5:Pw6"
PASSWORDS = ["Pw/1", "Pw?1", "Pw#1", "Pw@1", "Pw:1", PASSWORD]
SECRETS = ("Pw", "alice")


def clean(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("locked"), None, "--requirepass", PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("password", PASSWORDS)
def test_urls_are_masked_and_parsed_whatever_the_password_holds(password: str) -> None:
    for url in (
        f"redis://:{password}@127.0.0.1:6390/2",
        f"redis://alice:{password}@127.0.0.1:6390/2",
        f"rediss://alice:{quote(password, safe='')}@127.0.0.1:6390/2",
    ):
        assert clean(mask_url(url)), url
        assert mask_url(url).endswith("@127.0.0.1:6390/2")
        target = RedisTarget.from_url(url)
        assert target.password == password and (target.host, target.port, target.db) == (
            "127.0.0.1",
            6390,
            2,
        )
        assert clean(repr(target)) and clean(target.describe())
        assert clean(json.dumps(Settings(_env_file=None, redis_url=url).safe_dump()))
        assert clean(redis_description(Settings(_env_file=None, redis_url=url)))
    # errors in the rest of the URL name none of the user-info either
    for bad in (
        f"redis://alice:{password}@127.0.0.1:6390/x",
        f"redis://alice:{password}@127.0.0.1:port/0",
        f"redis://alice:{password}@127.0.0.1/0?nope=1",
        f"http://alice:{password}@127.0.0.1/0",
    ):
        with pytest.raises(InvalidInput) as caught:
            RedisTarget.from_url(bad)
        assert clean(str(caught.value)), str(caught.value)


def cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


@pytest.mark.parametrize("right", [True, False])
async def test_health_and_its_json_show_no_credentials(
    locked_redis: RedisProcess, right: bool
) -> None:
    password = PASSWORD if right else "Pw-wrong/Pw?#@:"
    url = f"redis://:{password}@127.0.0.1:{locked_redis.port}/0"
    env = {"CALLSCREEN_REDIS_URL": url, "CALLSCREEN_LISTEN_PORT": "1"}
    code, out = await asyncio.to_thread(cli, "health", "--timeout", "1", env=env)
    assert clean(out), out
    assert ("ok   redis" in out) is right and code == 1  # (nothing listens on port 1)
    code, out = await asyncio.to_thread(cli, "health", "--timeout", "1", "--json", env=env)
    assert clean(out), out
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["redis"]["ok"] is right
    if not right:
        assert "refused AUTH" in checks["redis"]["detail"]


async def test_a_wrong_password_at_run_time_is_logged_without_it(
    locked_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://alice:Pw-wrong/Pw@127.0.0.1:{locked_redis.port}/0"
    client = LeanRedis.from_settings(Settings(_env_file=None, redis_url=url))
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(StoreAuthError) as caught:
            await client.call("PING")
    finally:
        await client.close()
    assert clean(str(caught.value))
    assert all(clean(r.getMessage()) for r in caplog.records)


def test_serve_refuses_to_start_with_a_wrong_password(
    locked_redis: RedisProcess, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    url = f"redis://:Pw-wrong/Pw?x#y@127.0.0.1:{locked_redis.port}/0"
    settings = Settings(_env_file=None, redis_url=url, listen_port=0, metrics_port=0)
    with caplog.at_level(logging.INFO):
        assert serve.run(settings) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "refused AUTH" in errors[0] and "CALLSCREEN_REDIS_PASSWORD" in errors[0]
    assert all(clean(r.getMessage()) for r in caplog.records)
    # the right one starts as before (checked without serving)
    right = settings.model_copy(
        update={"redis_url": f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{locked_redis.port}/0"}
    )
    assert serve.credentials_problem(right) == ""
    # a Redis that wants a password, none given: the same clear refusal
    none = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{locked_redis.port}/0"})
    assert "NOAUTH" in serve.credentials_problem(none)


async def test_a_password_changed_under_a_running_gateway_fails_calls_and_logs_once(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, redis_url=private_redis.url, default_region="FR")
    screener = Screener.from_settings(settings)
    admin_r = redis.Redis(port=private_redis.port)
    try:
        request = ScreenRequest("+33123456789", Direction.INBOUND)
        assert not (await screener.screen(request)).failed
        admin_r.config_set("requirepass", PASSWORD)
        admin_r.execute_command("AUTH", PASSWORD)
        admin_r.client_kill_filter(_type="normal", skipme=True)
        with caplog.at_level(logging.INFO):
            decisions = [await screener.screen(request) for _ in range(30)]
        assert all(d.failed and d.result is Result.UNSCREENED for d in decisions)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        refused = [line for line in warnings if "cannot connect to Redis" in line]
        assert "NOAUTH" in refused[0]
        assert 1 <= len(refused) <= 2, warnings  # once per failure streak, not per call
        assert all(clean(line) for line in warnings)
    finally:
        admin_r.close()
        await screener.close()
