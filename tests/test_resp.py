"""The RESP2 codec, fed bytes split at every awkward point (as httpx tests its LineDecoder)."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscreen.callpath.resp import NOTHING, RespError, RespParser, RespValue, encode_command
from callscreen.core.errors import StoreProtocolError


@dataclass(frozen=True)
class Simple:
    """A simple string (``+...``) in generated replies; it decodes to bytes."""

    text: bytes


class NullArray:
    """``*-1`` in generated replies; it decodes to None, as ``$-1`` does."""


Reply = bytes | int | None | RespError | Simple | NullArray | list["Reply"]


def encode_reply(value: Reply) -> bytes:
    """What a Redis server would send for ``value`` (the other side of the parser)."""
    if isinstance(value, Simple):
        return b"+" + value.text + b"\r\n"
    if isinstance(value, RespError):
        return b"-" + value.message.encode() + b"\r\n"
    if isinstance(value, NullArray):
        return b"*-1\r\n"
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(item) for item in value)


def decoded(value: Reply) -> RespValue:
    """What the parser should make of ``encode_reply(value)``."""
    if isinstance(value, Simple):
        return value.text
    if isinstance(value, NullArray):
        return None
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def parse_pieces(pieces: Iterable[bytes], parser: RespParser | None = None) -> list[RespValue]:
    """Feed the pieces one by one, collecting every reply as soon as it is complete."""
    parser = parser or RespParser()
    out: list[RespValue] = []
    for piece in pieces:
        parser.feed(piece)
        while (value := parser.get()) is not NOTHING:
            out.append(value)
    assert parser.get() is NOTHING
    return out


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


SAMPLES: list[tuple[bytes, RespValue]] = [
    (b"+OK\r\n", b"OK"),
    (b"+\r\n", b""),
    (b"-ERR unknown command 'FOO'\r\n", RespError("ERR unknown command 'FOO'")),
    (b"-NOSCRIPT No matching script.\r\n", RespError("NOSCRIPT No matching script.")),
    (b":0\r\n", 0),
    (b":-1\r\n", -1),
    (b":1000\r\n", 1000),
    (b":9223372036854775807\r\n", 2**63 - 1),
    (b":-9223372036854775808\r\n", -(2**63)),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"$6\r\nfoobar\r\n", b"foobar"),
    (b"$4\r\n\r\n\r\n\r\n", b"\r\n\r\n"),  # CRLF inside a bulk string is data
    (b"$5\r\n$-1\r\n\r\n", b"$-1\r\n"),  # so is something that looks like RESP
    (b"*0\r\n", []),
    (b"*-1\r\n", None),
    (b"*3\r\n$3\r\nfoo\r\n$-1\r\n:5\r\n", [b"foo", None, 5]),
    (
        b"*3\r\n*2\r\n+a\r\n*0\r\n*-1\r\n*1\r\n*1\r\n-ERR x\r\n",
        [[b"a", []], None, [[RespError("ERR x")]]],
    ),
    (b"*2\r\n$1\r\n\xff\r\n-\xff bad utf8\r\n", [b"\xff", RespError("\ufffd bad utf8")]),
]


@pytest.mark.parametrize(("data", "expected"), SAMPLES)
def test_reply_split_in_two_at_every_byte(data: bytes, expected: RespValue) -> None:
    for cut in range(len(data) + 1):
        assert parse_pieces(split_at(data, [cut])) == [expected], f"cut at {cut}"


@pytest.mark.parametrize(("data", "expected"), SAMPLES)
def test_reply_fed_byte_by_byte(data: bytes, expected: RespValue) -> None:
    assert parse_pieces(data[i : i + 1] for i in range(len(data))) == [expected]


def test_every_sample_back_to_back_split_at_every_pair_of_points() -> None:
    stream = b"".join(data for data, _ in SAMPLES)
    expected = [value for _, value in SAMPLES]
    assert parse_pieces([stream]) == expected
    # Every pair of cut points: each reply boundary, mid-header, mid-payload and
    # mid-CRLF, in all combinations (some 35k parses).
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            assert parse_pieces(split_at(stream, [first, second])) == expected


def test_get_before_any_data_and_after_the_last_reply_is_nothing() -> None:
    parser = RespParser()
    assert parser.get() is NOTHING
    parser.feed(b"")
    assert parser.get() is NOTHING
    parser.feed(b":1\r\n:2")
    assert parser.get() == 1
    assert parser.get() is NOTHING
    assert parser.get() is NOTHING
    parser.feed(b"\r\n")
    assert parser.get() == 2
    assert parser.buffered == 0


def test_large_bulk_in_many_small_chunks() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, CRLF pairs included
    data = b"*2\r\n$%d\r\n%b\r\n:7\r\n" % (len(payload), payload)
    parser = RespParser()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    for chunk in chunks[:-1]:
        parser.feed(chunk)
        assert parser.get() is NOTHING
    # All held but the array header, whose count is on the parser's stack.
    assert parser.buffered == len(data) - len(b"*2\r\n") - len(chunks[-1])
    parser.feed(chunks[-1])
    assert parser.get() == [payload, 7]
    assert parser.buffered == 0


def test_partial_array_keeps_finished_elements() -> None:
    parser = RespParser()
    parser.feed(b"*3\r\n$3\r\nabc\r\n:1\r\n$4\r\nde")
    assert parser.get() is NOTHING
    # Only the unfinished bulk string is still held as bytes.
    assert parser.buffered == len(b"$4\r\nde")
    parser.feed(b"fg\r\n")
    assert parser.get() == [b"abc", 1, b"defg"]


BROKEN = [
    pytest.param(b"?what\r\n", "unknown RESP type", id="unknown type"),
    pytest.param(b"_\r\n", "unknown RESP type", id="RESP3 null"),
    pytest.param(b",1.5\r\n", "unknown RESP type", id="RESP3 double"),
    pytest.param(b"%1\r\n+a\r\n+b\r\n", "unknown RESP type", id="RESP3 map"),
    pytest.param(b"\r\n", "unknown RESP type", id="empty line"),
    pytest.param(b":\r\n", "invalid RESP integer", id="empty integer"),
    pytest.param(b":12a\r\n", "invalid RESP integer", id="integer with letters"),
    pytest.param(b": 12\r\n", "invalid RESP integer", id="integer with space"),
    pytest.param(b":+12\r\n", "invalid RESP integer", id="integer with plus"),
    pytest.param(b":1_000\r\n", "invalid RESP integer", id="integer with underscore"),
    pytest.param(b":--1\r\n", "invalid RESP integer", id="integer double minus"),
    pytest.param(b":12345678901234567890\r\n", "invalid RESP integer", id="integer > 64 bit"),
    pytest.param(b"$x\r\n", "invalid RESP integer", id="bulk length not a number"),
    pytest.param(b"$-2\r\n", "negative RESP bulk length", id="bulk length -2"),
    pytest.param(b"$3\r\nfooXY", "not followed by CRLF", id="bulk without CRLF"),
    pytest.param(b"$3\r\nfoo\n\r", "not followed by CRLF", id="bulk with LFCR"),
    pytest.param(b"$3\r\nfoob\r\n", "not followed by CRLF", id="bulk longer than said"),
    pytest.param(b"*-2\r\n", "negative RESP array length", id="array length -2"),
    pytest.param(b"*2\r\n:1\r\n!\r\n", "unknown RESP type", id="bad element"),
    pytest.param(b"$536870913\r\n", "exceeds", id="bulk over 512 MB"),
    pytest.param(b"*4294967296\r\n", "exceeds", id="array over 2**32-1"),
]


@pytest.mark.parametrize(("data", "message"), BROKEN)
def test_protocol_errors(data: bytes, message: str) -> None:
    parser = RespParser()
    parser.feed(data)
    with pytest.raises(StoreProtocolError, match=message):
        parser.get()


@pytest.mark.parametrize(("data", "message"), BROKEN)
def test_protocol_errors_are_found_whatever_the_split(data: bytes, message: str) -> None:
    for cut in range(1, len(data)):
        parser = RespParser()
        with pytest.raises(StoreProtocolError, match=message):
            parse_pieces([data[:cut], data[cut:]], parser)


def test_limits_are_configurable() -> None:
    parser = RespParser(max_bulk=10)
    parser.feed(b"$10\r\n0123456789\r\n$11\r\n")
    assert parser.get() == b"0123456789"
    with pytest.raises(StoreProtocolError, match="exceeds 10"):
        parser.get()

    parser = RespParser(max_array=2)
    parser.feed(b"*2\r\n:1\r\n:2\r\n*3\r\n")
    assert parser.get() == [1, 2]
    with pytest.raises(StoreProtocolError, match="exceeds 2"):
        parser.get()

    parser = RespParser(max_depth=3)
    parser.feed(b"*1\r\n*1\r\n*1\r\n:1\r\n*1\r\n*1\r\n*1\r\n*1\r\n")
    assert parser.get() == [[[1]]]
    with pytest.raises(StoreProtocolError, match="deeper than 3"):
        parser.get()


def test_a_line_without_crlf_is_bounded() -> None:
    parser = RespParser(max_line=100)
    parser.feed(b"+" + b"x" * 99)
    assert parser.get() is NOTHING
    parser.feed(b"xx")  # 101 bytes and still no CRLF: not waiting any longer
    with pytest.raises(StoreProtocolError, match="without CRLF"):
        parser.get()
    parser = RespParser(max_line=100)
    parser.feed(b"-" + b"x" * 100 + b"\r\n")  # complete but too long: same answer
    with pytest.raises(StoreProtocolError, match="longer than 100"):
        parser.get()


def test_resp_error_code() -> None:
    assert RespError("NOSCRIPT No matching script").code == "NOSCRIPT"
    assert RespError("WRONGTYPE Operation against a key").code == "WRONGTYPE"
    assert RespError("").code == ""
    assert str(RespError("ERR x")) == "ERR x"


class Color(enum.StrEnum):
    RED = "red"


def test_encode_command() -> None:
    assert encode_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert encode_command(b"SET", "clé", 42, -1, b"") == (
        b"*5\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n42\r\n$2\r\n-1\r\n$0\r\n\r\n"
    )
    assert encode_command("GET", Color.RED, bytearray(b"x")) == encode_command("GET", "red", b"x")


@pytest.mark.parametrize("bad", [True, None, 1.5, ["x"], object()])
def test_encode_command_refuses_other_types(bad: object) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        encode_command("SET", "k", bad)  # type: ignore[arg-type]


def test_encode_command_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least"):
        encode_command()


# Property tests: anything a server can send, split anywhere, comes back whole.

_line = st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)
_scalars = st.one_of(
    st.binary(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
    st.builds(NullArray),
    _line.map(Simple),
    st.text(max_size=20)
    .filter(lambda t: "\r" not in t and "\n" not in t)
    .map(lambda t: RespError("ERR " + t)),
)
replies: st.SearchStrategy[Reply] = st.recursive(
    _scalars, lambda children: st.lists(children, max_size=5), max_leaves=30
)


@given(st.lists(replies, min_size=1, max_size=4), st.data())
def test_round_trip_split_anywhere(values: list[Reply], data: st.DataObject) -> None:
    stream = b"".join(encode_reply(value) for value in values)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert parse_pieces(split_at(stream, cuts)) == [decoded(value) for value in values]


@given(
    st.lists(
        st.one_of(st.binary(max_size=30), st.text(max_size=30), st.integers()),
        min_size=1,
        max_size=10,
    ),
    st.data(),
)
def test_encode_command_parses_back_as_array_of_bulks(
    args: list[bytes | str | int], data: st.DataObject
) -> None:
    stream = encode_command(*args)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=4))
    expected = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
    assert parse_pieces(split_at(stream, cuts)) == [expected]
