"""The connection to Asterisk's manager interface (AMI), over panoramisk's ``Manager``.

:class:`AmiClient` logs in, sends actions with a deadline, lists live channels
(``CoreShowChannels``), hangs them up (``Hangup``), and hands chosen events to
callbacks. It reconnects by itself: after a lost connection (or a failed attempt) it
tries again every ``ami_reconnect_s`` seconds and logs in again; callbacks stay
registered, so events that arrive after the reconnect are delivered as before (those
sent while disconnected are lost: Asterisk keeps none for a client).

What we take from panoramisk and what we do around it:

- its protocol (message framing, ``ActionID`` matching, event lists such as
  ``CoreShowChannels`` completed by their ``…Complete`` event) is used as it is;
- its reconnect delay is rounded down to whole seconds (0 means a busy loop), a
  reconnect timer it scheduled still fires after ``close()``, and a refused login is
  silently ignored: :class:`_Manager` fixes the three;
- its pinger only writes ``Ping`` and never notices a silent peer: we replace it with a
  keepalive that drops the connection when a ``Ping`` is not answered within
  ``ami_timeout_s`` (a half-open TCP connection would otherwise go unnoticed forever);
- an action sent while disconnected waits forever in panoramisk: every action here has
  a deadline and fails with :class:`~callscreen.core.errors.AmiUnavailable`.

Actions are only sent from a running event loop (panoramisk builds its futures with
the current loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager

from callscreen.core.config import Settings
from callscreen.core.errors import AmiUnavailable

log = logging.getLogger("callscreen.ami")

AmiMessage = Mapping[str, str]
"""An AMI event or response: header name (as sent) -> value (the last one, when a
header is repeated)."""

EventCallback = Callable[[AmiMessage], None]

#: Hangup cause sent with the ``Hangup`` action: 21, call rejected.
CAUSE_CALL_REJECTED = 21
KEEPALIVE_S = 20.0


def ami_configured(settings: Settings) -> bool:
    """Whether ``settings`` name an AMI to connect to (``ami_host`` is set)."""
    return bool(settings.ami_host)


def message_fields(message: Any) -> dict[str, str]:
    """A panoramisk message as a plain ``dict`` (repeated headers: the last value)."""
    out: dict[str, str] = {}
    for key, value in message.items():
        if isinstance(value, list):
            value = value[-1] if value else ""
        out[str(key)] = str(value)
    return out


def field(message: AmiMessage, name: str) -> str:
    """A header of ``message``, case-insensitively (``""`` if absent)."""
    value = message.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in message.items():
        if key.lower() == lowered:
            return val
    return ""


@dataclass(frozen=True, slots=True)
class Channel:
    """A live channel, from a ``CoreShowChannel`` event."""

    name: str
    uniqueid: str
    linkedid: str
    state: str
    callerid_num: str
    connected_num: str
    exten: str
    context: str = ""
    application: str = ""

    @classmethod
    def of(cls, event: AmiMessage) -> Channel:
        return cls(
            name=field(event, "Channel"),
            uniqueid=field(event, "Uniqueid"),
            linkedid=field(event, "Linkedid") or field(event, "Uniqueid"),
            state=field(event, "ChannelStateDesc") or field(event, "ChannelState"),
            callerid_num=field(event, "CallerIDNum"),
            connected_num=field(event, "ConnectedLineNum"),
            exten=field(event, "Exten"),
            context=field(event, "Context"),
            application=field(event, "Application"),
        )


class _Manager(Manager):  # type: ignore[misc] # panoramisk is untyped
    """panoramisk's Manager with the fixes listed in the module docstring."""

    def __init__(self, client: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self.client = client
        self.reconnect_timeout = float(config["reconnect_timeout"])  # panoramisk int()s it
        self.closing = False
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[Any] | None = None

    def connect(self, *args: Any, **kwargs: Any) -> asyncio.Task[Any] | None:
        self._retry = None
        if self.closing:
            return None
        loop = self.loop
        coro = self.loop.create_connection(
            self.config["protocol_factory"], self.config["host"], self.config["port"]
        )
        task: asyncio.Task[Any] = loop.create_task(asyncio.wait_for(coro, self.client.timeout))
        task.add_done_callback(self.connection_made)
        self._connecting = task
        return task

    def _schedule_connect(self) -> None:
        if not self.closing and self._retry is None:
            self._retry = self.loop.call_later(self.reconnect_timeout, self.connect)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        self._connecting = None
        if f.cancelled():
            return
        exc = f.exception()
        if self.closing:
            if exc is None:
                f.result()[0].close()
            return
        if exc is not None:
            self.client._connect_failed(exc)
            self._schedule_connect()
            return
        super().connection_made(f)
        self.loop.call_later(self.client.timeout, self._check_login, self.protocol)

    def _check_login(self, protocol: Any) -> None:
        """A connection whose login got no answer at all in time is dropped (and tried
        again): something accepts TCP there, but does not speak AMI to us."""
        if self.closing or protocol is not self.protocol or self.authenticated_future is None:
            return
        self.client._login_unanswered()
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.abort()

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = bool(super().login(future))
        self.client._login_done(ok, future.result())
        return ok

    def ping(self) -> None:
        """Replaced by :meth:`AmiClient._keepalive`."""

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        self.authenticated = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        if self.closing:
            return
        self.client._lost(exc)
        self._schedule_connect()

    def close(self) -> None:
        self.closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        super().close()


class AmiClient:
    """One AMI connection, logged in, reconnecting (see the module docstring).

    ``events`` is the AMI event mask of the login (``off`` for a client that only
    sends actions, ``call`` for the outcome watcher). Register callbacks with
    :meth:`on` before :meth:`connect`; they run in the event loop and must not block.
    """

    def __init__(self, settings: Settings, *, events: str = "off") -> None:
        self.settings = settings
        self.address = f"{settings.ami_host}:{settings.ami_port}"
        self.events = events
        self.timeout = settings.ami_timeout_s
        self._callbacks: list[tuple[str, EventCallback]] = []
        self._manager: _Manager | None = None
        self._ready: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None  # set by each login answer
        self._login_error = ""
        self._down_since_logged = False
        self._keepalive_task: asyncio.Task[None] | None = None
        self.logins = 0  # successful logins (the first, then each reconnect)

    # ------------------------------------------------------------ lifecycle

    def on(self, event: str, callback: EventCallback) -> None:
        """Call ``callback(fields)`` for every event named ``event`` (a panoramisk
        pattern: ``Hangup``, ``Dial*``)."""
        self._callbacks.append((event, callback))

    async def connect(self, *, wait: bool = True) -> None:
        """Connect and log in. With ``wait``, return once logged in (else raise
        :class:`AmiUnavailable` within ``ami_timeout_s``); without, return at once and
        keep trying in the background."""
        if self._manager is not None:
            raise RuntimeError("AmiClient.connect() called twice")
        settings = self.settings
        if not ami_configured(settings):
            raise AmiUnavailable("AMI is not configured (set CALLSCREEN_AMI_HOST)")
        if not settings.ami_username:
            raise AmiUnavailable("no AMI user name configured (CALLSCREEN_AMI_USERNAME)")
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        manager = _Manager(
            self,
            loop=asyncio.get_running_loop(),
            host=settings.ami_host,
            port=settings.ami_port,
            username=settings.ami_username,
            secret=settings.ami_secret.get_secret_value() if settings.ami_secret else "",
            events=self.events,
            reconnect_timeout=settings.ami_reconnect_s,
            log=log,
        )
        for pattern, callback in self._callbacks:
            manager.register_event(pattern, _relay(callback))
        self._manager = manager
        manager.connect()
        self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive())
        if wait:
            await self.wait_ready()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until logged in; :class:`AmiUnavailable` after ``timeout`` seconds
        (``ami_timeout_s`` by default) or as soon as the login is refused."""
        ready, settled = self._ready, self._settled
        if ready is None or settled is None:
            raise AmiUnavailable("AMI client not started")
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                while not ready.is_set():
                    if self._login_error:
                        raise AmiUnavailable(
                            f"AMI at {self.address} unavailable: {self._login_error}"
                        )
                    settled.clear()
                    await settled.wait()
        except TimeoutError:
            why = self._login_error or "no login within the timeout"
            raise AmiUnavailable(f"AMI at {self.address} unavailable: {why}") from None

    @property
    def ready(self) -> bool:
        """Whether the client is connected and logged in now."""
        return self._ready is not None and self._ready.is_set()

    async def close(self) -> None:
        """Log off and close; no reconnect after this. Idempotent."""
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        manager, self._manager = self._manager, None
        if manager is not None:
            if self.ready:
                manager.closing = True  # Asterisk closes after Logoff: not a lost connection
                with contextlib.suppress(AmiUnavailable):
                    await self._send(manager, {"Action": "Logoff"}, min(self.timeout, 0.5))
            manager.close()
        if self._ready is not None:
            self._ready.clear()

    # ------------------------------------------------------------ panoramisk callbacks

    def _connect_failed(self, exc: BaseException) -> None:
        if not self._down_since_logged:
            why = str(exc) or type(exc).__name__
            log.warning("cannot connect to AMI at %s: %s", self.address, why)
            self._down_since_logged = True

    def _login_done(self, ok: bool, response: Any) -> None:
        if ok:
            self.logins += 1
            self._login_error = ""
            self._down_since_logged = False
            log.info("logged in to AMI at %s", self.address)
            if self._ready is not None:
                self._ready.set()
        else:
            message = field(message_fields(response), "Message") or "login refused"
            self._login_error = f"login refused: {message}"
            log.error("AMI at %s refused the login: %s", self.address, message)
        if self._settled is not None:
            self._settled.set()

    def _login_unanswered(self) -> None:
        log.warning(
            "AMI at %s did not answer the login within %g s; reconnecting",
            self.address,
            self.timeout,
        )

    def _lost(self, exc: BaseException | None) -> None:
        if self._ready is not None:
            self._ready.clear()
        log.warning(
            "lost the AMI connection to %s%s; reconnecting every %g s",
            self.address,
            f" ({exc})" if isinstance(exc, BaseException) else "",
            self.settings.ami_reconnect_s,
        )

    async def _keepalive(self) -> None:
        """Ping while logged in; a silent peer gets its connection dropped (and a
        reconnect)."""
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            manager = self._manager
            if manager is None or not self.ready:
                continue
            try:
                await self._send(manager, {"Action": "Ping"}, self.timeout)
            except AmiUnavailable:
                log.warning("AMI at %s did not answer a Ping; reconnecting", self.address)
                transport = getattr(manager.protocol, "transport", None)
                if transport is not None:
                    transport.abort()

    # ------------------------------------------------------------ actions

    async def action(self, fields: Mapping[str, str], timeout: float | None = None) -> Any:
        """Send one action; its response (a list of messages for an event list).
        Raises :class:`AmiUnavailable` when not logged in or without an answer in
        ``timeout`` seconds (``ami_timeout_s`` by default)."""
        manager = self._manager
        if manager is None or not self.ready:
            raise AmiUnavailable(f"not logged in to AMI at {self.address}")
        return await self._send(manager, fields, self.timeout if timeout is None else timeout)

    async def _send(self, manager: _Manager, fields: Mapping[str, str], timeout: float) -> Any:
        try:
            future = manager.send_action(dict(fields))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise AmiUnavailable(
                f"AMI at {self.address} did not answer {fields.get('Action')} within {timeout:g} s"
            ) from None
        except (OSError, AttributeError) as exc:  # no transport: between two connections
            raise AmiUnavailable(f"AMI at {self.address}: {exc}") from exc

    async def channels(self) -> list[Channel]:
        """Every live channel (``CoreShowChannels``)."""
        reply = await self.action({"Action": "CoreShowChannels"})
        messages = reply if isinstance(reply, list) else [reply]
        first = message_fields(messages[0]) if messages else {}
        if field(first, "Response") not in ("Success", "Follows"):
            raise AmiUnavailable(f"CoreShowChannels refused: {field(first, 'Message')}")
        return [
            Channel.of(fields)
            for fields in map(message_fields, messages[1:])
            if field(fields, "Event").lower() == "coreshowchannel"
        ]

    async def hangup(self, channel: str, cause: int = CAUSE_CALL_REJECTED) -> bool:
        """Hang up ``channel`` with ``cause``; False if Asterisk has no such channel
        (any more)."""
        reply = await self.action({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})
        fields = message_fields(reply[0] if isinstance(reply, list) else reply)
        return field(fields, "Response") == "Success"


def _relay(callback: EventCallback) -> Callable[[Any, Any], None]:
    def relay(_manager: Any, message: Any) -> None:
        try:
            callback(message_fields(message))
        except Exception:
            log.exception("AMI event callback failed")

    return relay
