"""RESP2, the Redis wire protocol, as pure code over bytes (no sockets here).

:func:`encode_command` turns a command into the bytes to send. :class:`RespParser`
turns what Redis sends back into values, however the bytes were split on the way:
:meth:`~RespParser.feed` it whatever the socket delivered, then call
:meth:`~RespParser.get` until it returns :data:`NOTHING`.

Reply types and the values they become:

=========================  ==================================================
``+OK``                    ``bytes`` (simple string)
``-ERR ...``               :class:`RespError`, a value: it is *returned*, not
                           raised, so an error inside an array (a Lua table,
                           ``EXEC``) stays where it was
``:42``                    ``int``
``$3 foo`` / ``$-1``       ``bytes`` / ``None`` (null bulk string)
``*2 ...`` / ``*-1``       ``list`` (nested as sent) / ``None`` (null array)
=========================  ==================================================

Only RESP2 is spoken (callscreen never sends ``HELLO 3``), so RESP3 type bytes
(``_``, ``,``, ``#``, ``%``, ``~``, ``>`` ...) are protocol errors, as is anything
past the size limits below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from callscreen.core.errors import StoreProtocolError

__all__ = [
    "MAX_ARRAY_LEN",
    "MAX_BULK_BYTES",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "NOTHING",
    "Nothing",
    "RespError",
    "RespParser",
    "RespValue",
    "encode_command",
]

# Redis's own limit for one bulk string (proto-max-bulk-len defaults to 512 MB):
# a larger length can only be a corrupt or hostile stream.
MAX_BULK_BYTES: Final = 512 * 1024 * 1024
# Redis collections hold at most 2**32 - 1 elements.
MAX_ARRAY_LEN: Final = 2**32 - 1
# Simple strings, errors, integers and the length headers are short: Redis keeps its
# own error messages well under 1 KB. The bound stops a stream that never sends CRLF
# from growing the buffer without end (and the rescans for CRLF from costing much).
MAX_LINE_BYTES: Final = 1024 * 1024
# Nested arrays: far deeper than any command or script reply we use; without a bound
# a stream of "*1\r\n" would grow the parser's stack for ever.
MAX_DEPTH: Final = 1000

# A RESP integer is a signed 64-bit number: at most 19 digits after an optional "-".
_MAX_INT_DIGITS: Final = 19

_SIMPLE: Final = ord("+")
_ERROR: Final = ord("-")
_INTEGER: Final = ord(":")
_BULK: Final = ord("$")
_ARRAY: Final = ord("*")


@dataclass(frozen=True, slots=True)
class RespError:
    """An error reply (``-NOSCRIPT No matching script...``) as a value."""

    message: str

    @property
    def code(self) -> str:
        """The error's first word by Redis convention: ``ERR``, ``NOSCRIPT``, ``WRONGTYPE``..."""
        return self.message.split(" ", 1)[0]

    def __str__(self) -> str:
        return self.message


RespValue: TypeAlias = "bytes | int | RespError | list[RespValue] | None"
"""Any value a RESP2 reply decodes to."""


class Nothing(enum.Enum):
    """The type of :data:`NOTHING`."""

    NOTHING = "NOTHING"


NOTHING: Final = Nothing.NOTHING
"""What :meth:`RespParser.get` returns while no complete reply has been fed."""


def encode_command(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings, the form Redis expects.

    ``str`` is encoded as UTF-8, ``int`` as its decimal digits. ``bool`` is refused
    (``True`` would silently become ``b"True"``), as is any other type.
    """
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        # Exact types first: the common case, and cheaper than isinstance.
        if type(arg) is str:
            data = arg.encode()
        elif type(arg) is bytes:
            data = arg
        elif type(arg) is int:
            data = b"%d" % arg
        else:
            data = _encode_other(arg)
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(parts)


def _encode_other(arg: object) -> bytes:
    # Subclasses (a StrEnum member is a str) and bytearray; bool is an int but would
    # silently become b"True".
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    raise TypeError(f"cannot send a {type(arg).__name__} to Redis: {arg!r}")


# Lengths and counts are nearly always small: a dict hit is cheaper than int().
_SMALL_INTS: Final = {b"%d" % i: i for i in range(-1, 1024)}


def _integer(raw: bytes) -> int:
    value = _SMALL_INTS.get(raw)
    if value is not None:
        return value
    # int() alone would also take " 7", "+7", "7_0" and non-ASCII digits; RESP allows
    # only -?[0-9]+.
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or len(digits) > _MAX_INT_DIGITS:
        raise StoreProtocolError(f"invalid RESP integer {raw[:32]!r}")
    return int(raw)


class RespParser:
    """An incremental RESP2 reply parser.

    ``feed()`` the bytes as they arrive, then call ``get()`` until it returns
    :data:`NOTHING`: each call returns the next complete top-level reply. Arrays
    are assembled on an explicit stack, so a reply that arrives in pieces is
    resumed where it stopped and its finished elements are never parsed twice
    (only an incomplete line is scanned again when more bytes come). A stream
    that breaks the protocol or a limit raises
    :class:`~callscreen.core.errors.StoreProtocolError`; the parser (and the
    connection it reads) cannot be used after that.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_max_array",
        "_max_bulk",
        "_max_depth",
        "_max_line",
        "_need",
        "_pos",
        "_stack",
        "_waiting",
    )

    def __init__(
        self,
        *,
        max_bulk: int = MAX_BULK_BYTES,
        max_array: int = MAX_ARRAY_LEN,
        max_line: int = MAX_LINE_BYTES,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        # The bytes being parsed and how far they are consumed. The usual chunk holds
        # whole replies and becomes the buffer as it is, without a copy.
        self._buf = b""
        self._pos = 0
        # Chunks fed after an incomplete reply: joined only once the reply can have
        # come whole (``_need`` bytes from ``_pos``), so a large bulk string arriving
        # in many pieces is copied once, not once per piece.
        self._chunks: list[bytes] = []
        self._waiting = 0  # bytes in _chunks
        self._need = 0
        # Arrays still being filled: (element count, elements so far), innermost last.
        self._stack: list[tuple[int, list[RespValue]]] = []
        self._max_bulk = max_bulk
        self._max_array = max_array
        self._max_line = max_line
        self._max_depth = max_depth

    def feed(self, data: bytes) -> None:
        """Add bytes received from Redis."""
        if not data:
            return
        if self._pos == len(self._buf) and not self._chunks:
            self._buf = bytes(data)  # no copy when data is already bytes
            self._pos = 0
        else:
            self._chunks.append(bytes(data))
            self._waiting += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (a partial line or bulk string)."""
        return len(self._buf) - self._pos + self._waiting

    def get(self) -> RespValue | Nothing:
        """The next complete reply, or :data:`NOTHING` until more bytes are fed."""
        if self._chunks:
            if len(self._buf) - self._pos + self._waiting < self._need:
                return NOTHING
            self._buf = self._buf[self._pos :] + b"".join(self._chunks)
            self._pos = 0
            self._chunks.clear()
            self._waiting = 0
        buf = self._buf
        pos = self._pos
        size = len(buf)
        stack = self._stack
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if size - pos > self._max_line:
                    raise StoreProtocolError(
                        f"RESP line longer than {self._max_line} bytes without CRLF"
                    )
                return self._incomplete(pos, size - pos + 1)
            if end - pos > self._max_line:
                raise StoreProtocolError(f"RESP line longer than {self._max_line} bytes")
            kind = buf[pos]
            value: RespValue
            if kind == _BULK:
                length = _integer(buf[pos + 1 : end])
                if length >= 0:
                    if length > self._max_bulk:
                        raise StoreProtocolError(
                            f"RESP bulk string of {length} bytes exceeds {self._max_bulk}"
                        )
                    start = end + 2
                    stop = start + length
                    if size < stop + 2:
                        # Payload not all here: resume from this header once it can be.
                        return self._incomplete(pos, stop + 2 - pos)
                    # The length is authoritative (the payload may hold CRLF itself),
                    # and exactly CRLF must follow it.
                    if buf[stop] != 13 or buf[stop + 1] != 10:
                        raise StoreProtocolError("RESP bulk string not followed by CRLF")
                    value = buf[start:stop]
                    pos = stop + 2
                elif length == -1:
                    value = None  # the null bulk string: GET of a missing key
                    pos = end + 2
                else:
                    raise StoreProtocolError(f"negative RESP bulk length {length}")
            elif kind == _SIMPLE:
                value = buf[pos + 1 : end]
                pos = end + 2
            elif kind == _INTEGER:
                value = _integer(buf[pos + 1 : end])
                pos = end + 2
            elif kind == _ERROR:
                # Error text is meant to be ASCII; a Lua script can put anything in it.
                value = RespError(buf[pos + 1 : end].decode("utf-8", "replace"))
                pos = end + 2
            elif kind == _ARRAY:
                length = _integer(buf[pos + 1 : end])
                pos = end + 2
                if length > 0:
                    if length > self._max_array:
                        raise StoreProtocolError(
                            f"RESP array of {length} elements exceeds {self._max_array}"
                        )
                    if len(stack) >= self._max_depth:
                        raise StoreProtocolError(
                            f"RESP arrays nested deeper than {self._max_depth}"
                        )
                    stack.append((length, []))
                    continue
                if length == 0:
                    value = []
                elif length == -1:
                    value = None  # the null array: e.g. a timed-out BLPOP
                else:
                    raise StoreProtocolError(f"negative RESP array length {length}")
            else:
                raise StoreProtocolError(f"unknown RESP type byte {bytes([kind])!r}")

            # A complete value: it fills its array, which may complete the array
            # around it, and so on up.
            while stack:
                count, items = stack[-1]
                items.append(value)
                if len(items) < count:
                    break
                stack.pop()
                value = items
            else:
                self._pos = pos
                return value

    def _incomplete(self, pos: int, need: int) -> Nothing:
        """Remember where to resume and how many bytes from there must be present."""
        self._pos = pos
        self._need = need
        return NOTHING
