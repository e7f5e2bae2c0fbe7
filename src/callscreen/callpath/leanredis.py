"""A lean, pipelined Redis connection for the per-call hot path.

redis-py's asyncio client costs 80-118 µs per round trip where raw asyncio costs
41 µs (MEASURED.md), and about 2.5 times the client CPU per call of this module
(``bench/bench_redis_client.py`` puts them side by side); on the screening path
that is most of the gateway's CPU. :class:`LeanRedis` is the thin alternative:
one connection, an :class:`asyncio.Protocol` around the pure parser of
:mod:`callscreen.callpath.resp`, and a FIFO of futures. Every ``await client.call(...)``
writes its command at once and waits for its own reply, so any number of
concurrent calls share the connection, pipelined (Redis answers in order on a
connection).

Behaviour:

- **Lazy connect, automatic reconnect.** The first call connects. When the
  connection drops, every call waiting on it fails with
  :class:`~callscreen.core.errors.StoreUnavailable`, and the next call reconnects. One
  connect attempt at a time, and at most one per ``reconnect_backoff`` seconds
  after a failure (Redis and the Sentinels are not hammered while down):
  concurrent callers wait for the same attempt, and a caller whose deadline comes
  before the next allowed attempt fails at once.
- **Every call has a deadline** (its ``timeout``, else ``command_timeout``), which
  covers connecting too. A call that misses it fails with ``StoreUnavailable``; its
  reply, if it comes later, is read and discarded, so the replies of later calls
  stay matched to their calls. If Redis has answered nothing at all for
  ``stall_timeout`` seconds while calls are waiting (a hung server, a peer gone
  without a reset, a failover that left us talking to nobody), the connection is
  dropped at the next missed deadline, and the next call reconnects.
- **Errors.** An error reply raises :class:`~callscreen.core.errors.StoreError` with
  Redis's message. Socket and OS errors, timeouts and a broken reply stream become
  ``StoreUnavailable`` (``raise ... from exc``). Nothing else escapes.
- **Addresses.** ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS with
  the default, verifying context; ``?ssl_ca_certs=FILE`` adds a private CA) and
  ``unix:///path/to/socket?db=N``. AUTH (with the user name if one is given) and
  SELECT are sent on connect, before any call.
- **Sentinel.** With Sentinels configured, each connect asks them in turn for the
  primary of the service, checks with ``ROLE`` that it is a primary, and uses the
  URL only for its password, db and TLS (the certificate must then match the
  address the Sentinel gives). Each Sentinel asked, and the primary, get
  ``connect_timeout`` each. Every reconnect asks again, so a failover is followed
  once the old primary drops us: Sentinel kills the clients of a primary it
  demotes, and a ``READONLY`` error reply (a demoted primary that kept us) drops
  the connection too. A primary that is still up is only demoted when the Sentinel
  next looks at it (about ten seconds after a ``SENTINEL FAILOVER``): so while
  connected, the Sentinels are also asked every ``sentinel_check_interval``
  seconds (1 s; in the background, off the call path) which primary they name, and
  the connection is dropped as soon as it is another one. Until then, calls still
  go to the old primary.

- **Redis Cluster.** A ``MOVED slot host:port`` reply makes the client connect to that
  node from then on and send the call again within its deadline: a client whose calls
  all touch one slot (the lookups: every key under ``{cs}``) ends up on the primary of
  that slot, one round trip a call as before. Calls that touch slots on several nodes
  need a client per node (the attempt log keeps one per shard node, with
  ``follow_moved`` off: it routes each shard itself). ``ASK``
  (a slot being migrated) is not followed: the call fails like any error reply.

Not supported here, on purpose: RESP3, pub/sub, MULTI across calls, blocking
commands with no deadline. Use redis-py for administration paths that need them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

from callscreen.callpath.resp import NOTHING, RespError, RespParser, RespValue, encode_command
from callscreen.core.config import Settings, mask_url, split_userinfo
from callscreen.core.errors import (
    InvalidInput,
    StoreAuthError,
    StoreError,
    StoreProtocolError,
    StoreUnavailable,
)
from callscreen.schema.scripts import Script

__all__ = ["LeanRedis", "RedisTarget", "Script", "parse_host_port"]

log = logging.getLogger(__name__)

Arg = bytes | str | int

DEFAULT_PORT: Final = 6379
DEFAULT_SENTINEL_PORT: Final = 26379


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis server is and how to log in to it: a parsed Redis URL."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str | None = None
    """A unix socket path; when set, ``host`` and ``port`` are not used."""
    tls: bool = False
    ssl_ca_certs: str | None = None
    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)
    db: int = 0

    @classmethod
    def from_url(cls, url: str, *, password: str | None = None) -> RedisTarget:
        """Parse ``redis://``, ``rediss://`` or ``unix://``; ``password`` overrides the URL's.

        Raises :class:`~callscreen.core.errors.InvalidInput` for anything else, including
        query options other than ``db`` and ``ssl_ca_certs`` (a redis-py option
        silently ignored would be worse than a clear refusal).
        """
        shown = mask_url(url)
        # The user-info is taken apart by hand, up to the last "@": urlsplit would end
        # it at a "/", "?" or "#" inside the password and read the rest of the password
        # as path or query, into the messages below. Only ``rest`` is parsed further.
        scheme_name, userinfo, rest = split_userinfo(url)
        user_text, colon, password_text = (userinfo or "").partition(":")
        try:
            parts = urlsplit(f"{scheme_name}://{rest}" if scheme_name else url)
            port = parts.port
        except ValueError as exc:
            raise InvalidInput(f"invalid Redis URL {shown}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise InvalidInput(f"invalid Redis URL {shown}: use redis://, rediss:// or unix://")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"db", "ssl_ca_certs"}
        if unknown:
            raise InvalidInput(f"invalid Redis URL {shown}: unknown option {sorted(unknown)[0]!r}")

        db_text: str | None = query["db"][-1] if "db" in query else None
        path: str | None = None
        if scheme == "unix":
            path = unquote(parts.path)
            if not path:
                raise InvalidInput(f"invalid Redis URL {shown}: no socket path")
        elif db_text is None and parts.path.strip("/"):
            db_text = parts.path.strip("/")
        try:
            db = int(db_text) if db_text is not None else 0
        except ValueError:
            db = -1
        if db < 0:
            raise InvalidInput(f"invalid Redis URL {shown}: bad database number {db_text!r}")

        url_password = unquote(password_text) if colon and password_text else None
        return cls(
            host=parts.hostname or "localhost",
            port=port or DEFAULT_PORT,
            path=path,
            tls=scheme == "rediss",
            ssl_ca_certs=query["ssl_ca_certs"][-1] if "ssl_ca_certs" in query else None,
            username=unquote(user_text) if user_text else None,
            password=password if password is not None else url_password,
            db=db,
        )

    def describe(self) -> str:
        """The address for messages, never the password: ``host:port/db`` or ``unix:path``."""
        if self.path is not None:
            return f"unix:{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"


def parse_host_port(text: str, default_port: int = DEFAULT_SENTINEL_PORT) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6; a bare host gets ``default_port``)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(f"invalid host:port {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise InvalidInput(f"invalid host:port {text!r}")
    return host, port


class _Connection(asyncio.Protocol):
    """One Redis connection: writes commands and resolves a FIFO of futures, one per
    command, with the replies in the order they come (Redis answers in order)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, label: str) -> None:
        self.loop = loop
        self.label = label
        self.address: tuple[str, int] | None = None  # the primary's, as a Sentinel named it
        self.transport: asyncio.Transport | None = None
        self.parser = RespParser()
        self.pending: deque[asyncio.Future[RespValue]] = deque()
        self.closed = False
        # When Redis last showed progress: its last reply, or the request that found
        # the connection idle. Read only when a deadline is missed (stall detection).
        self.progress_at = 0.0
        self.lost: asyncio.Future[None] = loop.create_future()
        # Commands issued in one event-loop iteration while others are in flight
        # leave in one write: under load many concurrent calls share a syscall
        # instead of paying one each (a command on an idle connection goes at once).
        self.outbox: list[bytes] = []

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        pending = self.pending
        parser.feed(data)
        try:
            while (value := parser.get()) is not NOTHING:
                if not pending:
                    # RESP2 has no unsolicited replies outside pub/sub and MONITOR,
                    # which this client never enters: the stream is out of step.
                    raise StoreProtocolError("Redis sent a reply to no command")
                future = pending.popleft()
                # A call that gave up (deadline, cancellation) left its future done:
                # its late reply is dropped here, keeping the FIFO in step.
                if not future.done():
                    future.set_result(value)
        except StoreProtocolError as exc:
            self.abort("Redis sent an invalid reply", exc)
            return
        if pending:
            self.progress_at = self.loop.time()

    def eof_received(self) -> bool | None:
        return False  # let the transport close; connection_lost fails what is pending

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            log.warning("lost the connection to Redis at %s: %s", self.label, exc or "closed")
        self._fail_pending("lost the connection to Redis", exc)
        if not self.lost.done():
            self.lost.set_result(None)

    # used by LeanRedis

    def request(self, payload: bytes) -> asyncio.Future[RespValue]:
        """Send one encoded command; the future gets its reply (a RespError included)."""
        # is_closing(): the transport may have failed a moment ago, its connection_lost
        # still to come; a write now would be dropped (asyncio) or refused (uvloop).
        if self.closed or self.transport is None or self.transport.is_closing():
            raise StoreUnavailable("lost the connection to Redis")
        future: asyncio.Future[RespValue] = self.loop.create_future()
        if not self.pending:
            self.progress_at = self.loop.time()
            if not self.outbox:
                # Nothing in flight: a call on its own (a PBX sends them one by one)
                # goes out now rather than one event-loop pass later.
                self.pending.append(future)
                self.transport.write(payload)
                return future
        self.pending.append(future)
        self._queue(payload)
        return future

    def _queue(self, payload: bytes) -> None:
        # Commands issued while others await their replies leave together, in one
        # write at the end of this event-loop pass.
        if not self.outbox:
            self.loop.call_soon(self._flush)
        self.outbox.append(payload)

    def _flush(self) -> None:
        outbox, self.outbox = self.outbox, []
        transport = self.transport
        # a transport lost meanwhile: connection_lost fails the pending futures
        if transport is not None and not transport.is_closing():
            transport.write(outbox[0] if len(outbox) == 1 else b"".join(outbox))

    async def roundtrip(self, commands: Sequence[tuple[Arg, ...]]) -> list[RespValue]:
        """Send commands in one write and return their replies (connect-time use)."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise StoreUnavailable("lost the connection to Redis")
        futures: list[asyncio.Future[RespValue]] = []
        for _ in commands:
            futures.append(self.loop.create_future())
            self.pending.append(futures[-1])
        self.progress_at = self.loop.time()
        self._queue(b"".join(encode_command(*command) for command in commands))
        try:
            return [await future for future in futures]
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: no "exception never retrieved" log

    def stalled(self, limit: float) -> bool:
        """True when calls are waiting and Redis has sent nothing for ``limit`` seconds."""
        return bool(self.pending) and self.loop.time() - self.progress_at >= limit

    def abort(self, message: str, cause: BaseException | None) -> None:
        """Drop the connection now: pending calls fail with StoreUnavailable(message)."""
        if not self.closed:
            self.closed = True
            log.warning("dropping the connection to Redis at %s: %s", self.label, message)
        self._fail_pending(message, cause)
        if self.transport is not None:
            self.transport.abort()

    def discard(self) -> None:
        """Drop the connection now, quietly (it was never handed to a caller)."""
        self.closed = True
        self._fail_pending("the connection was discarded", None)
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        """Close (abruptly: unsent commands are dropped) and wait until the socket is."""
        self.closed = True
        self._fail_pending("the Redis client was closed", None)
        if self.transport is not None:
            self.transport.abort()
            await self.lost

    def _fail_pending(self, message: str, cause: BaseException | None) -> None:
        pending = self.pending
        while pending:
            future = pending.popleft()
            if not future.done():
                # One exception per future: a shared one would collect every
                # waiter's traceback.
                error = StoreUnavailable(message)
                error.__cause__ = cause
                future.set_exception(error)


class LeanRedis:
    """One pipelined Redis connection for the hot path, reconnecting as needed.

    Build it with :meth:`from_settings` (or :meth:`from_url`); it connects on the
    first call. Use :meth:`call` for any command and :meth:`evalsha` for scripts;
    both take a ``timeout`` in seconds (default ``command_timeout``) that bounds
    the whole call, connecting included. :meth:`close` when done (or ``async with``).

    Replies are returned as decoded by :mod:`callscreen.callpath.resp`: ``bytes``, ``int``,
    ``None``, nested ``list`` (an error nested inside an array stays a
    :class:`~callscreen.callpath.resp.RespError` value). The client is bound to the event
    loop it first runs on.

    Plain-int counters, read by :mod:`callscreen.gateway.metrics` and never reset:
    :attr:`requests`, :attr:`failures` (calls that raised, whatever the cause),
    :attr:`timeouts` and :attr:`error_replies` (two kinds of failure),
    :attr:`noscript` (scripts sent again after a restart or failover) and
    :attr:`connects`.
    """

    def __init__(
        self,
        target: RedisTarget,
        *,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_service: str = "callscreen",
        sentinel_password: str | None = None,
        connect_timeout: float = 0.5,
        command_timeout: float = 10.0,
        stall_timeout: float = 3.0,
        reconnect_backoff: float = 0.1,
        sentinel_check_interval: float = 1.0,
        follow_moved: bool = True,
    ) -> None:
        self.target = target
        self.follow_moved = follow_moved
        self.sentinel_check_interval = sentinel_check_interval
        self._watcher: asyncio.Task[None] | None = None
        self.sentinel_service = sentinel_service
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.stall_timeout = stall_timeout
        self.reconnect_backoff = reconnect_backoff
        self._sentinels = list(sentinels)
        self._sentinel_password = sentinel_password
        self._ssl: ssl.SSLContext | None = None
        if target.tls:
            self._ssl = ssl.create_default_context(cafile=target.ssl_ca_certs)
        self._conn: _Connection | None = None
        self._retired: list[_Connection] = []  # left for another Cluster node (MOVED)
        self._connecting: asyncio.Task[_Connection] | None = None
        self._retry_at = 0.0
        self._last_failure: BaseException | None = None
        self._closed = False
        # Counters for metrics (read, never reset): plain ints, no cost on the call path.
        self.requests = 0  # commands sent: each one is a round trip (pipelined or not)
        self.failures = 0  # calls that raised StoreError (timeouts and error replies included)
        self.timeouts = 0  # calls that missed their deadline
        self.error_replies = 0  # calls Redis answered with an error (NOSCRIPT retried: not one)
        self.noscript = 0  # NOSCRIPT replies answered by sending the script (after a restart)
        self.connects = 0  # connections opened (the first one, then each reconnect)
        self.moved = 0  # Redis Cluster MOVED replies followed to another node

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> LeanRedis:
        """The client the settings describe (URL, password, Sentinels, connect timeout).

        ``options`` are passed on to the constructor (``command_timeout``, ...).
        """
        password = settings.redis_password
        sentinel_password = settings.redis_sentinel_password
        target = RedisTarget.from_url(
            settings.redis_url,
            password=password.get_secret_value() if password is not None else None,
        )
        options.setdefault("connect_timeout", settings.redis_connect_timeout_ms / 1000)
        return cls(
            target,
            sentinels=[parse_host_port(item) for item in settings.redis_sentinels],
            sentinel_service=settings.redis_sentinel_service,
            sentinel_password=(
                sentinel_password.get_secret_value() if sentinel_password is not None else None
            ),
            **options,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> LeanRedis:
        """A client for one URL, no Sentinel; ``options`` go to the constructor."""
        return cls(RedisTarget.from_url(url), **options)

    async def __aenter__(self) -> LeanRedis:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether a connection is open right now (calls connect when it is not)."""
        return self._conn is not None and not self._conn.closed

    async def call(self, *args: Arg, timeout: float | None = None) -> Any:
        """Run one command and return its reply; an error reply raises StoreError.

        Raises :class:`~callscreen.core.errors.StoreUnavailable` when Redis cannot be
        reached, the connection drops, or no reply comes within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        budget = self.command_timeout if timeout is None else timeout
        payload = encode_command(*args)
        deadline = loop.time() + budget
        try:
            value = await self._send(payload, deadline, budget)
            if type(value) is RespError and value.code == "MOVED" and self._moved(value):
                value = await self._send(payload, deadline, budget)
        except StoreError:
            self.failures += 1
            raise
        if type(value) is RespError:
            raise self._error(value)
        return value

    async def evalsha(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        *,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> Any:
        """Run a Lua script by its SHA1, sending its source only if Redis lacks it;
        ``read_only``: as ``EVALSHA_RO``/``EVAL_RO`` (Redis >= 7; a replica runs them).

        Redis forgets its script cache on restart, failover and ``SCRIPT FLUSH`` and
        then answers ``NOSCRIPT``: the call is repeated as ``EVAL`` (which caches the
        script again) within the same deadline. Errors as for :meth:`call`.
        """
        loop = asyncio.get_running_loop()
        budget = self.command_timeout if timeout is None else timeout
        deadline = loop.time() + budget
        evalsha, eval_ = (b"EVALSHA_RO", b"EVAL_RO") if read_only else (b"EVALSHA", b"EVAL")
        payload = encode_command(evalsha, script.sha1, len(keys), *keys, *args)
        try:
            value = await self._send(payload, deadline, budget)
            if type(value) is RespError and value.code == "MOVED" and self._moved(value):
                value = await self._send(payload, deadline, budget)
            if type(value) is RespError and value.code == "NOSCRIPT":
                self.noscript += 1
                payload = encode_command(eval_, script.source, len(keys), *keys, *args)
                value = await self._send(payload, deadline, budget)
        except StoreError:
            self.failures += 1
            raise
        if type(value) is RespError:
            raise self._error(value)
        return value

    async def close(self) -> None:
        """Close the connection, stop any connect attempt; later calls fail. Idempotent."""
        self._closed = True
        for task in (self._connecting, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.wait((task,))
        self._watcher = None
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        retired, self._retired = self._retired, []
        for old in retired:
            await old.close()

    # the hot path

    async def _send(self, payload: bytes, deadline: float, budget: float) -> RespValue:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connected(deadline, budget)
        future = conn.request(payload)
        self.requests += 1
        timer = conn.loop.call_at(deadline, self._expire, future, conn, budget)
        try:
            return await future
        except asyncio.CancelledError:
            # The caller gave up on its own deadline (asyncio.timeout): the same stall
            # check as when ours expires.
            if conn.stalled(self.stall_timeout):
                conn.abort(f"no reply from Redis for {self.stall_timeout:g} s", None)
            raise
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[RespValue], conn: _Connection, budget: float) -> None:
        if future.done():
            return
        # Fail the call but leave its future in the FIFO: the reply is discarded on arrival.
        self.timeouts += 1
        future.set_exception(StoreUnavailable(f"no reply from Redis within {budget * 1000:g} ms"))
        if conn.stalled(self.stall_timeout):
            conn.abort(f"no reply from Redis for {self.stall_timeout:g} s", None)

    def _moved(self, value: RespError) -> bool:
        """A Redis Cluster ``MOVED slot host:port`` reply: connect to that node from now
        on (see the module's docstring). False when it names where we already are."""
        parts = value.message.split()
        host, _, port = parts[2].rpartition(":") if len(parts) >= 3 else ("", "", "")
        if not self.follow_moved or self._sentinels or not host or not port.isdigit():
            return False
        target = dataclasses.replace(self.target, host=host, port=int(port), path=None)
        if target == self.target:
            return False
        log.info("Redis Cluster: the slot is served by %s", target.describe())
        self.target = target
        self.moved += 1
        conn, self._conn = self._conn, None
        if conn is not None:
            # Calls still waiting on it get their replies (MOVED too: they follow); then go.
            self._retired.append(conn)
            asyncio.get_running_loop().call_later(self.command_timeout, self._retire, conn)
        return True

    def _retire(self, conn: _Connection) -> None:
        if conn in self._retired:
            self._retired.remove(conn)
            conn.abort("moved to another Cluster node", None)

    def _error(self, value: RespError) -> StoreError:
        self.failures += 1
        self.error_replies += 1
        if value.code == "READONLY" and self._sentinels and self._conn is not None:
            # We are on a primary that has been demoted: find the new one.
            self._conn.abort("the Redis primary became a replica", None)
        return StoreError(f"Redis error: {value.message}")

    # connecting

    async def _connected(self, deadline: float, budget: float) -> _Connection:
        """The open connection, waiting (up to the deadline) for a connect attempt."""
        if self._closed:
            raise StoreUnavailable("the Redis client is closed")
        loop = asyncio.get_running_loop()
        task = self._connecting
        if task is None:
            # At most one attempt per reconnect_backoff: a caller whose deadline comes
            # before the next attempt is allowed fails now, the others wait for it.
            delay = self._retry_at - loop.time()
            if delay > 0 and self._retry_at >= deadline:
                raise StoreUnavailable(
                    f"Redis unavailable, next attempt in {delay * 1000:.0f} ms: "
                    f"{self._last_failure}"
                ) from self._last_failure
            task = loop.create_task(self._connect(delay))
            task.add_done_callback(self._connect_done)
            self._connecting = task
        # wait() neither cancels the shared attempt when this caller gives up nor
        # raises the attempt's own cancellation (by close()) into this caller.
        done, _ = await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
        if not done:
            self.timeouts += 1
            raise StoreUnavailable(f"could not connect to Redis within {budget * 1000:g} ms")
        if task.cancelled():
            raise StoreUnavailable("the Redis client was closed")
        exc = task.exception()
        if exc is None:
            return task.result()
        if isinstance(exc, StoreError):
            # A fresh exception per waiter (re-raising the shared one would pile every
            # waiter's traceback onto it), with the same cause: the OSError, ...
            raise type(exc)(*exc.args) from exc.__cause__
        raise exc  # a bug, not a Redis failure: let it show

    def _connect_done(self, task: asyncio.Task[_Connection]) -> None:
        self._connecting = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved when no caller waited
        if exc is None:
            self._last_failure = None
            return
        if self._last_failure is None:
            log.warning("cannot connect to Redis: %s", exc)
        self._last_failure = exc
        self._retry_at = asyncio.get_running_loop().time() + self.reconnect_backoff

    async def _connect(self, delay: float) -> _Connection:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._sentinels:
            conn = await self._connect_via_sentinels()
        else:
            conn = await self._open_data(self.target)
        self._conn = conn
        self.connects += 1
        log.info("connected to Redis at %s", conn.label)
        if self._sentinels and self.sentinel_check_interval > 0 and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_primary())
        return conn

    async def _watch_primary(self) -> None:
        """Drop the connection when the Sentinels name another primary (see the
        module's docstring): a failover whose old primary is still up and has not
        been told yet."""
        while not self._closed:
            await asyncio.sleep(self.sentinel_check_interval)
            conn = self._conn
            if conn is None or conn.closed or conn.address is None:
                continue
            for host, port in list(self._sentinels):
                try:
                    named = await self._ask_sentinel(host, port)
                except StoreError:
                    continue  # that Sentinel is down: ask the next one
                except Exception:  # a bug: never let it end the watch
                    log.exception("asking Sentinel %s:%d for the primary failed", host, port)
                    break
                if named is not None and named != conn.address and conn is self._conn:
                    conn.abort(f"the Sentinels name {named[0]}:{named[1]} as the primary", None)
                break

    async def _open_data(self, target: RedisTarget) -> _Connection:
        """A connection for calls: logged in, database selected, primary checked."""
        commands: list[tuple[Arg, ...]] = []
        if target.password is not None:
            if target.username is not None:
                commands.append((b"AUTH", target.username, target.password))
            else:
                commands.append((b"AUTH", target.password))
        if target.db:
            commands.append((b"SELECT", target.db))
        if self._sentinels:
            commands.append((b"ROLE",))
        if not commands:
            # Nothing to say, but the server must answer once before the connection
            # counts as up (a stopped server's kernel still accepts connections).
            commands.append((b"PING",))
        conn, replies = await self._open(target, commands, self._ssl)
        try:
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, RespError):
                    name = command[0].decode() if isinstance(command[0], bytes) else command[0]
                    refused_credentials = name == "AUTH" or reply.code in ("NOAUTH", "WRONGPASS")
                    error = StoreAuthError if refused_credentials else StoreError
                    raise error(f"Redis at {target.describe()} refused {name}: {reply}")
            if self._sentinels:
                role = replies[-1]
                if not (isinstance(role, list) and role and role[0] == b"master"):
                    kind = role[0] if isinstance(role, list) and role else role
                    raise StoreUnavailable(f"{target.describe()} is not a primary (ROLE {kind!r})")
        except StoreError:
            await conn.close()
            raise
        return conn

    async def _open(
        self,
        target: RedisTarget,
        commands: Sequence[tuple[Arg, ...]],
        tls: ssl.SSLContext | None,
    ) -> tuple[_Connection, list[RespValue]]:
        """Connect and run the first commands, all within the connect timeout."""
        loop = asyncio.get_running_loop()
        label = target.describe()
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if target.path is not None:
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(loop, label), target.path, ssl=tls
                    )
                else:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(loop, label),
                        target.host,
                        target.port,
                        ssl=tls,
                        server_hostname=target.host if tls is not None else None,
                    )
                replies = await conn.roundtrip(commands)
        except TimeoutError as exc:
            if conn is not None:
                await conn.close()
            raise StoreUnavailable(
                f"no answer from Redis at {label} within {self.connect_timeout * 1000:g} ms"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            if conn is not None:
                await conn.close()
            raise StoreUnavailable(f"cannot connect to Redis at {label}: {exc}") from exc
        except BaseException:
            # Cancelled (close(), or a bug): no await here, just let go of the socket.
            if conn is not None:
                conn.discard()
            raise
        return conn, replies

    async def _connect_via_sentinels(self) -> _Connection:
        problems: list[str] = []
        for index, (host, port) in enumerate(list(self._sentinels)):
            sentinel = f"Sentinel {host}:{port}"
            try:
                primary = await self._ask_sentinel(host, port)
            except StoreError as exc:
                problems.append(f"{sentinel}: {exc}")
                continue
            if primary is None:
                problems.append(f"{sentinel} knows no primary named {self.sentinel_service!r}")
                continue
            target = dataclasses.replace(self.target, host=primary[0], port=primary[1], path=None)
            try:
                conn = await self._open_data(target)
            except StoreError as exc:
                problems.append(f"{sentinel} named {target.describe()}: {exc}")
                continue
            if index:
                # The Sentinel that answered is asked first next time.
                self._sentinels.insert(0, self._sentinels.pop(index))
            conn.address = primary
            return conn
        raise StoreUnavailable(
            f"no Redis primary for service {self.sentinel_service!r}: " + "; ".join(problems)
        )

    async def _ask_sentinel(self, host: str, port: int) -> tuple[str, int] | None:
        commands: list[tuple[Arg, ...]] = []
        if self._sentinel_password is not None:
            commands.append((b"AUTH", self._sentinel_password))
        commands.append((b"SENTINEL", b"get-master-addr-by-name", self.sentinel_service))
        sentinel = RedisTarget(host=host, port=port)
        conn, replies = await self._open(sentinel, commands, None)
        await conn.close()
        for reply in replies:
            if isinstance(reply, RespError):
                raise StoreError(f"Sentinel error: {reply}")
        address = replies[-1]
        if address is None:
            return None  # the null array: no such service
        if (
            isinstance(address, list)
            and len(address) == 2
            and isinstance(address[0], bytes)
            and isinstance(address[1], bytes)
            and address[1].isdigit()
        ):
            return address[0].decode(), int(address[1])
        raise StoreError(f"Sentinel sent an unexpected address {address!r}")
