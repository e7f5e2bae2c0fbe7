"""One source for the Redis layout: the Lua scripts build key names only from the
fragments and sizes of :mod:`callscreen.schema.keys` (their generated prelude), and
every key a script touches while the services, the importer, the screener, the
opt-out and the reports run is one the schema names."""

from __future__ import annotations

import asyncio
import inspect
import io
import re
import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import redis

from callscreen.callpath.decision import ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.config import Settings
from callscreen.core.model import Action, Direction, Status
from callscreen.gateway.optout import opt_out
from callscreen.reports.report import build_report
from callscreen.schema import scripts
from callscreen.schema.attempts import LogSettings
from callscreen.schema.keys import FRAGMENTS, NUMBERS, Keys, bucket_shard
from callscreen.services import importer
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin

_INT = 987654321
_TEXT = "zzTEXTzz"


def schema_patterns(keys: Keys) -> list[re.Pattern[str]]:
    """Every key name :class:`Keys` can make, as a regular expression (an attempt-log
    shard's hash tag as any shard's)."""
    made_names: list[str] = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name in ("base", "exact_pattern", "old_log_patterns"):
            continue
        if isinstance(member, property):
            made = getattr(keys, name)
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters.values())[1:]
            args = [
                0 if p.name == "shard" else _INT if "int" in str(p.annotation) else _TEXT
                for p in params
            ]
            made = getattr(keys, name)(*args)
        else:
            continue
        made_names.extend(made if isinstance(made, tuple) else [made])
    shard_tag = re.compile(r"\{" + re.escape(keys.tag) + r"\.log\.\d+(?:\.\d+)?\}")
    patterns = []
    for made in made_names:
        text = re.escape(shard_tag.sub("zzSHARDzz", made))
        text = text.replace("zzSHARDzz", shard_tag.pattern)
        text = text.replace(str(_INT // 512), r"\d+").replace(str(_INT), r"\d+")
        text = text.replace(_TEXT, r".+").replace("True", r"[bl]").replace("False", r"[bl]")
        patterns.append(re.compile(text + r"\Z"))
    return patterns


def test_script_bodies_spell_no_key_fragment_or_size() -> None:
    for name in [*scripts.ALL, *scripts.LIBRARIES]:
        body = scripts.body(name)
        code = "\n".join(line.split("--", 1)[0] for line in body.splitlines())
        assert not re.search(r"'(:[a-z]+)+:?'", code), f"{name}.lua spells a key fragment"
        for value in NUMBERS.values():
            assert not re.search(rf"\b{value}\b", code), f"{name}.lua spells {value}"
        used = set(re.findall(r"\bK_([A-Z_]+)\b", code))
        assert used <= set(FRAGMENTS), f"{name}.lua uses {used - set(FRAGMENTS)}"


def test_every_script_starts_with_the_prelude_of_the_schema() -> None:
    prelude = scripts.prelude()
    for name, script in scripts.ALL.items():
        # then the libraries the script uses (record, lookuplib)
        head = prelude + "".join(scripts.body(lib) for lib in scripts.USES.get(name, ()))
        body = scripts.body(name)
        if body.startswith("#!"):  # script flags: Redis reads them on the first line only
            shebang, rest = body.split("\n", 1)
            assert script.source == shebang + "\n" + head + rest
        else:
            assert script.source == head + body
    assert "lookup_listed(" in scripts.ENTRIES.source and "lookup_listed(" in scripts.IMPORT.source
    assert "rec_encode(" in scripts.ENTRIES.source and "rec_encode(" in scripts.IMPORT.source
    assert "local BATCH_BUCKET = 512" in prelude and "local K_LIST = ':list:'" in prelude


def test_the_lookup_is_read_only_and_has_a_variant_without_flags() -> None:
    assert scripts.LOOKUP.source.startswith("#!lua flags=no-writes\n")
    assert scripts.LOOKUP_PLAIN.source == scripts.LOOKUP.source.split("\n", 1)[1]
    assert scripts.LOOKUP_PLAIN.sha1 != scripts.LOOKUP.sha1


def test_keys_are_made_from_the_fragments() -> None:
    keys = Keys()
    assert keys.list(7) == keys.base + FRAGMENTS["LIST"] + "7"
    assert keys.batch(1030) == keys.base + FRAGMENTS["BATCH"] + str(1030 // NUMBERS["BATCH_BUCKET"])
    assert (
        keys.first_contact(3) == keys.log_base(bucket_shard(3)) + FRAGMENTS["FIRST_CONTACT"] + "3"
    )


class Monitor:
    """Redis MONITOR in a thread: every command scripts sent (``lua`` source)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.commands: list[list[str]] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            while True:
                event = monitor.next_command()
                command = event["command"]
                if command == "ECHO monitor-stop":
                    return
                if event.get("client_type") == "lua":
                    self.commands.append(_split(command))

    def stop(self, url: str) -> None:
        """Wait until every command sent before this call has been read (idempotent)."""
        if not self.thread.is_alive():
            return
        other = redis.Redis.from_url(url)
        other.echo("monitor-stop")
        other.close()
        self.thread.join(10)
        self.client.close()


def _split(command: str) -> list[str]:
    # redis-py gives the arguments unquoted, joined by spaces: key names have none here
    return command.split(" ")


_ONE_KEY = {
    "GET", "SET", "INCR", "HGET", "HSET", "HSETNX", "HMGET", "HGETALL", "HDEL", "HKEYS",
    "HVALS", "HLEN", "HSCAN", "HINCRBY", "HEXISTS", "SMEMBERS", "SADD", "SREM", "SISMEMBER",
    "ZADD", "ZREM", "ZSCORE", "ZCARD", "ZRANGEBYSCORE", "ZREMRANGEBYSCORE", "ZINCRBY",
    "ZRANGE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZREMRANGEBYRANK",
    "XADD", "XTRIM", "EXPIRE", "PEXPIRE", "TTL", "EXISTS", "TYPE",
}  # fmt: skip


def keys_of(parts: list[str]) -> list[str]:
    name = parts[0].upper()
    if name in _ONE_KEY:
        return [parts[1]]
    if name in ("DEL", "UNLINK"):
        return parts[1:]
    if name == "ZRANGESTORE":  # destination, source
        return parts[1:3]
    raise AssertionError(f"a script sent {name}: say where its keys are in _ONE_KEY")


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=redis_url, default_region="FR", deadline_ms=5000)


@pytest.fixture
def monitor(redis_url: str) -> Iterator[Monitor]:
    watching = Monitor(redis_url)
    yield watching
    watching.stop(redis_url)


def test_every_key_a_script_touches_is_named_by_the_schema(
    settings: Settings, monitor: Monitor
) -> None:
    num, other = "+33612345678", "+33698765432"
    with SyncAdmin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK)
        admin.create_list("camp", Action.LABEL, Direction.OUTBOUND, campaign_only=True)
        admin.assign("spring", ["camp"])
        admin.add("dnc", [num, "+3361*"], reason="r", expires="30d")
        admin.add("camp", [other])
        admin.approve("dnc", [num], permanent=True)
        admin.remove("dnc", ["+3361*"], reason="x")
        admin.restore("dnc", ["+3361*"])
        admin.remove("dnc", ["+3361*"], reason="x")
        admin.purge("dnc", "2100-01-01")
        info = admin.table.get_list("dnc")
        data = io.BytesIO(b"number,reason\n+33611111111,a\n+33622222222*,b\n")
        options = ImportOptions(workers=0, by="tester", replace=True, approve=Status.ACTIVE)
        importer.import_stream(admin.table, info, data, name="f.csv", options=options)
        admin.check(num, Direction.OUTBOUND, "spring")
        assert admin.list_entries("dnc", search="+3361").total >= 1  # search.lua

        async def call_path() -> None:
            client = LeanRedis.from_settings(settings)
            try:
                request = ScreenRequest("+33633333333", Direction.INBOUND)
                decision = await opt_out(settings, client, request)
                assert not decision.failed, decision.reason
            finally:
                await client.close()

        asyncio.run(call_path())
        today = date.today()
        admin.run(
            build_report(
                admin.ctx.table, LogSettings.from_settings(settings), today - timedelta(1), today
            )
        )
    # The MONITOR thread may lag behind a busy machine: read up to the end first.
    monitor.stop(settings.redis_url)
    scripted = {parts[0].upper() for parts in monitor.commands}
    assert {"HGET", "HSET", "HMGET", "SMEMBERS", "INCR", "HGETALL"} <= scripted  # they ran
    patterns = schema_patterns(Keys(settings.key_tag))
    touched = {key for parts in monitor.commands for key in keys_of(parts)}
    unnamed = sorted(k for k in touched if not any(p.match(k) for p in patterns))
    assert not unnamed, f"keys no Keys method names: {unnamed}"
