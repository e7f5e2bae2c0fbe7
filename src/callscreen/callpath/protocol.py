"""The FastAGI wire format, as pure code over bytes: no sockets, no clock.

What Asterisk sends (``res_agi.c``)
-----------------------------------
On connect, an *environment block*: one ``agi_key: value`` line per key, in a fixed
order, ended by an empty line::

    agi_network: yes                    FastAGI only
    agi_network_script: screen?x=1      FastAGI only: the URL's path, query included
    agi_request: agi://10.0.0.5:4573/screen?x=1
    agi_channel, agi_language, agi_type, agi_uniqueid, agi_version,
    agi_callerid, agi_calleridname,
    agi_callingpres, agi_callingani2, agi_callington, agi_callingtns,
    agi_dnid, agi_rdnis, agi_context, agi_extension, agi_priority,
    agi_enhanced, agi_accountcode, agi_threadid,
    agi_arg_1 … agi_arg_N
    (empty line)

Values are written with ``%s`` and are *not* escaped: a caller-ID name that holds a
newline (a SIP ``From`` display name can) forges ``agi_*`` lines, and even an early
empty line. :func:`derive_env` reads the block so that such a name can never change
anything but the name itself (see its docstring).

Then Asterisk reads one command line at a time and answers each with a reply:
``200 result=0``, ``200 result=1 (data)``, ``200 result=0 endpos=1234``,
``510 Invalid or unknown command``, ``511 Command Not Permitted on a dead channel…``,
or a multi-line usage block ``520-Invalid command syntax.  Proper usage follows:`` …
``520 End of proper usage.`` which is ONE reply. When the caller hangs up during a
FastAGI session Asterisk writes a bare ``HANGUP`` line once, at any time; it is not a
reply. ``1xx`` lines are provisional and precede the real reply.

What we send
------------
Exactly one command per call: ``EXEC MSet "NAME=value,NAME=value,…"``. A NAME
may be a dialplan function (``CDR(userfield)``, ``CALLERID(name)``): Asterisk's
``pbx_builtin_setvar_helper`` writes a name ending in ``)`` through the function, so
the one command also does what the dialplan would otherwise do after the answer.
Asterisk parses it twice:

1. ``res_agi.c`` ``parse_args``: the line ends at ``\\n`` and is split on spaces and
   tabs; ``"`` groups; ``\\`` makes the next character literal (inside quotes too).
   :func:`quote_agi` wraps a value in quotes and escapes ``\\`` and ``"``.
2. MSet's ``ast_app_separate_args`` on the data: unescaped ``"`` are removed, ``\\``
   makes the next character literal, ``,`` splits pairs, and an unbalanced ``(`` or
   ``[`` swallows the commas after it. :func:`escape_mset` backslash-escapes
   ``\\ " , ( ) [ ] |`` and ``$``. Each pair is then split at its first ``=``; the
   value after it is taken verbatim.

Asterisk reads a command into a 2,048-byte buffer: a longer line would be cut and its
remainder read as a *second command*. :func:`mset_command` keeps the whole line,
newline included, within :data:`MAX_COMMAND_BYTES`, truncating the longest free-text
values first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.core.campaigns import call_campaign
from callscreen.core.errors import InvalidInput, ProtocolError
from callscreen.core.model import Direction, Result

__all__ = [
    "MAX_COMMAND_BYTES",
    "AgiEnv",
    "AgiSession",
    "EnvAmended",
    "EnvReceived",
    "Event",
    "HangupReceived",
    "LineSplitter",
    "Phase",
    "Reply",
    "ReplyParser",
    "ReplyReceived",
    "bad_request_decision",
    "derive_env",
    "escape_mset",
    "mset_command",
    "printable",
    "quote_agi",
    "sanitize_value",
    "screen_request",
]

#: Longest command line Asterisk reads whole (``AGI_BUF_LEN`` 2048, ``fgets`` keeps
#: one byte for the NUL), the final ``\n`` included.
MAX_COMMAND_BYTES: Final = 2047

#: The free-text values shortened first when a command would be too long.
TRUNCATE_FIRST: Final = ("CALLSCREEN_REASON", "CALLSCREEN_LIST", "CALLSCREEN_MATCH")

#: Longest caller-ID name kept (after joining a multi-line name).
MAX_NAME_CHARS: Final = 256

#: The keys Asterisk sends before ``agi_calleridname``, in order.
HEAD_KEYS: Final = (
    "agi_network",
    "agi_network_script",
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
)
NAME_KEY: Final = "agi_calleridname"
#: The keys Asterisk sends after ``agi_calleridname``, in order, before the arguments.
TAIL_KEYS: Final = (
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)
_ARG_PREFIX = "agi_arg_"
_ARG_RANK_BASE = 1000
_MAX_ARG = 999  # Asterisk passes at most 127 (MAX_ARGS 128)
_ARG_KEYS = {f"{_ARG_PREFIX}{n}": _ARG_RANK_BASE + n for n in range(1, _MAX_ARG + 1)}
#: Rank of every known key in Asterisk's order.
_RANK = {key: i for i, key in enumerate((*HEAD_KEYS, NAME_KEY, *TAIL_KEYS))} | _ARG_KEYS
#: Rank of a key after the name: None for a key that cannot be there (head, name).
_TAIL_RANK: dict[str, int | None] = (
    dict.fromkeys((*HEAD_KEYS, NAME_KEY)) | {key: i for i, key in enumerate(TAIL_KEYS)} | _ARG_KEYS
)

#: A variable name, or a dialplan function with a plain argument (``CDR(userfield)``,
#: ``CALLERID(name)``): MSet writes a name ending in ``)`` through the function.
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_-]*\))?")
_CONTROL_TO_SPACE = dict.fromkeys([*range(32), 127], " ")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_REPLY_CODE = re.compile(r"(\d{3})(?:([ -])(.*))?", re.DOTALL)
_RESULT = re.compile(r"result=(\S*)\s*(.*)", re.DOTALL)
_MSET_SPECIAL = frozenset('\\",()[]|$')
_AGI_SPECIAL = frozenset('\\"')
_MSET_ESCAPE = {ord(c): "\\" + c for c in _MSET_SPECIAL}


# --------------------------------------------------------------------------- text


def sanitize_value(value: str) -> str:
    """A value as it can travel in an AGI command: every control character (CR, LF and
    NUL above all) becomes a space, a lone surrogate becomes U+FFFD."""
    value = value.translate(_CONTROL_TO_SPACE)
    if not value.isascii():
        value = _SURROGATE.sub("\ufffd", value)
    return value


def printable(value: str, limit: int = 80) -> str:
    """``value`` made safe for a log line: control characters shown as spaces, cut
    at ``limit`` characters with an ellipsis."""
    value = sanitize_value(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


# ---------------------------------------------------------------------- the env


@dataclass(frozen=True, slots=True)
class AgiEnv:
    """The AGI environment of one call, as :func:`derive_env` reads it.

    ``tainted`` is set when the block was not what Asterisk writes for an honest
    call: duplicate or out-of-order keys, stray lines, or an empty line before the
    end — the marks of a caller-ID name holding newlines. The fields are then read
    by the rules of :func:`derive_env`, which keep the forged lines out of them.
    ``raw`` holds every key kept, as ``(key, value)`` pairs in arrival order.
    """

    request: str = ""
    network_script: str = ""  # agi_network_script without any ?query
    channel: str = ""
    uniqueid: str = ""
    callerid: str = ""
    calleridname: str = ""
    callingpres: int | None = None
    extension: str = ""
    context: str = ""
    dnid: str = ""
    args: tuple[str, ...] = ()
    tainted: bool = False
    raw: tuple[tuple[str, str], ...] = ()

    @property
    def script(self) -> str:
        """The script name the server routes on: ``screen`` for
        ``agi://host:4573/screen?x=1`` (``agi_network_script`` when present, else
        the path of ``agi_request``), without query and surrounding slashes."""
        script = self.network_script
        if not script and "://" in self.request:
            _, _, rest = self.request.partition("://")
            _, _, script = rest.partition("/")
        return script.partition("?")[0].strip("/")

    def get(self, key: str, default: str = "") -> str:
        """The raw value of ``key`` (``agi_rdnis``, ``agi_arg_1``, …)."""
        for name, value in self.raw:
            if name == key:
                return value
        return default

    def arg(self, index: int) -> str:
        """``agi_arg_<index>`` (1-based), or '' when absent."""
        return self.args[index - 1] if 0 < index <= len(self.args) else ""


_KV, _BLANK, _JUNK = 1, 2, 3


#: A classified env line: (kind, raw line, key, value) — a plain tuple, the cheapest
#: thing to build once per line.
_Line = tuple[int, str, str, str]
_KIND: Final = 0
_RAW: Final = 1
_KEYF: Final = 2
_VALUE: Final = 3
_BLANK_LINE: _Line = (_BLANK, "", "", "")


def _classify(line: str) -> _Line:
    if not line:
        return _BLANK_LINE
    key, sep, value = line.partition(":")
    if not sep or not key.isidentifier():
        return (_JUNK, line, "", "")
    return (_KV, line, key, value[1:] if value.startswith(" ") else value)


def _genuine_tail_start(rest: Sequence[_Line]) -> int:
    """Where the genuine tail (``agi_callingpres`` … ``agi_arg_N``) starts in the
    lines after the name line: the longest run, read backwards from the end, of
    known keys in strictly decreasing Asterisk order, up to ``agi_callingpres``.

    Whatever a forged name holds lies before the genuine tail, which Asterisk always
    writes last; so reading from the end finds the genuine tail however the name was
    crafted (duplicate keys, a forged tail, empty lines, stray text).
    """
    start = len(rest)
    last = _ARG_RANK_BASE * 10_000
    while start > 0:
        line = rest[start - 1]
        if line[_KIND] != _KV:
            break
        rank = _TAIL_RANK.get(line[_KEYF], -1)  # -1: unknown key, tolerated (newer Asterisk)
        if rank is None:
            break
        if rank >= 0:
            if rank >= last:
                break
            last = rank
        start -= 1
        if rank == 0:  # agi_callingpres: the first key after the name
            break
    return start


def derive_env(lines: Iterable[str]) -> AgiEnv:
    """Read an AGI environment from its lines (terminators removed; empty lines
    included, trailing ones ignored).

    Rules, built on the fixed order in which Asterisk writes the keys:

    - *Before* ``agi_calleridname`` nothing is forgeable by the caller: the first
      occurrence of each key wins; a line that is not ``key: value`` there, or an
      empty line, is a :class:`ProtocolError`.
    - *After* it, the genuine tail is the last run ``agi_callingpres`` …
      ``agi_arg_N`` (see :func:`_genuine_tail_start`). Its values win.
    - The caller-ID name is the text from ``agi_calleridname:`` to the start of that
      tail, its line breaks turned into spaces and control characters removed.
    - Anything unusual — a name spanning lines, duplicate or out-of-order keys,
      stray lines — sets ``tainted``.

    Without an ``agi_calleridname`` line (not Asterisk, or a truncated block) every
    line is read in order, first occurrence winning; stray lines are a
    :class:`ProtocolError`.
    """
    return _derive([_classify(line) for line in lines])


#: The keys of an honest block before its arguments, exactly as Asterisk writes them
#: for FastAGI (``agi_network`` first) and for classic AGI (no ``agi_network*`` lines).
_FASTAGI_KEYS: Final = (*HEAD_KEYS, NAME_KEY, *TAIL_KEYS)
_CLASSIC_KEYS: Final = _FASTAGI_KEYS[2:]
_ARG_NAMES: Final = tuple(f"{_ARG_PREFIX}{n}" for n in range(1, 129))


def _derive(items: list[_Line]) -> AgiEnv:
    """Fast paths for the honest block (every key once, in Asterisk's order, the name
    on one line); anything else goes to :func:`_derive_careful`."""
    end = len(items)
    while end and items[end - 1][_KIND] == _BLANK:
        end -= 1
    # What a real Asterisk sends: the known keys, then agi_arg_1 … agi_arg_N. Blank
    # and stray lines have the key "" and never match.
    keys = tuple([item[_KEYF] for item in items[:end]])
    for fixed in (_FASTAGI_KEYS, _CLASSIC_KEYS):
        size = len(fixed)
        if keys[:size] == fixed and keys[size:] == _ARG_NAMES[: end - size]:
            values = {item[_KEYF]: item[_VALUE] for item in items[:end]}
            values[NAME_KEY] = sanitize_value(values[NAME_KEY]).strip()[:MAX_NAME_CHARS]
            return _make_env(values, False, tuple([item[_VALUE] for item in items[size:end]]))
    return _derive_ordered(items, end)


def _derive_ordered(items: list[_Line], end: int) -> AgiEnv:
    """Any honest block: keys once each, known ones in Asterisk's order (unknown ones
    from a newer Asterisk tolerated), the name on one line."""
    values: dict[str, str] = {}
    last = -1
    previous = ""
    for i in range(end):
        kind, _, key, value = items[i]
        if kind != _KV or key in values:
            break
        rank = _RANK.get(key)
        if rank is not None:
            if rank < last:
                break
            last = rank
        if previous == NAME_KEY and key != TAIL_KEYS[0]:
            break
        values[key] = value
        previous = key
    else:
        name = values.get(NAME_KEY)
        if name is not None:
            values[NAME_KEY] = sanitize_value(name).strip()[:MAX_NAME_CHARS]
        return _make_env(values, False)
    return _derive_careful(items)


def _derive_careful(items: list[_Line]) -> AgiEnv:
    end = len(items)
    while end and items[end - 1][_KIND] == _BLANK:
        end -= 1
    name_at = None
    for i in range(end):
        if items[i][_KEYF] == NAME_KEY:
            name_at = i
            break
    tainted = False
    values: dict[str, str] = {}
    last_rank = -1
    name = ""
    for item in items[: end if name_at is None else name_at]:
        kind, raw, key, value = item
        if kind != _KV:
            if kind == _JUNK:
                raise ProtocolError(f"not an AGI environment line: {printable(raw)!r}")
            if name_at is not None:
                raise ProtocolError("empty line before agi_calleridname")
            tainted = True
            continue
        if key in values:  # first occurrence wins
            tainted = True
            continue
        rank = _RANK.get(key)
        if rank is not None:
            if rank < last_rank:
                tainted = True
            last_rank = max(last_rank, rank)
        values[key] = value
    if name_at is not None:
        rest = items[name_at + 1 : end]
        start = _genuine_tail_start(rest)
        if start:
            tainted = True
            parts = [items[name_at][_VALUE], *(item[_RAW] for item in rest[:start])]
            name = sanitize_value(" ".join(parts)).strip()[:MAX_NAME_CHARS]
        else:
            name = sanitize_value(items[name_at][_VALUE]).strip()[:MAX_NAME_CHARS]
        values[NAME_KEY] = name
        for item in rest[start:]:
            if item[_KEYF] in values:
                tainted = True
            values[item[_KEYF]] = item[_VALUE]  # the genuine tail wins
    return _make_env(values, tainted)


def _make_env(values: dict[str, str], tainted: bool, args: tuple[str, ...] | None = None) -> AgiEnv:
    if args is None:
        found: list[str] = []
        while (value := values.get(f"{_ARG_PREFIX}{len(found) + 1}")) is not None:
            found.append(value)
        args = tuple(found)

    pres = values.get("agi_callingpres", "")
    try:
        callingpres: int | None = int(pres)
    except ValueError:
        callingpres = None

    return AgiEnv(
        request=values.get("agi_request", ""),
        network_script=values.get("agi_network_script", "").partition("?")[0],
        channel=values.get("agi_channel", ""),
        uniqueid=values.get("agi_uniqueid", ""),
        callerid=values.get("agi_callerid", ""),
        calleridname=values.get(NAME_KEY, ""),
        callingpres=callingpres,
        extension=values.get("agi_extension", ""),
        context=values.get("agi_context", ""),
        dnid=values.get("agi_dnid", ""),
        args=args,
        tainted=tainted,
        raw=tuple(values.items()),
    )


# ---------------------------------------------------------------------- requests


def screen_request(env: AgiEnv) -> ScreenRequest:
    """The :class:`ScreenRequest` of ``AGI(agi://…/screen,DIRECTION[,NUMBER[,CAMPAIGN]])``.

    An empty or missing NUMBER means the caller ID (inbound) or the dialed extension
    (outbound). Raises :class:`InvalidInput` when DIRECTION is neither ``inbound``
    nor ``outbound`` (a dialplan mistake).
    """
    word = env.arg(1).strip().lower()
    try:
        direction = Direction(word)
    except ValueError:
        direction = Direction.BOTH
    if direction is Direction.BOTH:
        raise InvalidInput(
            f"first AGI argument must be 'inbound' or 'outbound', not {printable(env.arg(1))!r}"
        )
    number = env.arg(2).strip()
    if not number:
        number = env.callerid if direction is Direction.INBOUND else env.extension
    return ScreenRequest(
        number=number,
        direction=direction,
        campaign=call_campaign(env.arg(3)),
        uniqueid=env.uniqueid,
        callerid_name=env.calleridname,
    )


def bad_request_decision(reason: str) -> Decision:
    """The answer to a call the dialplan asked about wrongly (bad DIRECTION): the
    call proceeds ``UNSCREENED`` with the reason, whatever the fail policy — a
    dialplan mistake must never block calls, emergency calls above all."""
    return Decision(Result.UNSCREENED, reason=reason, failed=True)


# ---------------------------------------------------------------------- commands


def quote_agi(value: str) -> str:
    """``value`` as one argument of an AGI command line: in double quotes, with
    ``\\`` and ``"`` escaped and control characters (CR, LF, NUL…) made spaces."""
    value = sanitize_value(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def escape_mset(value: str) -> str:
    """``value`` escaped for MSet's argument parser (``ast_app_separate_args``):
    a backslash before each of ``\\ " , ( ) [ ] |`` and ``$``. Control characters
    become spaces."""
    return sanitize_value(value).translate(_MSET_ESCAPE)


def _char_cost(char: str) -> int:
    """Bytes one sanitized value character costs on the command line."""
    if char in _AGI_SPECIAL:
        return 4  # \ or " -> \\ or \" for MSet -> both characters escaped again for AGI
    if char in _MSET_SPECIAL:
        return 3  # , -> \, for MSet -> \\, once the backslash is escaped for AGI
    return len(char.encode())


def _cost(value: str) -> int:
    return sum(map(_char_cost, value))


def _cut(value: str, budget: int) -> str:
    """The longest prefix of ``value`` whose wire cost fits ``budget``."""
    used = 0
    for i, char in enumerate(value):
        used += _char_cost(char)
        if used > budget:
            return value[:i]
    return value


def _mset_line(values: Mapping[str, str]) -> bytes:
    # values are sanitized already: no control characters to replace
    data = ",".join(f"{name}={value.translate(_MSET_ESCAPE)}" for name, value in values.items())
    data = data.replace("\\", "\\\\").replace('"', '\\"')
    return f'EXEC MSet "{data}"\n'.encode()


def mset_command(
    variables: Mapping[str, str],
    *,
    truncate_first: Sequence[str] = TRUNCATE_FIRST,
    limit: int = MAX_COMMAND_BYTES,
) -> bytes:
    """One ``EXEC MSet "A=…,B=…"\\n`` line setting every variable.

    Values are sanitized (:func:`sanitize_value`), escaped for MSet, and the whole
    data quoted for AGI, so that Asterisk sets exactly the given values and the line
    is always one line. If it would exceed ``limit`` bytes (newline included), values
    are shortened at character boundaries — never inside an escape sequence or a
    UTF-8 character — ``truncate_first`` in that order (reason, list, match), then
    any other value, longest first; the result, label and number are kept intact
    unless nothing else is left to cut.
    """
    if not variables:
        raise ValueError("MSet needs at least one variable")
    names = list(variables)
    for name in names:
        if not _VAR_NAME.fullmatch(name):
            raise ValueError(f"not a dialplan variable name: {name!r}")
    values = {name: sanitize_value(variables[name]) for name in names}
    line = _mset_line(values)
    if len(line) <= limit:
        return line
    fixed = len(b'EXEC MSet ""\n') + sum(len(n) + 1 for n in names) + len(names) - 1
    budget = limit - fixed
    if budget < 0:
        raise ValueError("variable names alone exceed the command limit")
    costs = {name: _cost(value) for name, value in values.items()}
    excess = sum(costs.values()) - budget
    rest = sorted(
        (n for n in names if n not in truncate_first), key=lambda n: costs[n], reverse=True
    )
    for name in [n for n in truncate_first if n in values] + rest:
        if excess <= 0:
            break
        keep = max(costs[name] - excess, 0)
        values[name] = _cut(values[name], keep)
        new_cost = _cost(values[name])
        excess -= costs[name] - new_cost
        costs[name] = new_cost
    line = _mset_line(values)
    assert len(line) <= limit, "mset_command budget arithmetic"
    return line


# ---------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply of Asterisk to one command.

    ``result`` is the text after ``result=`` (``'0'``, ``'1'``, ``'-1'``), '' for
    replies without one (510, 511, 520); ``data`` the text in parentheses after it
    (``200 result=1 (timeout)``), or the message of a reply without ``result=``;
    ``extra`` what follows (``endpos=1234``); ``lines`` every line of the reply
    (several for a ``520-`` usage block).
    """

    code: int
    result: str = ""
    data: str = ""
    extra: str = ""
    lines: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """A ``200`` reply whose result is not ``-1`` (the command ran)."""
        return self.code == 200 and self.result != "-1"

    @property
    def endpos(self) -> int | None:
        for word in self.extra.split():
            key, sep, value = word.partition("=")
            if sep and key == "endpos" and value.lstrip("-").isdigit():
                return int(value)
        return None


def _parse_single(code: int, text: str, lines: tuple[str, ...]) -> Reply:
    match = _RESULT.fullmatch(text)
    if match is None:
        return Reply(code, data=text.strip(), lines=lines)
    result, rest = match.groups()
    data = ""
    if rest.startswith("("):
        close = rest.rfind(")")
        if close > 0:
            data, rest = rest[1:close], rest[close + 1 :].strip()
        else:
            data, rest = rest[1:], ""
    return Reply(code, result=result, data=data, extra=rest.strip(), lines=lines)


class ReplyParser:
    """Turns reply lines into :class:`Reply` s, one at a time.

    Feed it lines (terminators removed) with :meth:`feed_line`; it returns a
    :class:`Reply` when one is complete, else None. A multi-line ``NNN-`` block is
    consumed whole up to its ``NNN `` line (panoramisk reads only its first line and
    every later reply is then one step late). ``HANGUP`` sets :attr:`hungup` and is
    skipped, as are ``1xx`` provisional lines.
    """

    __slots__ = ("_block", "_code", "hungup", "max_lines")

    def __init__(self, max_lines: int = 256) -> None:
        self.max_lines = max_lines
        self.hungup = False
        self._block: list[str] | None = None
        self._code = ""

    @property
    def in_block(self) -> bool:
        """Whether a multi-line reply has started and not ended."""
        return self._block is not None

    def feed_line(self, line: str) -> Reply | None:
        if self._block is not None:
            self._block.append(line)
            if line.startswith(self._code + " "):
                lines = tuple(self._block)
                self._block = None
                return _parse_single(int(self._code), lines[0][4:], lines)
            if len(self._block) > self.max_lines:
                raise ProtocolError(f"{self._code}- reply longer than {self.max_lines} lines")
            return None
        if line == "HANGUP":
            self.hungup = True
            return None
        match = _REPLY_CODE.fullmatch(line)
        if match is None:
            raise ProtocolError(f"not an AGI reply: {printable(line)!r}")
        code, sep, text = match.groups()
        text = text or ""
        if sep == "-":
            self._code = code
            self._block = [line]
            return None
        if code.startswith("1"):
            return None  # 100 Trying...: provisional
        return _parse_single(int(code), text, (line,))


# ------------------------------------------------------------------------ lines


class LineSplitter:
    """Splits a byte stream into lines at ``\\n`` (a ``\\r`` before it is dropped),
    decoded as UTF-8 (invalid bytes replaced). A line longer than ``max_line_bytes``
    raises :class:`ProtocolError` as soon as that many bytes are buffered — the peer
    cannot make us hold more than that."""

    __slots__ = ("_buffer", "max_line_bytes")

    def __init__(self, max_line_bytes: int = 4096) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer
        buffer += data
        last = buffer.rfind(b"\n")
        limit = self.max_line_bytes
        if last < 0:
            if len(buffer) > limit:
                raise ProtocolError(f"line longer than {limit} bytes")
            return []
        chunk = bytes(buffer[:last])
        del buffer[: last + 1]
        if len(buffer) > limit or (
            len(chunk) > limit and any(len(raw) > limit for raw in chunk.split(b"\n"))
        ):
            raise ProtocolError(f"line longer than {limit} bytes")
        # Decoding the lines together equals decoding each: b"\n" always ends a
        # UTF-8 sequence, valid or not.
        text = chunk.decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines


# ---------------------------------------------------------------------- session


class Phase(Enum):
    """Where an :class:`AgiSession` stands."""

    ENV = "env"  # reading the environment block
    READY = "ready"  # env received, no command sent yet
    COMMANDED = "commanded"  # at least one command sent


@dataclass(frozen=True, slots=True)
class EnvReceived:
    """The environment block ended (its first empty line)."""

    env: AgiEnv


@dataclass(frozen=True, slots=True)
class EnvAmended:
    """Environment lines arrived after the block's empty line: a forged early empty
    line in the caller-ID name. ``env`` is the block read again with them."""

    env: AgiEnv


@dataclass(frozen=True, slots=True)
class HangupReceived:
    """Asterisk wrote ``HANGUP``: the caller hung up. Not a reply."""


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A complete reply to a command."""

    reply: Reply


Event = EnvReceived | EnvAmended | HangupReceived | ReplyReceived


class AgiSession:
    """The state of one AGI conversation, fed bytes, returning events (h11-style:
    no I/O, no clock; the server owns both).

    Bounds: every line at most ``max_line_bytes``; the environment, lines arriving
    after its end included, at most ``max_env_lines``; a reply at most
    ``max_reply_lines``. Past them, :class:`ProtocolError`.

    Lines arriving after the env's empty line, before the replies, are more of the
    environment (a forged early empty line in the caller-ID name); they are added
    and the env is derived again (:class:`EnvAmended`). The server checks for them
    right before answering.
    """

    __slots__ = (
        "_items",
        "_name_seen",
        "_replies",
        "_splitter",
        "env",
        "hungup",
        "late_lines",
        "max_env_lines",
        "pending_replies",
        "phase",
    )

    def __init__(
        self, *, max_line_bytes: int = 4096, max_env_lines: int = 128, max_reply_lines: int = 256
    ) -> None:
        self._splitter = LineSplitter(max_line_bytes)
        self._replies = ReplyParser(max_reply_lines)
        self._items: list[_Line] = []
        self._name_seen = False
        self.max_env_lines = max_env_lines
        self.phase = Phase.ENV
        self.env: AgiEnv | None = None
        self.hungup = False
        self.late_lines = 0
        self.pending_replies = 0

    @property
    def env_lines(self) -> tuple[str, ...]:
        """Every environment line received, empty ones included."""
        return tuple(item[_RAW] for item in self._items)

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes from the peer; return what they completed."""
        events: list[Event] = []
        lines = self._splitter.feed(data)
        if self.phase is Phase.ENV:
            # The environment's lines, in a loop of their own: every call has some
            # twenty-five of them.
            items = self._items
            limit = self.max_env_lines
            name_seen = self._name_seen
            done = 0
            for line in lines:
                done += 1
                if not line:
                    self.env = _derive(items)
                    items.append(_BLANK_LINE)
                    self.phase = Phase.READY
                    events.append(EnvReceived(self.env))
                    break
                item = _classify(line)
                if len(items) >= limit:
                    raise ProtocolError(f"environment longer than {limit} lines")
                items.append(item)
                if not name_seen:
                    # Before the caller-ID name nothing is forgeable: fail fast on garbage.
                    if item[_KIND] == _JUNK:
                        raise ProtocolError(f"not an AGI environment line: {printable(line)!r}")
                    name_seen = item[_KEYF] == NAME_KEY
            self._name_seen = name_seen
            if done == len(lines):
                return events
            lines = lines[done:]
        amended = False
        for line in lines:
            if line == "HANGUP" and not self._replies.in_block:
                self.hungup = True
                events.append(HangupReceived())
                continue
            item = _classify(line)
            if self.phase is Phase.READY or (not self._replies.in_block and item[_KIND] != _JUNK):
                self._add(item)
                self.late_lines += 1
                amended = True
                continue
            reply = self._replies.feed_line(line)
            if reply is not None:
                self.pending_replies = max(self.pending_replies - 1, 0)
                events.append(ReplyReceived(reply))
        if amended:
            self.env = _derive(self._items)
            events.append(EnvAmended(self.env))
        return events

    def _add(self, item: _Line) -> None:
        if len(self._items) >= self.max_env_lines:
            raise ProtocolError(f"environment longer than {self.max_env_lines} lines")
        self._items.append(item)

    def send(self, command: bytes) -> bytes:
        """Check a command before it is written: one line, within the size Asterisk
        reads whole, and only once the environment has been received."""
        if self.phase is Phase.ENV:
            raise ProtocolError("command before the end of the AGI environment")
        if not command.endswith(b"\n") or command.count(b"\n") != 1 or b"\r" in command:
            raise ValueError("an AGI command is exactly one line ending in \\n")
        if len(command) > MAX_COMMAND_BYTES:
            raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
        self.phase = Phase.COMMANDED
        self.pending_replies += 1
        return command


def reply_outcome(reply: Reply, hungup: bool, corrected: bool) -> tuple[str, str]:
    """How a call ended after the answer's last reply (classic AGI and FastAGI alike):
    the outcome for the call's log line (``ok``, ``corrected``, ``hangup``, ``reply
    CODE``) and, when Asterisk refused the answer, a warning to log (else ``""``)."""
    if reply.code == 511 or hungup:
        return "hangup", ""
    if reply.code != 200:
        return f"reply {reply.code}", f"Asterisk refused the answer: {printable(reply.lines[0])}"
    return ("corrected" if corrected else "ok"), ""
