"""A fake Asterisk: speaks FastAGI to a server as Asterisk 22 does.

It sends the environment block in Asterisk's order (``setup_env`` in ``res_agi.c``),
then reads command lines as Asterisk does (``fgets`` into a 2,048-byte buffer: a
longer line is cut and its remainder read as a second command), splits each with a
faithful port of ``res_agi.c``'s ``parse_args``, runs ``EXEC MSet`` with a faithful
port of ``ast_app_separate_args`` (twice, as ``pbx_builtin_setvar_multiple`` does),
records the variables set and replies as Asterisk would. Usable from tests and from
the benchmark (asyncio streams, no per-call threads).

On the wire it behaves as a real Asterisk 22 was seen to (``res_agi.c``, and a probe
server against Asterisk 22.10.1): every environment line is its own ``write()`` on a
socket with Nagle's algorithm on (Asterisk never sets ``TCP_NODELAY``), so the block
reaches the server in one to three segments, not always split at line ends; and when
the server closes after its answer, Asterisk writes ``HANGUP`` (``AGISIGHUP``, on by
default) before closing its side — to a socket the server has usually closed already.
``asterisk_writes=False`` sends the block in one write and closes quietly, as the
fake used to.

The parsers are byte-for-byte ports of the C code, kept deliberately literal so that
the property tests check our escaping against what Asterisk actually does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

AGI_BUF_LEN = 2048  # res_agi.c: a command line is read with fgets into this buffer
MAX_ARGS = 128  # res_agi.c
MSET_MAX_PAIRS = 99  # pbx_variables.c: AST_APP_ARG(pair)[99]

USAGE_520 = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: SET VARIABLE <variablename> <value>\n"
    b"\n"
    b"Sets a variable to the current channel.\n"
    b"520 End of proper usage.\n"
)


# ------------------------------------------------------------------ C parsers


def agi_parse_args(line: bytes) -> list[bytes]:
    """``res_agi.c`` ``parse_args``: split on spaces/tabs, ``"`` groups, ``\\``
    makes the next character literal (inside quotes too)."""
    argv: list[bytearray] = []
    quoted = escaped = False
    whitespace = True
    for byte in line:
        char = bytes((byte,))
        normal = False
        if char == b'"':
            if escaped:
                normal = True
            else:
                quoted = not quoted
                if quoted and whitespace:
                    argv.append(bytearray())
                    whitespace = False
                escaped = False
        elif char in (b" ", b"\t"):
            if not quoted and not escaped:
                whitespace = True
            else:
                normal = True
        elif char == b"\\":
            if escaped:
                normal = True
            else:
                escaped = True
        else:
            normal = True
        if normal:
            if whitespace:
                if len(argv) >= MAX_ARGS - 1:
                    continue  # "Too many arguments, truncating": the character is lost
                argv.append(bytearray())
                whitespace = False
            argv[-1] += char
            escaped = False
    return [bytes(arg) for arg in argv]


def separate_args(buf: bytes, delim: bytes, remove_chars: bool, arraylen: int) -> list[bytes]:
    """``main/app.c`` ``__ast_app_separate_args``. Note that the last slot gets the
    rest of the string *unprocessed*, and that paren/bracket/quote depth carries
    over from one argument to the next."""
    args: list[bytes] = []
    i, n = 0, len(buf)
    paren = bracket = 0
    quote = False
    ended_on_delim = False
    while i < n and len(args) < arraylen - 1:
        cur = bytearray()
        ended_on_delim = False
        while i < n:
            char = buf[i : i + 1]
            if char == b"(":
                paren += 1
            elif char == b")":
                paren = max(paren - 1, 0)
            elif char == b"[":
                bracket += 1
            elif char == b"]":
                bracket = max(bracket - 1, 0)
            elif char == b'"' and delim != b'"':
                quote = not quote
                if remove_chars:
                    i += 1
                    continue
            elif char == b"\\":
                if remove_chars:
                    i += 1  # the backslash goes; the next character is kept, unparsed
                    if i >= n:
                        break  # (C reads past the end here: never send a trailing \)
                    cur += buf[i : i + 1]
                    i += 1
                    continue
                cur += char
                i += 1
                if i < n:
                    cur += buf[i : i + 1]
                    i += 1
                continue
            elif char == delim and not paren and not quote and not bracket:
                i += 1
                ended_on_delim = True
                break
            cur += char
            i += 1
        args.append(bytes(cur))
    if i < n:
        args.append(buf[i:])
    elif ended_on_delim:
        args.append(b"")
    return args


def unescape_mset(data: bytes) -> dict[str, str]:
    """What ``MSet(data)`` sets (``pbx_builtin_setvar_multiple``): split on ``,``
    then each pair on its first ``=`` (the value is the unprocessed rest)."""
    variables: dict[str, str] = {}
    if not data:
        return variables
    for pair in separate_args(data, b",", True, MSET_MAX_PAIRS):
        parts = separate_args(pair, b"=", True, 2)
        if len(parts) == 2:
            variables[parts[0].decode()] = parts[1].decode()
    return variables


def parse_command_line(line: bytes) -> list[str]:
    """A command line (without its ``\\n``) as Asterisk's argv, decoded."""
    return [arg.decode("utf-8", "replace") for arg in agi_parse_args(line)]


def mset_variables(command: bytes) -> dict[str, str]:
    """The variables an ``EXEC MSet "…"`` line sets, as Asterisk would parse it."""
    argv = agi_parse_args(command.rstrip(b"\n"))
    if len(argv) < 2 or argv[0].lower() != b"exec" or argv[1].lower() != b"mset":
        raise ValueError(f"not an EXEC MSet command: {command!r}")
    return unescape_mset(argv[2] if len(argv) > 2 else b"")


# ------------------------------------------------------------------ the env


def build_env(
    *,
    port: int = 4573,
    script: str = "screen",
    query: str = "",
    args: Sequence[str] = ("inbound",),
    callerid: str = "+33123456789",
    calleridname: str = "Alice",
    extension: str = "s",
    context: str = "from-trunk",
    uniqueid: str = "1700000000.1",
    channel: str = "PJSIP/trunk-00000001",
    dnid: str = "unknown",
    callingpres: int = 0,
    network: bool = True,
) -> bytes:
    """The environment block Asterisk writes for ``AGI(agi://127.0.0.1:PORT/SCRIPT,…)``
    (``network=False``: for a classic ``AGI(SCRIPT,…)``, which has no ``agi_network*``
    lines). Values are written with ``%s``, unescaped, as Asterisk does."""
    path = script + (f"?{query}" if query else "")
    head = (
        [
            "agi_network: yes",
            f"agi_network_script: {path}",
            f"agi_request: agi://127.0.0.1:{port}/{path}",
        ]
        if network
        else [f"agi_request: {script}"]
    )
    lines = [
        *head,
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.10.1",
        f"agi_callerid: {callerid}",
        f"agi_calleridname: {calleridname}",
        f"agi_callingpres: {callingpres}",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {dnid}",
        "agi_rdnis: unknown",
        f"agi_context: {context}",
        f"agi_extension: {extension}",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140234567890",
        *(f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, 1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


# ------------------------------------------------------------------ the call

ReplyMode = Literal["ok", "510", "520", "trying"]
HangupMode = Literal["none", "after_env", "before_reply"]


@dataclass
class CallResult:
    """What the fake Asterisk saw during one call."""

    variables: dict[str, str] = field(default_factory=dict)
    commands: list[bytes] = field(default_factory=list)  # as read, 2047-byte cuts applied
    argvs: list[list[str]] = field(default_factory=list)
    closed_by_server: bool = False
    elapsed: float = 0.0
    received: bytes = b""  # every byte the server sent

    @property
    def command_count(self) -> int:
        return len(self.commands)


class FakeAsterisk:
    """Options for one or many calls; :meth:`call` runs one."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        reply_mode: ReplyMode = "ok",
        hangup: HangupMode = "none",
        timeout: float = 5.0,
        pause_after_first_blank: float = 0.0,
        reply_delay: float = 0.0,
        parse: bool = True,
        local_addr: str | None = None,
        asterisk_writes: bool = False,
    ) -> None:
        """``parse=False`` (benchmarks): commands are counted and answered
        ``200 result=0`` without running Asterisk's parsers on them. ``local_addr``:
        the source address to connect from (another loopback address, say).
        ``asterisk_writes``: write and close as Asterisk does (see the module doc)."""
        self.parse = parse
        self.local_addr = (local_addr, 0) if local_addr else None
        self.asterisk_writes = asterisk_writes
        self.host = host
        self.port = port
        self.reply_mode = reply_mode
        self.hangup = hangup
        self.timeout = timeout
        self.pause_after_first_blank = pause_after_first_blank
        self.reply_delay = reply_delay

    def _reply(self, argv: list[str], dead: bool, result: CallResult) -> bytes:
        words = [a.lower() for a in argv]
        if self.reply_mode == "510":
            return b"510 Invalid or unknown command\n"
        if self.reply_mode == "520":
            return USAGE_520
        prefix = b"100 result=0 Trying...\n" if self.reply_mode == "trying" else b""
        if words[:1] == ["exec"]:
            if dead:
                return b"511 Command Not Permitted on a dead channel or intercept routine\n"
            if len(words) >= 2 and words[1] == "mset":
                data = argv[2] if len(argv) > 2 else ""
                result.variables.update(unescape_mset(data.encode()))
                return prefix + b"200 result=0\n"
            return prefix + b"200 result=-2\n"  # application not found
        if words[:2] == ["set", "variable"]:
            if len(argv) != 4:
                return USAGE_520
            result.variables[argv[2]] = argv[3]
            return prefix + b"200 result=1\n"
        if words[:1] == ["noop"]:
            return b"200 result=0\n"
        return b"510 Invalid or unknown command\n"

    async def call(
        self,
        *,
        env: bytes | None = None,
        args: Sequence[str] = ("inbound",),
        calleridname: str = "Alice",
        callerid: str = "+33123456789",
        extension: str = "s",
        script: str = "screen",
        uniqueid: str = "1700000000.1",
    ) -> CallResult:
        """Run one call; returns once the server has closed the connection."""
        if env is None:
            env = build_env(
                port=self.port,
                script=script,
                args=args,
                callerid=callerid,
                calleridname=calleridname,
                extension=extension,
                uniqueid=uniqueid,
            )
        async with asyncio.timeout(self.timeout):
            return await self._call(env)

    async def _call(self, env: bytes) -> CallResult:
        result = CallResult()
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 20, local_addr=self.local_addr
        )
        if self.asterisk_writes:
            sock = writer.get_extra_info("socket")
            if sock is not None:  # asyncio sets TCP_NODELAY; Asterisk leaves Nagle on
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        try:
            first_blank = env.find(b"\n\n")
            if self.pause_after_first_blank and 0 <= first_blank < len(env) - 2:
                writer.write(env[: first_blank + 2])
                await writer.drain()
                await asyncio.sleep(self.pause_after_first_blank)
                writer.write(env[first_blank + 2 :])
            elif self.asterisk_writes:
                # one write per line (ast_agi_send); with the transport's buffer empty,
                # each is its own send() and Nagle coalesces them as it does Asterisk's
                for line in env.splitlines(keepends=True):
                    writer.write(line)
            else:
                writer.write(env)
            dead = False
            if self.hangup == "after_env":
                writer.write(b"HANGUP\n")
                dead = True
            await writer.drain()
            pending = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    result.closed_by_server = True
                    if self.asterisk_writes and not dead:
                        writer.write(b"HANGUP\n")  # run_agi's last words (AGISIGHUP)
                    break
                result.received += chunk
                pending += chunk
                for line in _asterisk_lines(pending):
                    pending = pending[len(line) :]
                    command = line.rstrip(b"\n")
                    result.commands.append(command)
                    if not self.parse:
                        writer.write(b"200 result=0\n")
                        continue
                    argv = parse_command_line(command)
                    result.argvs.append(argv)
                    if self.reply_delay:
                        await asyncio.sleep(self.reply_delay)
                    if self.hangup == "before_reply" and not dead:
                        writer.write(b"HANGUP\n")
                        reply = self._reply(argv, False, result)
                        dead = True
                    else:
                        reply = self._reply(argv, dead, result)
                    writer.write(reply)
                    await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            result.closed_by_server = True
        finally:
            writer.close()
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await writer.wait_closed()
        result.elapsed = time.perf_counter() - started
        return result


def _asterisk_lines(data: bytes) -> list[bytes]:
    """Complete command lines as Asterisk's fgets loop reads them: at ``\\n``, or
    cut after ``AGI_BUF_LEN - 1`` bytes (the rest becomes the next command)."""
    lines = []
    while True:
        end = data.find(b"\n", 0, AGI_BUF_LEN - 1)
        if end >= 0:
            lines.append(data[: end + 1])
            data = data[end + 1 :]
        elif len(data) >= AGI_BUF_LEN - 1:
            lines.append(data[: AGI_BUF_LEN - 1])
            data = data[AGI_BUF_LEN - 1 :]
        else:
            return lines


async def call(host: str, port: int, **options: object) -> CallResult:
    """One call with default options: ``await call(host, port, args=("inbound", "+1…"))``."""
    return await FakeAsterisk(host, port).call(**options)  # type: ignore[arg-type]


async def raw_exchange(
    host: str,
    port: int,
    data: bytes,
    *,
    half_close: bool = False,
    timeout: float = 5.0,
) -> tuple[bytes, float]:
    """Send ``data`` (optionally then shut down writing), read until the server
    closes; returns what it sent and how long it took to close."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    received = b""
    try:
        async with asyncio.timeout(timeout):
            if data:
                writer.write(data)
                await writer.drain()
            if half_close:
                writer.write_eof()
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await writer.wait_closed()
    return received, time.perf_counter() - started
