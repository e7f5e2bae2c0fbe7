"""LeanRedis against real redis-servers (and, for broken networks, a silent socket)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from callscreen.callpath.leanredis import LeanRedis, RedisTarget, Script, parse_host_port
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, StoreError, StoreProtocolError, StoreUnavailable
from tests.support.polling import until, until_async
from tests.support.redisproc import RedisProcess, free_port, redis_server_binary


def blocked_clients(url: str) -> int:
    """Connections blocked in a command (BLPOP) on the server at ``url``, seen by another."""
    with redis.Redis.from_url(url) as r:
        return int(r.info("clients")["blocked_clients"])


# The connection code must work on both: run those tests on each.
both_loops = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

HMGET = Script("return redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2])")


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[LeanRedis]:
    async with LeanRedis.from_url(redis_url) as c:
        yield c


def settings(**values: Any) -> Settings:
    return Settings(**values)


async def within(seconds: float, awaitable: Any) -> Any:
    """Await, failing the test (rather than hanging it) if it takes longer."""
    return await asyncio.wait_for(awaitable, seconds)


def command_calls(url: str, command: str) -> int:
    """How many times Redis has run ``command`` (INFO commandstats)."""
    with redis.Redis.from_url(url) as r:
        stats: dict[str, Any] = r.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


# The basics


@both_loops
async def test_basic_calls(client: LeanRedis) -> None:
    assert not client.connected  # lazy: nothing happens before the first call
    assert await client.call("PING") == b"PONG"
    assert client.connected
    assert await client.call("SET", "k", "välue") == b"OK"
    assert await client.call("GET", "k") == "välue".encode()
    assert await client.call("GET", "missing") is None
    assert await client.call("INCRBY", "n", 41) == 41
    assert await client.call("INCR", b"n") == 42
    assert await client.call("HSET", "h", "a", "1", "b", "2") == 2
    assert await client.call("HMGET", "h", "a", "zz", "b") == [b"1", None, b"2"]
    assert await client.call("LRANGE", "nothing", 0, -1) == []
    assert await client.call("BLPOP", "nothing", "0.01") is None  # the null array


@both_loops
async def test_error_replies_raise_store_error_and_the_client_goes_on(client: LeanRedis) -> None:
    await client.call("SET", "k", "v")
    with pytest.raises(StoreError, match="WRONGTYPE") as info:
        await client.call("HGET", "k", "f")
    assert type(info.value) is StoreError  # not StoreUnavailable: Redis is fine
    with pytest.raises(StoreError, match="unknown command"):
        await client.call("NOSUCHCOMMAND")
    assert await client.call("GET", "k") == b"v"


@both_loops
async def test_errors_inside_arrays_stay_values(client: LeanRedis) -> None:
    script = Script("return {1, redis.error_reply('MINE inside'), 'x'}")
    reply = await client.evalsha(script, [], [])
    assert reply[0] == 1 and reply[2] == b"x"
    assert reply[1].code == "MINE"


@both_loops
async def test_many_concurrent_calls_share_the_connection_in_order(
    client: LeanRedis, redis_url: str
) -> None:
    first_id = await client.call("CLIENT", "ID")
    calls = []
    for i in range(1000):
        # INCR replies reveal the order in which Redis ran the commands.
        calls.append(client.call("INCR", "seq") if i % 2 else client.call("ECHO", f"e{i}"))
    replies = await within(10, asyncio.gather(*calls))
    assert replies[0::2] == [f"e{i}".encode() for i in range(0, 1000, 2)]
    assert replies[1::2] == list(range(1, 501))
    assert await client.call("CLIENT", "ID") == first_id  # one connection throughout


@both_loops
async def test_concurrent_first_calls_make_one_connection(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as r:
        before = r.info("stats")["total_connections_received"]
        async with LeanRedis.from_url(redis_url) as c:
            replies = await within(5, asyncio.gather(*(c.call("ECHO", i) for i in range(50))))
            assert replies == [str(i).encode() for i in range(50)]
        after = r.info("stats")["total_connections_received"]
    assert after - before == 1


@both_loops
async def test_close(redis_url: str) -> None:
    c = LeanRedis.from_url(redis_url)
    await c.call("PING")
    slow = asyncio.ensure_future(c.call("BLPOP", "nothing", 5))
    await until_async(lambda: blocked_clients(redis_url), "the BLPOP to block in Redis")
    await c.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await within(1, slow)
    with pytest.raises(StoreUnavailable, match="closed"):
        await c.call("PING")
    await c.close()  # idempotent
    assert not c.connected


# Addresses, logging in, databases


@both_loops
async def test_from_settings_with_password_and_db(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis", None, "--requirepass", "s3cret")
    server.start()
    try:
        base = f"127.0.0.1:{server.port}"
        c = LeanRedis.from_settings(settings(redis_url=f"redis://:s3cret@{base}/3"))
        async with c:
            await c.call("SET", "where", "db3")
        with redis.Redis(port=server.port, password="s3cret", db=3) as r:
            assert r.get("where") == b"db3"

        # The setting overrides the URL's password.
        c = LeanRedis.from_settings(
            settings(redis_url=f"redis://:wrong@{base}/3", redis_password="s3cret")
        )
        async with c:
            assert await c.call("GET", "where") == b"db3"

        # A wrong password is a StoreError that says so, and no hang.
        async with LeanRedis.from_url(f"redis://:wrong@{base}/0") as c:
            with pytest.raises(StoreError, match="refused AUTH"):
                await within(5, c.call("PING"))
        async with LeanRedis.from_url(f"redis://{base}/0") as c:  # no password at all
            with pytest.raises(StoreError, match="NOAUTH"):
                await within(5, c.call("PING"))
    finally:
        server.stop()


@both_loops
async def test_acl_user_and_password(private_redis: RedisProcess) -> None:
    with redis.Redis(port=private_redis.port) as r:
        r.execute_command("ACL", "SETUSER", "app", "on", ">p@ss word", "~*", "+@all")
    url = f"redis://app:p%40ss%20word@127.0.0.1:{private_redis.port}/2"
    async with LeanRedis.from_url(url) as c:
        assert await c.call("ACL", "WHOAMI") == b"app"
        await c.call("SET", "k", "in db 2")
    with redis.Redis(port=private_redis.port, db=2) as r:
        assert r.get("k") == b"in db 2"


@both_loops
async def test_unix_socket_url(tmp_path: Path) -> None:
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    sockdir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    sock = sockdir / "redis.sock"
    server = RedisProcess(tmp_path / "redis", None, "--unixsocket", str(sock))
    server.start()
    try:
        async with LeanRedis.from_url(f"unix://{sock}?db=2") as c:
            assert await c.call("SET", "via", "unix") == b"OK"
            info = (await c.call("CLIENT", "INFO")).decode().split()
            assert "flags=U" in info and "db=2" in info  # U: a unix socket client
        with redis.Redis(port=server.port, db=2) as r:
            assert r.get("via") == b"unix"
    finally:
        server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


# Scripts


@both_loops
async def test_evalsha_falls_back_to_eval_on_noscript(client: LeanRedis, redis_url: str) -> None:
    await client.call("HSET", "h", "a", "1", "b", "2")
    assert await client.call("SCRIPT", "LOAD", HMGET.source) == HMGET.sha1.encode()
    await client.call("SCRIPT", "FLUSH")
    evals = command_calls(redis_url, "eval")

    # Not cached: EVALSHA gets NOSCRIPT, EVAL runs it (and caches it), within the deadline.
    assert await client.evalsha(HMGET, ["h"], ["a", "b"], timeout=1) == [b"1", b"2"]
    assert command_calls(redis_url, "eval") == evals + 1
    # Cached now: EVALSHA alone.
    assert await client.evalsha(HMGET, ["h"], ["b", "zz"], timeout=1) == [b"2", None]
    assert command_calls(redis_url, "eval") == evals + 1
    # What a restart does to the script cache.
    await client.call("SCRIPT", "FLUSH")
    replies = await asyncio.gather(*(client.evalsha(HMGET, ["h"], ["a", "b"]) for _ in range(20)))
    assert replies == [[b"1", b"2"]] * 20


@both_loops
async def test_script_errors_raise_store_error(client: LeanRedis) -> None:
    with pytest.raises(StoreError, match="MINE went wrong"):
        await client.evalsha(Script("return redis.error_reply('MINE went wrong')"), [], [])
    with pytest.raises(StoreError, match="ERR"):
        await client.evalsha(Script("return redis.call('NOSUCH')"), [], [])
    with pytest.raises(StoreError, match=r"(?i)compil|syntax|error"):
        await client.evalsha(Script("this is not lua"), [], [])
    assert await client.call("PING") == b"PONG"


# Deadlines


@both_loops
async def test_timed_out_calls_do_not_desync_the_replies(client: LeanRedis, redis_url: str) -> None:
    first_id = await client.call("CLIENT", "ID")
    with redis.Redis.from_url(redis_url) as r:
        r.execute_command("CLIENT", "PAUSE", 400)  # every other client waits 400 ms
    started = time.monotonic()
    calls = [
        client.call("ECHO", name, timeout=timeout)
        for name, timeout in [("a", 0.05), ("b", 3), ("c", 0.05), ("d", 3), ("e", 0.1)]
    ]
    a, b, c, d, e = await within(5, asyncio.gather(*calls, return_exceptions=True))
    for failed in (a, c, e):
        assert isinstance(failed, StoreUnavailable), failed
        assert "no reply" in str(failed)
    assert (b, d) == (b"b", b"d")
    assert time.monotonic() - started >= 0.3  # b and d really waited for the pause
    # The late replies of a, c, e were dropped; later calls get their own.
    replies = await asyncio.gather(*(client.call("ECHO", f"x{i}") for i in range(100)))
    assert replies == [f"x{i}".encode() for i in range(100)]
    assert await client.call("CLIENT", "ID") == first_id  # a slow reply is no reason to reconnect


@both_loops
async def test_a_caller_giving_up_by_cancellation_does_not_desync(
    client: LeanRedis, redis_url: str
) -> None:
    await client.call("PING")
    with redis.Redis.from_url(redis_url) as r:
        r.execute_command("CLIENT", "PAUSE", 200)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.call("ECHO", "abandoned")
    assert await within(5, client.call("ECHO", "mine")) == b"mine"


# Redis going away and coming back


@both_loops
async def test_server_stopped_then_restarted(private_redis: RedisProcess) -> None:
    async with LeanRedis.from_url(private_redis.url) as c:
        await c.call("SET", "k", "v")
        waiting = asyncio.ensure_future(c.call("BLPOP", "nothing", 5))
        await until_async(lambda: blocked_clients(private_redis.url), "the BLPOP to block")
        private_redis.kill()

        # The call in flight fails at once, and so do new ones: quickly, not at the deadline.
        with pytest.raises(StoreUnavailable, match="lost the connection"):
            await within(1, waiting)
        for _ in range(3):
            with pytest.raises(StoreUnavailable) as info:
                await within(1, c.call("GET", "k"))
            assert info.value.__cause__ is not None
        assert not c.connected

        private_redis.start()  # same port, empty
        assert await within(2, c.call("GET", "k")) is None
        assert await c.call("SET", "k", "again") == b"OK"
        assert c.connected


@both_loops
async def test_refused_connection_is_store_unavailable_with_the_os_error() -> None:
    async with LeanRedis.from_url(f"redis://127.0.0.1:{free_port()}/0") as c:
        with pytest.raises(StoreUnavailable, match="cannot connect") as info:
            await within(2, c.call("PING"))
        assert isinstance(info.value.__cause__, OSError)


class SilentPeer:
    """A TCP listener that accepts and never answers: a hung host or a black hole."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.accepted = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> SilentPeer:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self.writers.append(writer)
            if self.reply:
                writer.write(self.reply)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@both_loops
async def test_one_connect_attempt_for_many_callers_and_no_hammering() -> None:
    async with SilentPeer() as peer:
        c = LeanRedis.from_url(peer.url, connect_timeout=0.2, reconnect_backoff=0.5)
        async with c:
            results = await within(
                3,
                asyncio.gather(
                    *(c.call("PING", timeout=1) for _ in range(50)), return_exceptions=True
                ),
            )
            assert all(isinstance(r, StoreUnavailable) for r in results)
            assert "within 200 ms" in str(results[0])
            assert peer.accepted == 1
            # Within the backoff, a caller whose deadline comes first fails at once...
            with pytest.raises(StoreUnavailable, match="next attempt in"):
                await c.call("PING", timeout=0.1)
            assert peer.accepted == 1
            # ...and one whose deadline allows it waits for the next attempt.
            with pytest.raises(StoreUnavailable, match="within 200 ms"):
                await within(3, c.call("PING", timeout=2))
            assert peer.accepted == 2


@both_loops
async def test_a_peer_that_is_not_redis() -> None:
    async with SilentPeer(reply=b"HTTP/1.1 400 Bad Request\r\n\r\n") as peer:
        c = LeanRedis.from_url(peer.url)
        async with c:
            with pytest.raises(StoreUnavailable, match="invalid reply") as info:
                await within(3, c.call("PING"))
            assert isinstance(info.value.__cause__, StoreProtocolError)


@both_loops
async def test_close_while_connecting() -> None:
    async with SilentPeer() as peer:
        c = LeanRedis.from_url(peer.url, connect_timeout=5)
        waiting = asyncio.ensure_future(c.call("PING"))
        await until_async(lambda: peer.accepted == 1, "the client to connect")
        await within(1, c.close())
        with pytest.raises(StoreUnavailable, match="closed"):
            await within(1, waiting)


@both_loops
async def test_a_hung_server_is_dropped_and_the_client_recovers(
    private_redis: RedisProcess,
) -> None:
    assert private_redis.proc is not None
    pid = private_redis.proc.pid
    c = LeanRedis.from_url(
        private_redis.url, connect_timeout=0.2, stall_timeout=0.3, reconnect_backoff=0.05
    )
    async with c:
        first_id = await c.call("CLIENT", "ID")
        os.kill(pid, signal.SIGSTOP)  # the kernel still accepts connections; nobody answers
        try:
            failures = 0
            stop_at = time.monotonic() + 0.8
            while time.monotonic() < stop_at:
                with pytest.raises(StoreUnavailable):
                    await within(1, c.call("PING", timeout=0.1))
                failures += 1
            assert failures >= 3
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await within(3, c.call("PING", timeout=2)) == b"PONG"
        assert await c.call("CLIENT", "ID") != first_id  # the stalled connection was dropped


# Sentinel


def _start(args: list[str], port: int, password: str | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with redis.Redis(port=port, password=password, socket_connect_timeout=0.2) as r:

        def answering() -> bool:
            try:
                return bool(r.ping())
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise AssertionError("exited") from None
                return False

        try:
            until(answering, f"{args[0]} to answer", timeout=10)
        except AssertionError:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
            raise RuntimeError(f"{args[0]} did not start: {output[-2000:]}") from None
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


class SentinelSetup:
    def __init__(self, primary: RedisProcess, replica: RedisProcess, port: int) -> None:
        self.primary = primary
        self.replica = replica
        self.port = port

    def settings(self, **values: Any) -> Settings:
        values.setdefault("redis_sentinel_password", "spw")
        return Settings(
            redis_url="redis://127.0.0.1:1/0",  # only its password and db count
            redis_sentinels=[f"127.0.0.1:{free_port()}", f"127.0.0.1:{self.port}"],
            redis_connect_timeout_ms=300,
            **values,
        )

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.port, password="spw", decode_responses=True)


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    """A primary, its replica and one Sentinel (password "spw") watching them as
    "callscreen"; it also watches the replica as if it were the primary of "wrong"."""
    primary = RedisProcess(tmp_path / "primary")
    primary.start()
    replica = RedisProcess(
        tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(primary.port)
    )
    sentinel: subprocess.Popen[bytes] | None = None
    try:
        replica.start()
        port = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nrequirepass spw\n"
            f"sentinel monitor callscreen 127.0.0.1 {primary.port} 1\n"
            "sentinel down-after-milliseconds callscreen 1000\n"
            "sentinel failover-timeout callscreen 10000\n"
            f"sentinel monitor wrong 127.0.0.1 {replica.port} 1\n"
            "sentinel down-after-milliseconds wrong 60000\n"
        )
        try:
            sentinel = _start([redis_server_binary(), str(conf), "--sentinel"], port, "spw")
        except RuntimeError as exc:
            if "sentinel" in str(exc).lower() and "unknown" in str(exc).lower():
                pytest.skip(f"this redis-server has no Sentinel mode: {exc}")
            raise
        yield SentinelSetup(primary, replica, port)
    finally:
        if sentinel is not None:
            _stop(sentinel)
        replica.stop()
        primary.stop()


async def _port_of(client: LeanRedis) -> int:
    reply = await client.call("CONFIG", "GET", "port")
    return int(reply[1])


@both_loops
async def test_sentinel_resolves_the_primary(sentinel_setup: SentinelSetup) -> None:
    async with LeanRedis.from_settings(sentinel_setup.settings()) as c:
        # The first Sentinel listed is down: the second one answers.
        assert await within(5, _port_of(c)) == sentinel_setup.primary.port
        assert (await c.call("ROLE"))[0] == b"master"


@both_loops
async def test_sentinel_errors(sentinel_setup: SentinelSetup) -> None:
    async with LeanRedis.from_settings(
        sentinel_setup.settings(redis_sentinel_service="nosuch")
    ) as c:
        with pytest.raises(StoreUnavailable, match="knows no primary named 'nosuch'"):
            await within(5, c.call("PING"))
    async with LeanRedis.from_settings(
        sentinel_setup.settings(redis_sentinel_service="wrong")
    ) as c:
        with pytest.raises(StoreUnavailable, match="is not a primary"):
            await within(5, c.call("PING"))
    async with LeanRedis.from_settings(sentinel_setup.settings(redis_sentinel_password=None)) as c:
        with pytest.raises(StoreUnavailable, match="NOAUTH"):
            await within(5, c.call("PING"))


@pytest.mark.slow
async def test_sentinel_failover_is_followed(sentinel_setup: SentinelSetup) -> None:
    async with LeanRedis.from_settings(sentinel_setup.settings()) as c:
        assert await within(5, _port_of(c)) == sentinel_setup.primary.port
        await c.call("SET", "k", "before failover")
        # Replication is asynchronous: a failover may lose what the replica has not
        # received yet (docs/operations.md). Wait until it has, so the check below
        # is about following the failover, not about that window.
        assert await c.call("WAIT", 1, 5000) == 1
        with sentinel_setup.sentinel() as s:

            def failover_started() -> bool:
                # the Sentinel must know a healthy replica before it can fail over
                replicas = s.execute_command("SENTINEL", "REPLICAS", "callscreen")
                if not replicas or "s_down" in str(replicas) or "disconnected" in str(replicas):
                    return False
                try:
                    s.execute_command("SENTINEL", "FAILOVER", "callscreen")
                except redis.ResponseError:
                    return False  # NOGOODSLAVE until the replica is in sync
                return True

            await until_async(
                failover_started, "the Sentinel to see the replica", timeout=20, step=0.2
            )
            replica = ["127.0.0.1", str(sentinel_setup.replica.port)]
            await until_async(
                lambda: (
                    s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "callscreen")
                    == replica
                ),
                "the failover",
                timeout=20,
                step=0.1,
            )
        # The old primary still answers until the Sentinel demotes it (at its next
        # INFO, up to 10 s) and kills its clients: do now what the Sentinel does then.
        with redis.Redis(port=sentinel_setup.primary.port) as r:
            r.execute_command("CLIENT", "KILL", "TYPE", "normal")
        # A call sent before the client saw the drop fails; the next one asks the
        # Sentinel again and finds the new primary.
        with pytest.raises(StoreUnavailable):
            await within(5, c.call("PING"))
        assert await within(5, _port_of(c)) == sentinel_setup.replica.port
        assert await c.call("GET", "k") == b"before failover"
        assert (await c.call("ROLE"))[0] == b"master"


# TLS


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf",
            "-out", "server.pem")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def _tls_redis_server() -> str | None:
    for candidate in (redis_server_binary(), "/usr/bin/redis-server"):
        if not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "--port", "0", "--tls-port", "0", "--loglevel", "warning"],
            capture_output=True,
            timeout=5,
            check=False,
        )
        if b"Bad directive" not in probe.stdout + probe.stderr:
            return candidate
    return None


@both_loops
async def test_rediss_url(tmp_path: Path) -> None:
    binary = _tls_redis_server()
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("no redis-server built with TLS, or no openssl")
    ca, cert, key = _make_certificates(tmp_path)
    port, tls_port = free_port(), free_port()
    server = _start(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--tls-port",
         str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"],
        port,
    )  # fmt: skip
    try:
        url = f"rediss://localhost:{tls_port}/1?ssl_ca_certs={ca}"
        async with LeanRedis.from_url(url) as c:
            assert await within(5, c.call("SET", "over", "tls")) == b"OK"
        with redis.Redis(port=port, db=1) as r:
            assert r.get("over") == b"tls"
        # The default context verifies: a certificate from an unknown CA is refused.
        async with LeanRedis.from_url(f"rediss://localhost:{tls_port}/1") as c:
            with pytest.raises(StoreUnavailable, match=r"(?i)certificate"):
                await within(5, c.call("PING"))
    finally:
        _stop(server)


# Configuration (no server needed)


def test_parse_urls() -> None:
    t = RedisTarget.from_url("redis://10.0.0.1:7000/5")
    assert (t.host, t.port, t.db, t.tls, t.path, t.username, t.password) == (
        "10.0.0.1", 7000, 5, False, None, None, None,
    )  # fmt: skip
    t = RedisTarget.from_url("rediss://u%3Ax:p%2Fw@cache.example:6380")
    assert (t.host, t.port, t.db, t.tls, t.username, t.password) == (
        "cache.example", 6380, 0, True, "u:x", "p/w",
    )  # fmt: skip
    t = RedisTarget.from_url("redis://:pw@[::1]/0?db=4", password="override")
    assert (t.host, t.port, t.db, t.password) == ("::1", 6379, 4, "override")
    assert t.describe() == "redis://[::1]:6379/4"
    t = RedisTarget.from_url("unix:///run/redis/redis.sock?db=9")
    assert (t.path, t.db, t.describe()) == (
        "/run/redis/redis.sock",
        9,
        "unix:/run/redis/redis.sock?db=9",
    )
    assert "pw" not in repr(RedisTarget.from_url("redis://:pw@h"))


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379",
        "redis://localhost:notaport",
        "redis://localhost/x",
        "redis://localhost/-1",
        "redis://localhost/0?socket_timeout=5",
        "unix://?db=1",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        RedisTarget.from_url(url)


def test_bad_url_message_hides_the_password() -> None:
    with pytest.raises(InvalidInput) as info:
        RedisTarget.from_url("redis://:topsecret@localhost/0?bogus=1")
    assert "topsecret" not in str(info.value)


def test_parse_host_port() -> None:
    assert parse_host_port("10.0.0.1:26380") == ("10.0.0.1", 26380)
    assert parse_host_port("sentinel-a") == ("sentinel-a", 26379)
    assert parse_host_port("[fe80::1]:5000") == ("fe80::1", 5000)
    assert parse_host_port("[fe80::1]") == ("fe80::1", 26379)
    for bad in ("", ":1", "h:0", "h:99999", "h:x", "[::1]x"):
        with pytest.raises(InvalidInput):
            parse_host_port(bad)


def test_from_settings_reads_every_redis_setting() -> None:
    c = LeanRedis.from_settings(
        settings(
            redis_url="redis://:urlpw@db.example:7001/2",
            redis_password="setpw",
            redis_sentinels="s1:26379, [::1]:26380",
            redis_sentinel_service="svc",
            redis_sentinel_password="spw",
            redis_connect_timeout_ms=250,
        ),
        command_timeout=1.5,
    )
    assert c.target.password == "setpw" and c.target.db == 2
    assert c._sentinels == [("s1", 26379), ("::1", 26380)]
    assert (c.sentinel_service, c._sentinel_password) == ("svc", "spw")
    assert (c.connect_timeout, c.command_timeout) == (0.25, 1.5)


def test_script_sha1() -> None:
    assert Script("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
