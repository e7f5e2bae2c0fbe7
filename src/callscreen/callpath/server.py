"""The FastAGI server: a thin asyncio layer over :mod:`callscreen.callpath.protocol`.

One :class:`asyncio.Protocol` per connection feeds bytes to an
:class:`~callscreen.callpath.protocol.AgiSession`; once the environment is complete
(or the connection fails first) it starts one task that routes on the script name,
answers with one command, reads its reply and closes. Every read is bounded (size,
lines, time); end-of-file at any point is a hang-up; any error is contained to its
connection. See ``docs/server-behavior.md``.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import fcntl
import ipaddress
import logging
import socket
import termios
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.protocol import (
    AgiEnv,
    AgiSession,
    EnvAmended,
    Phase,
    Reply,
    ReplyReceived,
    bad_request_decision,
    mset_command,
    printable,
    reply_outcome,
    screen_request,
)
from callscreen.callpath.stats import CallStats
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, PeerHangup, ProtocolError
from callscreen.core.model import Result
from callscreen.core.ratelog import LogLimiter

__all__ = [
    "AgiServer",
    "Answer",
    "CallInfo",
    "Handler",
    "ScreenerLike",
    "address_in",
    "format_call",
    "screen_answer",
]

log = logging.getLogger("callscreen.agi")

#: How long a *tainted* environment (a caller-ID name holding newlines) is given for
#: the rest of Asterisk's block to arrive before it is read: a forged early empty
#: line may end the block before the genuine arguments. Honest calls never wait.
TAINTED_SETTLE_S = 0.010
#: At most this many times a call is screened again because more of its
#: environment arrived late (each time the env changed).
MAX_RESCREENS = 3
#: Past ``max_connections`` (when no connection is still waiting for its environment to
#: make room), calls get the fail-policy answer without screening; past this many
#: times ``max_connections``, connections are closed at once.
HARD_LIMIT_FACTOR = 2
#: From this share of ``max_connections`` on, a connection that has not completed its
#: environment within ``idle_close_ms`` of its accept is closed (Asterisk sends it at
#: once): idle sockets cannot hold the slots that calls need.
IDLE_CLOSE_SHARE = 0.8
#: Lines a peer can cause (refused, garbage, unknown scripts, ...) are written once
#: per cause per this many seconds; the rest are summed up in one line.
NOTICE_INTERVAL_S = 10.0
#: The deadline runs from the connection's accept; screening stops this share of it
#: early (at least :data:`MIN_DEADLINE_MARGIN_S`), so that the answer is *written*
#: before the deadline, not merely decided.
DEADLINE_MARGIN_SHARE = 0.1
MIN_DEADLINE_MARGIN_S = 0.005


class ScreenerLike(Protocol):
    """What the server needs of :class:`callscreen.callpath.screener.Screener`."""

    async def screen(self, request: ScreenRequest) -> Decision:
        """The decision, within the deadline; never raises but for cancellation."""
        ...

    def fail_decision(self, request: ScreenRequest, reason: str) -> Decision:
        """The fail-policy answer (never blocks an emergency number)."""
        ...


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a handler knows about the connection beyond the env."""

    peer: str
    overloaded: bool = False
    host: str = ""  # the peer's address, without its port
    accepted: float | None = None  # the event loop's time at the accept


@dataclass(frozen=True, slots=True)
class Answer:
    """What a handler answers: the variables of the one ``EXEC MSet`` command, and
    ``key=value`` fields for the call's log line. For the metrics, the decision it
    carries (if any), the call's direction, and why a fail-policy answer failed
    (``cause``: ``unavailable``, ``deadline``, ``overloaded``, ``internal``,
    ``bad_request``)."""

    variables: Mapping[str, str]
    log_fields: tuple[tuple[str, str], ...] = ()
    decision: Decision | None = None
    direction: str = ""
    cause: str = ""


#: A route: ``script name -> handler``. A handler must not raise (the server still
#: contains it if it does: the connection is closed without an answer).
Handler = Callable[[AgiEnv, CallInfo], Awaitable[Answer]]


def _field(value: str) -> str:
    value = printable(value, 64)
    if not value:
        return "-"
    if any(c in value for c in ' "='):
        return '"' + value.replace('"', "'") + '"'
    return value


class AgiServer:
    """The FastAGI server.

    ``AgiServer(settings, screener)``; ``await start()`` binds
    ``settings.listen_host:listen_port`` (port 0: a free one, see :attr:`port`);
    ``await close(grace)`` stops accepting, lets calls in flight finish for up to
    ``grace`` seconds, then cancels the rest. Routes live in :attr:`routes`
    (``{"screen": self.screen}``); add a handler to serve another script name (the
    gateway adds ``optout``, :class:`callscreen.gateway.optout.OptoutRoute`).

    Settings are read from :attr:`settings` at each connection and each call;
    :meth:`reconfigure` swaps them (SIGHUP) for the calls that start afterwards.
    Counts for the metrics are kept in :attr:`stats`.
    """

    def __init__(self, settings: Settings, screener: ScreenerLike) -> None:
        self.settings = settings
        self.screener = screener
        self.routes: dict[str, Handler] = {"screen": self.screen}
        self.deadline = settings.deadline_ms / 1000
        self._networks = settings.client_networks()
        self._server: asyncio.Server | None = None
        # in accept order (a dict keeps it): the oldest connection still waiting for its
        # environment is the first such one met
        self._connections: dict[_AgiConnection, None] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self.calls = 0  # calls answered (one log line each)
        self.stats = CallStats()
        self.draining = False  # set by close(): connections still arriving are refused
        #: the lines peers can cause, rate-limited; its counts are in the metrics
        self.notices = LogLimiter(log, NOTICE_INTERVAL_S)
        self._notice_flush: asyncio.TimerHandle | None = None
        self.reuse_port = False  # SO_REUSEPORT: one of several worker processes on the port

    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` from now on: calls already screening keep the old deadline;
        connections already open keep their size limits. The listening address is
        not changed (that needs a restart)."""
        self.settings = settings
        self.deadline = settings.deadline_ms / 1000
        self._networks = settings.client_networks()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _AgiConnection(self),
            self.settings.listen_host,
            self.settings.listen_port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
            backlog=min(self.settings.max_connections, 4096),
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before :meth:`start` and after :meth:`close`)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The port listened on (the one picked when ``listen_port`` is 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    @property
    def waiting_connections(self) -> int:
        """Open connections whose AGI environment has not ended yet (no call yet)."""
        return sum(1 for c in self._connections if c.waiting_for_env)

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting; let connections in flight finish for up to ``grace``
        seconds (``settings.shutdown_grace_s`` by default); cancel the rest."""
        grace = self.settings.shutdown_grace_s if grace is None else grace
        self.draining = True
        for timer in (self._sweep, self._notice_flush):
            if timer is not None:
                timer.cancel()
        self._sweep = self._notice_flush = None
        self.notices.flush()
        server, self._server = self._server, None
        if server is not None:
            # The listening socket goes now: new connections are refused by the kernel
            # (Asterisk: AGISTATUS=FAILURE, or the next hagi:// target), as are those
            # still in its accept queue; any the loop had already accepted are closed
            # unread in connection_made.
            server.close()
        for connection in list(self._connections):
            connection.start()  # one still waiting for its environment is a call in flight
        tasks = {c.task for c in self._connections if c.task is not None and not c.task.done()}
        if tasks:
            log.info("waiting up to %.1f s for %d call(s) in flight", grace, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                log.warning("cancelling %d call(s) still in flight", len(pending))
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            await server.wait_closed()

    # ------------------------------------------------------------ admission

    def allowed(self, host: str) -> bool:
        """Whether a client at ``host`` may connect (``allowed_clients``; empty: all)."""
        if not self._networks:
            return True
        return address_in(host, self._networks)

    def notice(self, cause: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        """Log a line a peer caused (refused connection, garbage, ...), at most once per
        ``cause`` per :data:`NOTICE_INTERVAL_S`; the others are summed up later.
        Values from the peer must already be cleaned (:func:`printable`)."""
        if self.notices.log(level, cause, msg, *args) or self._notice_flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._notice_flush = loop.call_later(self.notices.interval, self._flush_notices)

    def _flush_notices(self) -> None:
        self._notice_flush = None
        self.notices.flush()

    def make_room(self) -> bool:
        """At the limit: close the oldest connection that has not completed its AGI
        environment (it is no call yet) so that a newcomer takes its slot. False if
        every open connection is a call past its environment."""
        for connection in self._connections:
            # bytes already in the kernel's buffer: its environment is on its way (the
            # loop has not read it yet: accepts come in batches), so it is not idle
            if connection.waiting_for_env and not connection.input_waiting():
                connection.evict("evicted")
                return True
        return False

    def watch_idle(self) -> None:
        """Above :data:`IDLE_CLOSE_SHARE` of the limit, close (every ``idle_close_ms``
        / 2) the connections that have not completed their environment within
        ``idle_close_ms`` of their accept. Runs only while the server is that full."""
        if self._sweep is None and not self.draining:
            delay = self.settings.idle_close_ms / 2000
            self._sweep = asyncio.get_running_loop().call_later(delay, self._close_idle)

    def _close_idle(self) -> None:
        self._sweep = None
        settings = self.settings
        if len(self._connections) < settings.max_connections * IDLE_CLOSE_SHARE:
            return
        oldest = time.perf_counter() - settings.idle_close_ms / 1000
        idle = []
        for connection in self._connections:  # accept order: stop at the first young one
            if connection.started > oldest:
                break
            if connection.waiting_for_env and not connection.input_waiting():
                idle.append(connection)
        for connection in idle:
            connection.evict("idle")
        self.watch_idle()

    # ------------------------------------------------------------ the screen route

    def budget(self, call: CallInfo) -> float:
        """Seconds left for screening ``call``: the deadline counted from the
        connection's accept, less a margin for writing the answer (never negative)."""
        deadline = self.deadline
        margin = max(deadline * DEADLINE_MARGIN_SHARE, MIN_DEADLINE_MARGIN_S)
        spent = 0.0
        if call.accepted is not None:
            spent = asyncio.get_running_loop().time() - call.accepted
        return max(0.0, deadline - margin - spent)

    async def screen(self, env: AgiEnv, call: CallInfo) -> Answer:
        """The ``screen`` route: see :func:`screen_answer`; the deadline runs from the
        connection's accept (:meth:`budget`)."""
        return await screen_answer(
            self.screener, env, self.budget(call), overloaded=call.overloaded
        )


async def screen_answer(
    screener: ScreenerLike, env: AgiEnv, deadline: float, *, overloaded: bool = False
) -> Answer:
    """``screen,DIRECTION[,NUMBER[,CAMPAIGN]]``: the screening decision within
    ``deadline`` seconds, or the fail-policy answer when screening fails, times out or
    the gateway is ``overloaded``. A bad DIRECTION is answered ``UNSCREENED`` (and
    logged as an error): a dialplan mistake must not block calls. Never raises but
    for cancellation."""
    try:
        request = screen_request(env)
    except InvalidInput as exc:
        log.error("uniqueid=%s: %s; answering UNSCREENED", _field(env.uniqueid), exc)
        decision = bad_request_decision(f"bad request: {exc}")
        return Answer(
            decision.answer_variables(None),
            (("direction", env.arg(1)), *decision.log_fields()),
            decision,
            cause="bad_request",
        )
    cause = ""
    if overloaded:
        decision = _fail(screener, request, "screening unavailable: gateway overloaded")
        cause = "overloaded"
    elif deadline <= 0:  # spent before screening could start (a slow peer, a busy loop)
        decision = _fail(screener, request, "screening unavailable: deadline exceeded")
        cause = "deadline"
    else:
        try:
            # asyncio.timeout rather than wait_for: same guard, no extra task per call
            async with asyncio.timeout(deadline):
                decision = await screener.screen(request)
        except TimeoutError:
            decision = _fail(screener, request, "screening unavailable: deadline exceeded")
            cause = "deadline"
        except Exception:
            log.exception("uniqueid=%s: screening raised", _field(request.uniqueid))
            decision = _fail(screener, request, "screening unavailable: internal error")
            cause = "internal"
    number = decision.number or request.number
    direction = request.direction.value
    return Answer(
        decision.answer_variables(request),
        (("direction", direction), ("number", number), *decision.log_fields()),
        decision,
        direction,
        cause,
    )


def address_in(
    host: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether the address ``host`` is in one of ``networks`` (an IPv4-mapped IPv6
    address is checked as IPv4; anything that is not an address is in none)."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _fail(screener: ScreenerLike, request: ScreenRequest, reason: str) -> Decision:
    try:
        return screener.fail_decision(request, reason)
    except Exception:
        log.exception("uniqueid=%s: fail_decision raised", _field(request.uniqueid))
        return Decision(Result.UNSCREENED, reason=reason, failed=True)


class _AgiConnection(asyncio.Protocol):
    """One FastAGI connection: the protocol callbacks feed the session and wake the
    connection's task, which does the talking."""

    def __init__(self, server: AgiServer) -> None:
        settings = server.settings
        self.server = server
        self.session = AgiSession(
            max_line_bytes=settings.max_line_bytes, max_env_lines=settings.max_env_lines
        )
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = "?"
        self.host = ""
        self.overloaded = False
        self.error: ProtocolError | None = None
        self.eof = False
        self.amended = False
        self.replies: list[Reply] = []
        self.started = 0.0
        self.accepted: float | None = None
        self.evicted = ""
        self.admitted = False
        self.timed_out = False  # the reply's timer fired
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------ callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.loop = loop = asyncio.get_running_loop()
        self.started = time.perf_counter()
        self.accepted = accepted = loop.time()
        server = self.server
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.peer = f"{host}:{peer[1]}" if isinstance(peer, tuple) and len(peer) > 1 else host
        self.host = host
        if server.draining:
            # accepted by the loop just before the listener closed: refuse it too
            server.stats.refuse("draining")
            log.info("refused connection from %s: shutting down", self.peer)
            transport.close()
            return
        if not server.allowed(host):
            server.stats.refuse("not_allowed")
            server.notice(
                "not_allowed", "refused connection from %s: not in allowed_clients", self.peer
            )
            transport.close()
            return
        limit = server.settings.max_connections
        if len(server._connections) >= limit:
            server.make_room()
        active = len(server._connections)
        if active >= limit * HARD_LIMIT_FACTOR:
            server.stats.refuse("overload")
            server.notice(
                "overload", "refused connection from %s: %d connections open", self.peer, active
            )
            transport.close()
            return
        self.overloaded = active >= limit
        server._connections[self] = None
        self.admitted = True
        if active + 1 >= limit * IDLE_CLOSE_SHARE:
            server.watch_idle()
        # No task yet: the environment is read by data_received, and the call's task
        # starts once it is complete (or the connection fails, or its time is up).
        # A PBX sends calls one by one: a task waiting on the environment's segments
        # would cost an event-loop pass and a timeout object per segment, per call.
        self._timer = loop.call_at(
            accepted + server.settings.env_timeout_ms / 1000, self._env_expired
        )

    def start(self) -> None:
        """Start the call's task (once; never for a refused connection)."""
        if self.task is not None or not self.admitted or self.loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.task = self.loop.create_task(self._run())

    def _env_expired(self) -> None:
        self._timer = None
        self.start()  # the task finds the environment incomplete and its time up

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            events = self.session.feed(data)
        except ProtocolError as exc:
            self.error = exc
            if self.transport is not None and not self.transport.is_closing():
                self.transport.pause_reading()
        else:
            for event in events:
                if isinstance(event, EnvAmended):
                    self.amended = True
                elif isinstance(event, ReplyReceived):
                    self.replies.append(event.reply)
        if self.task is None:
            if self.error is not None or self.session.phase is not Phase.ENV:
                self.start()
            return
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        if self.task is None:
            self.start()
        self._wake()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.server._connections.pop(self, None)
        if self.task is None:
            self.start()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def waiting_for_env(self) -> bool:
        """Not a call yet: its AGI environment has not ended (nor failed)."""
        return self.session.phase is Phase.ENV and self.error is None and not self.eof

    def input_waiting(self) -> bool:
        """Whether bytes wait in the socket's receive buffer, not read by the loop yet."""
        transport = self.transport
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        try:
            count = array.array("i", [0])
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
        except (OSError, AttributeError, ValueError):
            return False
        return count[0] > 0

    def evict(self, reason: str) -> None:
        """Close a connection still waiting for its environment to free its slot:
        ``evicted`` (room made for a newcomer) or ``idle`` (above the idle share)."""
        self.evicted = reason
        self.server._connections.pop(self, None)
        self.abort()

    # ------------------------------------------------------------ waiting

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _reply_expired(self) -> None:
        self._timer = None
        self.timed_out = True
        self._wake()

    async def _until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; a protocol error or the end of the
        stream ends the wait with :class:`ProtocolError` / :class:`PeerHangup`."""
        loop = self.loop
        assert loop is not None
        while not condition():
            if self.error is not None:
                raise self.error
            if self.eof:
                raise PeerHangup("the peer closed the connection")
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # ------------------------------------------------------------ the call

    async def _run(self) -> None:
        stats = self.server.stats
        try:
            await self._serve()
        except PeerHangup as exc:
            if self.evicted:
                stats.unanswer(self.evicted)
                log.debug("%s: closed before its AGI environment (%s)", self.peer, self.evicted)
            else:
                stats.unanswer("hangup")
                log.debug("%s: %s", self.peer, exc)
        except ProtocolError as exc:
            stats.unanswer("protocol_error")
            self.server.notice(
                "protocol_error",
                "%s: AGI protocol error: %s; closing",
                self.peer,
                printable(str(exc)),
            )
        except Exception:
            stats.unanswer("error")
            log.exception("%s: AGI connection failed", self.peer)
        finally:
            if self.transport is not None:
                self.transport.close()

    async def _serve(self) -> None:
        settings = self.server.settings
        session = self.session
        try:
            if session.phase is Phase.ENV:  # started early: a failure, its time up, shutdown
                loop = self.loop
                assert loop is not None
                accepted = loop.time() if self.accepted is None else self.accepted
                async with asyncio.timeout_at(accepted + settings.env_timeout_ms / 1000):
                    await self._until(lambda: session.phase is not Phase.ENV)
        except TimeoutError:
            self.server.stats.unanswer("env_timeout")
            self.server.notice(
                "env_timeout",
                "%s: no complete AGI environment within %d ms; closing",
                self.peer,
                settings.env_timeout_ms,
                level=logging.INFO,
            )
            return
        env = session.env
        assert env is not None
        if env.tainted:
            self.server.notice(
                "forged_env",
                "uniqueid=%s channel=%s: forged-looking AGI environment (caller-ID name %r)",
                _field(env.uniqueid),
                _field(env.channel),
                printable(env.calleridname),
            )
            await asyncio.sleep(TAINTED_SETTLE_S)
        handler = self.server.routes.get(env.script)
        if handler is None:
            self.server.stats.unanswer("unknown_script")
            self.server.notice(
                "unknown_script",
                "%s uniqueid=%s: unknown AGI script %r; closing",
                self.peer,
                _field(env.uniqueid),
                printable(env.script),
            )
            return
        call = CallInfo(
            peer=self.peer, overloaded=self.overloaded, host=self.host, accepted=self.accepted
        )
        self.amended = False
        env = session.env or env
        answer = await handler(env, call)
        # Right before answering: did more of the environment arrive (a forged
        # early empty line in the caller-ID name)? Then answer on the corrected env.
        env, answer = await self._recheck(env, answer, handler, call)
        if not self._write(answer):
            self._log_call(env, answer, "hangup before answer")
            return
        elapsed_ms = (time.perf_counter() - self.started) * 1000
        env, answer, outcome = await self._await_reply(env, answer, handler, call)
        self._log_call(env, answer, outcome, elapsed_ms)

    async def _recheck(
        self, env: AgiEnv, answer: Answer, handler: Handler, call: CallInfo
    ) -> tuple[AgiEnv, Answer]:
        for _ in range(MAX_RESCREENS):
            if not self.amended:
                break
            self.amended = False
            current = self.session.env
            if current is None or current == env:
                continue
            log.warning(
                "uniqueid=%s: AGI environment continued after its end (forged empty line "
                "in caller-ID name %r); screening again",
                _field(current.uniqueid),
                printable(current.calleridname),
            )
            env = current
            # a correction gets a deadline of its own: the first answer met the call's
            answer = await handler(env, dataclasses.replace(call, accepted=None))
        return env, answer

    def _write(self, answer: Answer) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(self.session.send(mset_command(answer.variables)))
        return True

    async def _await_reply(
        self, env: AgiEnv, answer: Answer, handler: Handler, call: CallInfo
    ) -> tuple[AgiEnv, Answer, str]:
        """Wait for the reply(ies). If environment lines still arrive before it (the
        answer went out before a forged block's genuine tail came in), answer again
        on the corrected env — Asterisk runs commands in order, the later one wins.
        Returns the env and answer that stand, and the outcome for the log line."""
        session = self.session
        corrections = 0
        corrected = False
        loop = self.loop
        assert loop is not None
        # A timer that wakes the wait, not asyncio.timeout: one handle, no task
        # cancellation (a re-screen below keeps its own deadline).
        self.timed_out = False
        self._timer = loop.call_at(
            loop.time() + self.server.settings.reply_timeout_ms / 1000, self._reply_expired
        )
        try:
            while True:
                await self._until(
                    lambda: self.amended or session.pending_replies == 0 or self.timed_out
                )
                if self.amended and corrections < MAX_RESCREENS:
                    corrections += 1
                    new_env, new_answer = await self._recheck(env, answer, handler, call)
                    if new_env != env:
                        env, answer, corrected = new_env, new_answer, True
                        if not self._write(answer):
                            return env, answer, "hangup before reply"
                    continue
                self.amended = False
                if session.pending_replies == 0:
                    break
                if self.timed_out:
                    log.warning(
                        "uniqueid=%s: no AGI reply within %d ms",
                        _field(env.uniqueid),
                        self.server.settings.reply_timeout_ms,
                    )
                    return env, answer, "no reply"
        except PeerHangup:
            return env, answer, "hangup before reply"
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        outcome, warning = reply_outcome(self.replies[-1], session.hungup, corrected)
        if warning:
            log.warning("uniqueid=%s: %s", _field(env.uniqueid), warning)
        return env, answer, outcome

    def _log_call(
        self, env: AgiEnv, answer: Answer, outcome: str, elapsed_ms: float | None = None
    ) -> None:
        self.server.calls += 1
        answered = elapsed_ms is not None
        if elapsed_ms is None:
            elapsed_ms = (time.perf_counter() - self.started) * 1000
        self.server.stats.answered(
            env.script,
            outcome,
            elapsed_ms / 1000 if answered else None,
            answer.decision,
            answer.direction,
            answer.cause,
        )
        if self.server.settings.log_calls and log.isEnabledFor(logging.INFO):
            log.info("%s", format_call(env, answer, outcome, elapsed_ms))


def format_call(env: AgiEnv, answer: Answer, outcome: str, elapsed_ms: float) -> str:
    """The one log line of a call: ``call uniqueid=… script=… direction=… number=…
    result=… list=… elapsed_ms=… outcome=…`` (values sanitized, quoted if needed)."""
    fields = " ".join(f"{key}={_field(value)}" for key, value in answer.log_fields)
    return (
        f"call uniqueid={_field(env.uniqueid)} script={_field(env.script)} {fields} "
        f"elapsed_ms={elapsed_ms:.1f} outcome={_field(outcome)}"
    )
