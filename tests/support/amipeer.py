"""A small Asterisk Manager Interface peer: speaks AMI on a local port as Asterisk does.

Framing as Asterisk's ``manager.c`` writes it: the banner ``Asterisk Call Manager/…``
on its own CRLF line, then messages of ``Key: Value`` lines ending with CRLF, each
message ending with an empty line. Responses echo the action's ``ActionID``; an event
list (``CoreShowChannels``) is a ``Response: Success`` with ``EventList: start``, one
event per item carrying the ActionID, and a ``…Complete`` event. After a successful
``Login`` comes a ``FullyBooted`` event, as from a running Asterisk. Events are sent
to logged-in connections whose ``Events`` mask is not ``off``.

The peer keeps a table of live channels (``channels``) for ``CoreShowChannels`` and
``Hangup``; ``on_hangup`` lets a test play what Asterisk does when a channel is hung
up (e.g. rewrite a call file). Every action received is kept in ``actions``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

CRLF = "\r\n"
BANNER = "Asterisk Call Manager/9.0.0\r\n"


def frame(headers: list[tuple[str, str]]) -> bytes:
    """One AMI message: ``Key: Value`` CRLF lines, then an empty line."""
    return ("".join(f"{k}: {v}{CRLF}" for k, v in headers) + CRLF).encode()


def parse_messages(buffer: bytes) -> tuple[list[dict[str, str]], bytes]:
    """Complete messages in ``buffer`` (header names as sent) and the rest."""
    messages = []
    while b"\r\n\r\n" in buffer:
        block, buffer = buffer.split(b"\r\n\r\n", 1)
        headers: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").split(CRLF):
            key, sep, value = line.partition(": ")
            if sep:
                headers[key] = value
        if headers:
            messages.append(headers)
    return messages, buffer


def _response(status: str, action_id: str, message: str) -> list[tuple[str, str]]:
    return [("Response", status), ("ActionID", action_id), ("Message", message)]


@dataclass
class LiveChannel:
    """A channel as ``CoreShowChannel`` shows it."""

    name: str
    uniqueid: str
    callerid_num: str = ""
    connected_num: str = ""
    exten: str = ""
    linkedid: str = ""
    context: str = "from-internal"
    state: str = "6"
    state_desc: str = "Up"

    def headers(self, action_id: str) -> list[tuple[str, str]]:
        return [
            ("Event", "CoreShowChannel"),
            ("ActionID", action_id),
            ("Channel", self.name),
            ("ChannelState", self.state),
            ("ChannelStateDesc", self.state_desc),
            ("CallerIDNum", self.callerid_num or "<unknown>"),
            ("CallerIDName", "<unknown>"),
            ("ConnectedLineNum", self.connected_num or "<unknown>"),
            ("ConnectedLineName", "<unknown>"),
            ("Language", "en"),
            ("AccountCode", ""),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", "1"),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid or self.uniqueid),
            ("Application", "Dial"),
            ("ApplicationData", ""),
            ("Duration", "00:00:12"),
            ("BridgeId", ""),
        ]


@dataclass
class _Client:
    writer: asyncio.StreamWriter
    logged_in: bool = False
    events: bool = True


@dataclass
class AmiPeer:
    """An AMI server on 127.0.0.1 (port 0: a free one)."""

    username: str = "callscreen"
    secret: str = "s3cret"
    host: str = "127.0.0.1"
    port: int = 0
    channels: dict[str, LiveChannel] = field(default_factory=dict)
    actions: list[dict[str, str]] = field(default_factory=list)
    on_hangup: Callable[[LiveChannel], None] | None = None
    logins: int = 0
    _server: asyncio.Server | None = None
    _clients: list[_Client] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def drop(self) -> None:
        """Close every client connection (an Asterisk restart, a network cut)."""
        for client in self._clients:
            client.writer.transport.abort()
        self._clients.clear()

    async def wait_login(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` logins have succeeded in all."""
        async with asyncio.timeout(timeout):
            while self.logins < count:
                await asyncio.sleep(0.01)

    def named(self, action: str) -> list[dict[str, str]]:
        """The actions received called ``action`` (any case)."""
        return [a for a in self.actions if a.get("Action", "").lower() == action.lower()]

    async def emit(self, event: str, **headers: str) -> None:
        """Send an event to every logged-in client that takes events."""
        data = frame([("Event", event), ("Privilege", "call,all"), *headers.items()])
        for client in list(self._clients):
            if client.logged_in and client.events:
                client.writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await client.writer.drain()

    # ------------------------------------------------------------ the connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        client = _Client(writer)
        self._clients.append(client)
        writer.write(BANNER.encode())
        buffer = b""
        try:
            while chunk := await reader.read(65536):
                messages, buffer = parse_messages(buffer + chunk)
                for message in messages:
                    self.actions.append(message)
                    await self._answer(client, message)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, client: _Client, message: dict[str, str]) -> None:
        action = message.get("Action", "").lower()
        aid = message.get("ActionID", "")
        out: list[list[tuple[str, str]]] = []
        if action == "login":
            if message.get("Username") == self.username and message.get("Secret") == self.secret:
                client.logged_in = True
                client.events = message.get("Events", "on").lower() != "off"
                out.append(
                    [
                        ("Response", "Success"),
                        ("ActionID", aid),
                        ("Message", "Authentication accepted"),
                    ]
                )
                out.append(
                    [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "10"),
                     ("LastReload", "10"), ("Status", "Fully Booted")]
                )  # fmt: skip
            else:
                out.append(_response("Error", aid, "Authentication failed"))
        elif not client.logged_in:
            out.append(_response("Error", aid, "Permission denied"))
        elif action == "ping":
            out.append(
                [("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"),
                 ("Timestamp", "1700000000.000000")]
            )  # fmt: skip
        elif action == "logoff":
            out.append(
                [
                    ("Response", "Goodbye"),
                    ("ActionID", aid),
                    ("Message", "Thanks for all the fish."),
                ]
            )
        elif action == "coreshowchannels":
            out.append(
                [("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                 ("Message", "Channels will follow")]
            )  # fmt: skip
            for channel in self.channels.values():
                out.append(channel.headers(aid))
            out.append(
                [("Event", "CoreShowChannelsComplete"), ("ActionID", aid),
                 ("EventList", "Complete"), ("ListItems", str(len(self.channels)))]
            )  # fmt: skip
        elif action == "hangup":
            name = message.get("Channel", "")
            channel = self.channels.pop(name, None)
            if channel is None:
                out.append(_response("Error", aid, "No such channel"))
            else:
                out.append(_response("Success", aid, "Channel Hungup"))
                gone = [channel]
                # As Asterisk does: the call's first channel takes the channels it
                # dialed with it (its Linkedid), a Local ;1 half its ;2 half.
                linked = channel.linkedid or channel.uniqueid
                for other in list(self.channels.values()):
                    if (channel.uniqueid == linked and other.linkedid == linked) or (
                        name.endswith(";1") and other.name == name[:-1] + "2"
                    ):
                        gone.append(self.channels.pop(other.name))
                if self.on_hangup is not None:
                    for each in gone:
                        self.on_hangup(each)
        else:
            out.append(_response("Error", aid, "Invalid/unknown command"))
        for headers in out:
            client.writer.write(frame(headers))
        await client.writer.drain()
        if action == "login" and client.logged_in:
            self.logins += 1
        if action == "logoff":
            client.writer.close()
