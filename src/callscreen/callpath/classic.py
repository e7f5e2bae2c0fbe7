"""Classic (process-per-call) AGI: ``AGI(callscreen-agi,DIRECTION[,NUMBER[,CAMPAIGN]])``.

For sites that cannot run the FastAGI server. Asterisk starts this program for each
call with the environment block on stdin; it answers with the same one
``EXEC MSet`` command as the server, on stdout, reads the reply and exits.

pyst2's :class:`asterisk.agi.AGI` reads the environment (and installs its SIGHUP
handler, so that a hang-up does not kill the process before it answers), but through
a bounded, timed line reader of ours that also feeds an
:class:`~callscreen.callpath.protocol.AgiSession`: the env used is the one
:func:`~callscreen.callpath.protocol.derive_env` reads, never pyst2's dict (last key wins,
so a caller-ID name holding newlines could override keys). pyst2's ``set_variable``
is not used either: it quotes without escaping. The arguments come from ``argv``,
which the caller-ID name cannot touch.

Each run builds its own :class:`~callscreen.callpath.screener.Screener` (one Redis
connection), so a call costs a process start and a connection: prefer FastAGI.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import BinaryIO

from callscreen.callpath.protocol import (
    AgiEnv,
    AgiSession,
    EnvAmended,
    LineSplitter,
    Phase,
    Reply,
    ReplyReceived,
    mset_command,
    printable,
    reply_outcome,
)
from callscreen.callpath.server import (
    MAX_RESCREENS,
    TAINTED_SETTLE_S,
    Answer,
    ScreenerLike,
    format_call,
    screen_answer,
)
from callscreen.core.config import Settings
from callscreen.core.errors import PeerHangup, ProtocolError

log = logging.getLogger("callscreen.agi")


class PipeReader:
    """Reads Asterisk's side of the pipe: every chunk goes to the session (which
    bounds lines and the env) and to a line queue for pyst2's ``readline``. Every
    wait is bounded by ``deadline`` (a :func:`time.monotonic` time)."""

    def __init__(self, fd: int, session: AgiSession, max_line_bytes: int) -> None:
        self.fd = fd
        self.session = session
        self.deadline = float("inf")
        self.eof = False
        self.amended = False
        self.replies: list[Reply] = []
        self._splitter = LineSplitter(max_line_bytes)
        self._lines: list[str] = []

    def fill(self, timeout: float) -> bool:
        """Read what arrives within ``timeout`` seconds (capped by the deadline);
        False if nothing did."""
        timeout = max(0.0, min(timeout, self.deadline - time.monotonic()))
        if self.eof or not select.select([self.fd], [], [], timeout)[0]:
            return False
        data = os.read(self.fd, 65536)
        if not data:
            self.eof = True
            return False
        if self.session.phase is Phase.ENV:
            self._lines.extend(self._splitter.feed(data))
        for event in self.session.feed(data):
            if isinstance(event, EnvAmended):
                self.amended = True
            elif isinstance(event, ReplyReceived):
                self.replies.append(event.reply)
        return True

    def wait(self, done: Callable[[], bool]) -> None:
        """Read until ``done()`` holds; TimeoutError past the deadline, PeerHangup at EOF."""
        while not done():
            if self.eof:
                raise PeerHangup("Asterisk closed the pipe")
            if time.monotonic() >= self.deadline:
                raise TimeoutError
            self.fill(self.deadline - time.monotonic())

    def drain(self) -> None:
        """Take whatever is already waiting in the pipe, without blocking."""
        while self.fill(0.0):
            pass

    def readline(self) -> str:
        """For pyst2: the next env line with its newline; '' at the end of the env."""
        while not self._lines:
            if self.eof or self.session.phase is not Phase.ENV:
                return ""
            if time.monotonic() >= self.deadline:
                raise TimeoutError
            self.fill(self.deadline - time.monotonic())
        return self._lines.pop(0) + "\n"


def read_env(reader: PipeReader, settings: Settings) -> AgiEnv:
    """The env block, read by pyst2 through ``reader`` and derived by us."""
    from asterisk.agi import AGI  # pyst2: only this entry point needs it

    reader.deadline = time.monotonic() + settings.env_timeout_ms / 1000
    AGI(stdin=reader, stdout=io.StringIO(), stderr=io.StringIO())  # pyst2 logs to stderr
    session = reader.session
    reader.wait(lambda: session.phase is not Phase.ENV)  # pyst2 may stop at "  "
    env = session.env
    assert env is not None
    if env.tainted:
        log.warning(
            "uniqueid=%s: forged-looking AGI environment (caller-ID name %r)",
            env.uniqueid,
            printable(env.calleridname),
        )
        reader.fill(TAINTED_SETTLE_S)
    reader.drain()
    reader.amended = False
    return session.env or env


def with_argv(env: AgiEnv, args: Sequence[str]) -> AgiEnv:
    """The env with the program's arguments (which Asterisk also passes in argv,
    out of the caller's reach) as its ``args``."""
    if not args:
        return env
    if tuple(args) != env.args:
        log.warning(
            "uniqueid=%s: agi_arg_* %r differ from argv %r; using argv",
            env.uniqueid,
            [printable(a) for a in env.args],
            [printable(a) for a in args],
        )
    return replace(env, args=tuple(args))


async def answer_call(
    screener: ScreenerLike,
    reader: PipeReader,
    out: BinaryIO,
    env: AgiEnv,
    args: Sequence[str],
    settings: Settings,
) -> tuple[AgiEnv, Answer, str]:
    """Screen, check for late env lines, write the one command, read the reply.
    Returns the env and answer that stand and the outcome."""
    deadline = settings.deadline_ms / 1000
    answer = await screen_answer(screener, env, deadline)
    session = reader.session

    async def recheck(env: AgiEnv, answer: Answer) -> tuple[AgiEnv, Answer, bool]:
        changed = False
        for _ in range(MAX_RESCREENS):
            reader.drain()
            if not reader.amended:
                break
            reader.amended = False
            current = with_argv(session.env or env, args)
            if current != env:
                log.warning("uniqueid=%s: AGI environment continued after its end", env.uniqueid)
                env, answer, changed = (
                    current,
                    await screen_answer(screener, current, deadline),
                    True,
                )
        return env, answer, changed

    env, answer, _ = await recheck(env, answer)
    out.write(session.send(mset_command(answer.variables)))
    out.flush()
    reader.deadline = time.monotonic() + settings.reply_timeout_ms / 1000
    corrected = False
    try:
        while True:
            reader.wait(lambda: reader.amended or session.pending_replies == 0)
            env, answer, changed = await recheck(env, answer)
            if changed:
                corrected = True
                out.write(session.send(mset_command(answer.variables)))
                out.flush()
                continue
            if session.pending_replies == 0:
                break
    except TimeoutError:
        return env, answer, "no reply"
    except PeerHangup:
        return env, answer, "hangup before reply"
    outcome, warning = reply_outcome(reader.replies[-1], session.hungup, corrected)
    if warning:
        log.warning("%s", warning)
    return env, answer, outcome


async def _run(settings: Settings, reader: PipeReader, env: AgiEnv, args: Sequence[str]) -> str:
    from callscreen.callpath.screener import Screener  # Redis only past the env

    started = time.perf_counter()
    screener = Screener.from_settings(settings)
    try:
        env, answer, outcome = await answer_call(
            screener, reader, sys.stdout.buffer, env, args, settings
        )
    finally:
        await screener.close()
    log.info("%s", format_call(env, answer, outcome, (time.perf_counter() - started) * 1000))
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point ``callscreen-agi``: 0 when answered, 1 otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings = Settings()  # type: ignore[call-arg]  # pydantic-settings fills it
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    session = AgiSession(
        max_line_bytes=settings.max_line_bytes, max_env_lines=settings.max_env_lines
    )
    reader = PipeReader(sys.stdin.fileno(), session, settings.max_line_bytes)
    try:
        env = with_argv(read_env(reader, settings), args)
        outcome = asyncio.run(_run(settings, reader, env, args))
    except TimeoutError:
        log.warning("no complete AGI environment within %d ms", settings.env_timeout_ms)
        return 1
    except PeerHangup as exc:
        log.debug("%s", exc)
        return 1
    except ProtocolError as exc:
        log.warning("AGI protocol error: %s", exc)
        return 1
    return 0 if outcome in ("ok", "corrected", "hangup") else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
