"""The AGI wire format as pure code: env blocks, replies, escaping — bytes in, values out."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscreen.callpath.decision import VARIABLES, Decision, ScreenRequest
from callscreen.callpath.protocol import (
    MAX_COMMAND_BYTES,
    AgiEnv,
    AgiSession,
    EnvAmended,
    EnvReceived,
    HangupReceived,
    LineSplitter,
    Phase,
    Reply,
    ReplyParser,
    ReplyReceived,
    bad_request_decision,
    derive_env,
    escape_mset,
    mset_command,
    printable,
    quote_agi,
    sanitize_value,
    screen_request,
)
from callscreen.core.errors import InvalidInput, ProtocolError
from callscreen.core.model import Direction, Result
from tests.support.agiclient import (
    _asterisk_lines,
    agi_parse_args,
    build_env,
    mset_variables,
    separate_args,
    unescape_mset,
)

ENV = build_env(args=("inbound", "+33123456789", "spring"), uniqueid="1700000000.42")


def env_lines(data: bytes) -> list[str]:
    return LineSplitter(1 << 20).feed(data)


def feed_all(session: AgiSession, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events.extend(session.feed(chunk))
    return events


# ----------------------------------------------------------------------- lines


def test_lines_split_on_newline_and_drop_a_carriage_return() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"a: 1\r\nb: 2\nc") == ["a: 1", "b: 2"]
    assert splitter.pending == 1
    assert splitter.feed(b"\n\n") == ["c", ""]


def test_same_lines_whatever_the_split_point() -> None:
    data = b"agi_a: 1\r\nagi_b: \xc3\xa9t\xc3\xa9\n\nx\xff\n"
    expected = LineSplitter().feed(data)
    assert expected == ["agi_a: 1", "agi_b: été", "", "x\ufffd"]
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1):
            splitter = LineSplitter()
            got = splitter.feed(data[:i]) + splitter.feed(data[i:j]) + splitter.feed(data[j:])
            assert got == expected, (i, j)


def test_a_line_over_the_limit_fails_before_its_end_arrives() -> None:
    splitter = LineSplitter(max_line_bytes=256)
    splitter.feed(b"x" * 256)
    with pytest.raises(ProtocolError, match="longer than 256"):
        splitter.feed(b"x")
    with pytest.raises(ProtocolError):
        LineSplitter(max_line_bytes=256).feed(b"y" * 300 + b"\n")
    assert LineSplitter(max_line_bytes=256).feed(b"z" * 256 + b"\n") == ["z" * 256]


# ----------------------------------------------------------------------- env


def test_env_fields() -> None:
    env = derive_env(env_lines(ENV))
    assert env.request == "agi://127.0.0.1:4573/screen"
    assert env.network_script == "screen"
    assert env.script == "screen"
    assert env.channel == "PJSIP/trunk-00000001"
    assert env.uniqueid == "1700000000.42"
    assert env.callerid == "+33123456789"
    assert env.calleridname == "Alice"
    assert env.callingpres == 0
    assert env.extension == "s"
    assert env.context == "from-trunk"
    assert env.dnid == "unknown"
    assert env.args == ("inbound", "+33123456789", "spring")
    assert env.arg(3) == "spring" and env.arg(4) == "" and env.arg(0) == ""
    assert env.get("agi_accountcode") == "" and env.get("agi_priority") == "2"
    assert not env.tainted


#: An environment block exactly as Asterisk 22.10.1 wrote it (Local channel, FastAGI).
ASTERISK_22_ENV = (
    "agi_network: yes\nagi_network_script: screen\nagi_request: agi://127.0.0.1:14573/screen\n"
    "agi_channel: Local/33612345678@callscreen-bench-agi-0000f457;2\nagi_language: en\n"
    "agi_type: Local\nagi_uniqueid: 1796289139.125103\nagi_version: 22.10.1\n"
    "agi_callerid: +33612345678\nagi_calleridname: Bench\nagi_callingpres: 0\n"
    "agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    "agi_rdnis: unknown\nagi_context: callscreen-bench-agi\nagi_extension: 33612345678\n"
    "agi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 139814492108480\n"
    "agi_arg_1: inbound\nagi_arg_2: +33612345678\nagi_arg_3: bench\n\n"
)


@pytest.mark.parametrize("network", [True, False])
@pytest.mark.parametrize("extra", [[], ["agi_future_key: z"], ["agi_arg_5: gap"]])
def test_the_exact_asterisk_block_reads_as_any_honest_block(
    network: bool, extra: list[str]
) -> None:
    # A block with Asterisk's keys in Asterisk's order takes a shortcut; a block that
    # differs (no agi_network lines, a key from a newer Asterisk, a gap in the
    # arguments) takes the general path: both read the same fields.
    lines = ASTERISK_22_ENV.split("\n")[:-2]  # without the block's end
    if not network:
        lines = lines[2:]
    lines = [*lines, *extra, "", ""]
    env = derive_env(lines)
    assert not env.tainted
    assert env.args == ("inbound", "+33612345678", "bench")
    assert env.calleridname == "Bench" and env.callerid == "+33612345678"
    assert env.channel == "Local/33612345678@callscreen-bench-agi-0000f457;2"
    assert env.get("agi_threadid") == "139814492108480"
    assert env.script == "screen"
    assert env.network_script == ("screen" if network else "")
    session = AgiSession()
    data = "\n".join(lines).encode()
    events = session.feed(data[:431]) + session.feed(data[431:])
    assert events == [EnvReceived(env)]


def test_script_drops_the_query_and_falls_back_to_the_request() -> None:
    env = derive_env(env_lines(build_env(script="screen", query="x=1&y=2")))
    assert env.network_script == "screen"
    assert env.script == "screen"
    assert env.get("agi_network_script") == "screen?x=1&y=2"
    only_request = derive_env(["agi_request: agi://h:4573/optout?x", "agi_uniqueid: 1"])
    assert only_request.script == "optout"
    assert derive_env(["agi_request: /var/lib/asterisk/agi-bin/x"]).script == ""


def test_junk_before_the_name_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an AGI environment line"):
        derive_env(["agi_network: yes", "GET / HTTP/1.1", "agi_request: x"])
    with pytest.raises(ProtocolError):
        derive_env(["agi_request: x", "", "agi_calleridname: y"])


def split_name(name: str, args: tuple[str, ...] = ("inbound", "+33123456789", "c")) -> bytes:
    return build_env(args=args, calleridname=name, callerid="+33111111111", extension="700")


def test_a_name_with_newlines_cannot_forge_keys() -> None:
    name = (
        'Bob" \nagi_callerid: +19005550100\nagi_extension: 911\n'
        "agi_arg_1: outbound\nagi_arg_2: 911\nEXEC Dial(PJSIP/evil)\nagi_callingpres: 0"
    )
    env = derive_env(env_lines(split_name(name)))
    assert env.tainted
    assert env.callerid == "+33111111111"
    assert env.extension == "700"
    assert env.args == ("inbound", "+33123456789", "c")
    assert env.callingpres == 0
    assert env.calleridname.startswith('Bob"  agi_callerid: +19005550100 agi_extension: 911')
    assert "\n" not in env.calleridname


def test_a_forged_early_blank_line_is_corrected_when_the_rest_arrives() -> None:
    forged_tail = (
        "agi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n"
        "agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: x\nagi_extension: 911\n"
        "agi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 1\n"
        "agi_arg_1: outbound\nagi_arg_2: 911\n"
    )
    data = split_name("Mallory\n" + forged_tail)
    first_blank = data.index(b"\n\n") + 2
    session = AgiSession()
    (received,) = session.feed(data[:first_blank])
    assert isinstance(received, EnvReceived)
    assert received.env.args == ("outbound", "911")  # what the block says so far
    assert session.phase is Phase.READY
    events = session.feed(data[first_blank:])
    assert isinstance(events[-1], EnvAmended)
    env = events[-1].env
    assert env is session.env
    assert env.tainted
    assert env.args == ("inbound", "+33123456789", "c")
    assert env.extension == "700" and env.callerid == "+33111111111"
    assert env.calleridname.startswith("Mallory agi_callingpres: 0")


def test_without_a_name_line_first_occurrence_wins() -> None:
    env = derive_env(["agi_request: a", "agi_arg_1: x", "agi_request: b", "agi_arg_1: y"])
    assert env.request == "a" and env.args == ("x",) and env.tainted


def test_out_of_order_keys_taint() -> None:
    assert derive_env(["agi_uniqueid: 1", "agi_request: a"]).tainted
    assert not derive_env(["agi_request: a", "agi_uniqueid: 1", "agi_future_key: z"]).tainted


def test_args_stop_at_the_first_gap_and_callingpres_may_be_missing() -> None:
    env = derive_env(["agi_request: a", "agi_arg_1: x", "agi_arg_3: z"])
    assert env.args == ("x",)
    assert env.callingpres is None


names = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
    | st.sampled_from(["\n", ": ", "agi_", '"', "\r", "agi_arg_1: "]),
    max_size=8,
).map("".join)
forged_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "",
                "agi_arg_1: outbound",
                "agi_arg_2: 911",
                "agi_arg_3: evil",
                "agi_arg_9: x",
                "agi_callerid: +19005550100",
                "agi_calleridname: Eve",
                "agi_callingpres: 0",
                "agi_extension: 911",
                "agi_threadid: 1",
                "agi_request: agi://evil/optout",
                "agi_network_script: optout",
                "HANGUP",
                "200 result=0",
                'EXEC MSet "CALLSCREEN_RESULT=ALLOWED"',
            ]
        ),
        names.map(lambda s: s.replace("\n", " ")),
    ),
    max_size=12,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=names,
    forged=forged_lines,
    args=st.lists(
        st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))),
        max_size=4,
    ),
)
def test_a_name_never_changes_anything_but_the_name(
    head: str, forged: list[str], args: list[str]
) -> None:
    name = "\n".join([head, *forged])
    data = build_env(args=args, calleridname=name, callerid="+33111111111", extension="700")
    env = derive_env(env_lines(data))
    assert env.callerid == "+33111111111"
    assert env.extension == "700"
    assert env.uniqueid == "1700000000.1"
    assert env.script == "screen"
    assert env.args == tuple(args)
    assert env.callingpres == 0
    assert "\n" not in env.calleridname
    if "\n" not in name:
        assert not env.tainted
    # The same read incrementally by a session (early empty lines included). A
    # forged HANGUP line after one is taken as a hang-up, so only the name may differ.
    session = AgiSession(max_env_lines=10_000, max_line_bytes=1 << 20)
    session.feed(data)
    assert session.env is not None
    assert replace(session.env, calleridname="", raw=()) == replace(env, calleridname="", raw=())


@settings(max_examples=100)
@given(cuts=st.lists(st.integers(0, len(ENV)), max_size=6))
def test_env_is_the_same_however_the_bytes_arrive(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(ENV)]
    session = AgiSession()
    events = feed_all(session, [ENV[a:b] for a, b in itertools.pairwise(points)])
    assert events == [EnvReceived(derive_env(env_lines(ENV)))]


def test_env_split_at_every_byte() -> None:
    expected = derive_env(env_lines(ENV))
    for i in range(len(ENV) + 1):
        session = AgiSession()
        events = feed_all(session, [ENV[:i], ENV[i:]])
        assert events == [EnvReceived(expected)], i


def test_session_fails_fast_on_garbage_and_bounds_lines() -> None:
    with pytest.raises(ProtocolError):
        AgiSession().feed(b"\x16\x03\x01 TLS hello\n")
    with pytest.raises(ProtocolError, match="128 lines"):
        AgiSession(max_env_lines=128).feed(b"agi_x: 1\n" * 129)
    with pytest.raises(ProtocolError, match="longer than 300"):
        AgiSession(max_line_bytes=300).feed(b"agi_x: " + b"1" * 400)
    with pytest.raises(ProtocolError, match="before the end"):
        AgiSession().send(b"NOOP\n")


def test_session_send_checks_the_command() -> None:
    session = AgiSession()
    session.feed(ENV)
    with pytest.raises(ValueError):
        session.send(b"NOOP\nNOOP\n")
    with pytest.raises(ValueError):
        session.send(b"NOOP")
    with pytest.raises(ValueError):
        session.send(b"X" * MAX_COMMAND_BYTES + b"\n")
    assert session.send(b"NOOP\n") == b"NOOP\n"
    assert session.phase is Phase.COMMANDED and session.pending_replies == 1


# ----------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0", Reply(200, "0", lines=("200 result=0",))),
        ("200 result=1 (data)", Reply(200, "1", "data", lines=("200 result=1 (data)",))),
        ("200 result=1 (a (b) c)", Reply(200, "1", "a (b) c", lines=("200 result=1 (a (b) c)",))),
        (
            "200 result=0 endpos=1234",
            Reply(200, "0", extra="endpos=1234", lines=("200 result=0 endpos=1234",)),
        ),
        ("200 result=-1", Reply(200, "-1", lines=("200 result=-1",))),
        (
            "510 Invalid or unknown command",
            Reply(
                510, data="Invalid or unknown command", lines=("510 Invalid or unknown command",)
            ),
        ),
        ("200", Reply(200, lines=("200",))),
    ],
)
def test_single_line_replies(line: str, expected: Reply) -> None:
    assert ReplyParser().feed_line(line) == expected


def test_reply_properties() -> None:
    parser = ReplyParser()
    reply = parser.feed_line("200 result=0 endpos=1234")
    assert reply is not None and reply.ok and reply.endpos == 1234
    failed = parser.feed_line("200 result=-1")
    assert failed is not None and not failed.ok and failed.endpos is None
    dead = parser.feed_line("511 Command Not Permitted on a dead channel or intercept routine")
    assert dead is not None and dead.code == 511 and not dead.ok


def test_garbage_reply_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an AGI reply"):
        ReplyParser().feed_line("hello")


USAGE = (
    b"520-Invalid command syntax.  Proper usage follows:\n"
    b" Usage: SET VARIABLE <variablename> <value>\n"
    b"\n"
    b"200 result=0 this line is usage text, not a reply\n"
    b"520 End of proper usage.\n"
)
REPLIES = b"100 result=0 Trying...\n" + USAGE + b"HANGUP\n200 result=1 (x)\r\n"


def test_multiline_520_is_one_reply_and_later_replies_stay_in_step() -> None:
    expected = [
        ReplyReceived(
            Reply(
                520,
                data="Invalid command syntax.  Proper usage follows:",
                lines=tuple(USAGE.decode().splitlines()),
            )
        ),
        HangupReceived(),
        ReplyReceived(Reply(200, "1", "x", lines=("200 result=1 (x)",))),
    ]
    for i in range(len(REPLIES) + 1):
        session = AgiSession()
        session.feed(ENV)
        session.send(b"SET VARIABLE A\n")
        session.send(b"GET VARIABLE B\n")
        events = feed_all(session, [REPLIES[:i], REPLIES[i:]])
        assert events == expected, i
        assert session.hungup and session.pending_replies == 0


def test_reply_split_at_every_pair_of_points() -> None:
    data = USAGE + b"200 result=0\n"
    for i in range(0, len(data) + 1, 3):
        for j in range(i, len(data) + 1, 5):
            parser_session = AgiSession()
            parser_session.feed(ENV)
            parser_session.send(b"A\n")
            parser_session.send(b"B\n")
            events = feed_all(parser_session, [data[:i], data[i:j], data[j:]])
            assert [type(e) for e in events] == [ReplyReceived, ReplyReceived]


def test_a_long_usage_block_is_bounded() -> None:
    parser = ReplyParser(max_lines=4)
    parser.feed_line("520-x")
    for _ in range(3):
        parser.feed_line("usage")
    with pytest.raises(ProtocolError):
        parser.feed_line("usage")


def test_hangup_while_waiting_to_answer() -> None:
    session = AgiSession()
    session.feed(ENV)
    assert session.feed(b"HANGUP\n") == [HangupReceived()]
    assert session.hungup and session.phase is Phase.READY


def test_late_env_lines_after_the_answer_amend_the_env() -> None:
    data = split_name("Eve\nagi_callingpres: 0\nagi_arg_1: outbound\n")
    first_blank = data.index(b"\n\n") + 2
    session = AgiSession()
    session.feed(data[:first_blank])
    assert session.env is not None and session.env.args == ("outbound",)
    session.send(b"NOOP\n")
    events = session.feed(data[first_blank:] + b"200 result=0\n")
    assert [type(e) for e in events] == [ReplyReceived, EnvAmended]
    amended = events[1]
    assert isinstance(amended, EnvAmended)
    assert amended.env.args == ("inbound", "+33123456789", "c")
    assert session.late_lines == data[first_blank:].count(b"\n")


# ----------------------------------------------------------------------- commands


def test_quote_agi_examples() -> None:
    assert quote_agi("a b") == '"a b"'
    assert quote_agi('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert quote_agi("x\r\ny\0z") == '"x  y z"'


@given(st.text())
def test_quote_agi_round_trips_through_asterisks_parser(value: str) -> None:
    line = f"SET VARIABLE X {quote_agi(value)}".encode()
    assert b"\n" not in line and b"\r" not in line and b"\0" not in line
    argv = agi_parse_args(line)
    assert len(argv) == 4
    assert argv[3].decode() == sanitize_value(value)


def test_escape_mset_examples() -> None:
    assert escape_mset("a,b") == "a\\,b"
    assert escape_mset("x(y") == "x\\(y"
    assert escape_mset('$"\\|[]') == '\\$\\"\\\\\\|\\[\\]'


def test_an_unbalanced_paren_would_swallow_the_next_pairs_without_escaping() -> None:
    # The fact measured on a real Asterisk, reproduced by the simulation ...
    assert unescape_mset(b"REASON=x(y,LIST=z") == {"REASON": "x(y,LIST=z"}
    # ... and what mset_command makes of it.
    command = mset_command({"REASON": "x(y", "LIST": "z"})
    assert mset_variables(command) == {"REASON": "x(y", "LIST": "z"}


def test_separate_args_details() -> None:
    assert separate_args(b"a,b,", b",", True, 99) == [b"a", b"b", b""]
    assert separate_args(b'"a,b",c', b",", True, 99) == [b"a,b", b"c"]
    assert separate_args(b"a=b=\\c", b"=", True, 2) == [b"a", b"b=\\c"]  # rest unprocessed
    assert separate_args(b"a\\,b", b",", False, 99) == [b"a\\,b"]


def test_mset_command_of_a_decision() -> None:
    decision = Decision(
        Result.BLOCKED,
        number="+33123456789",
        list_name="do not call",
        match="+33*",
        reason='said "stop", twice (really)',
    )
    command = mset_command(decision.variables())
    assert command.startswith(b'EXEC MSet "CALLSCREEN_RESULT=BLOCKED,')
    assert command.count(b"\n") == 1 and command.endswith(b"\n")
    assert mset_variables(command) == decision.variables()


def test_mset_command_refuses_bad_names() -> None:
    with pytest.raises(ValueError):
        mset_command({})
    with pytest.raises(ValueError):
        mset_command({"A=B": "x"})
    with pytest.raises(ValueError):
        mset_command({"A,B": "x"})


def test_long_values_are_cut_reason_first() -> None:
    variables = dict.fromkeys(VARIABLES, "")
    variables |= {
        "CALLSCREEN_RESULT": "BLOCKED",
        "CALLSCREEN_NUMBER": "+33123456789",
        "CALLSCREEN_LIST": "L" * 300,
        "CALLSCREEN_MATCH": "+33*",
        "CALLSCREEN_REASON": "é" * 2000,
    }
    command = mset_command(variables)
    assert len(command) <= MAX_COMMAND_BYTES
    parsed = mset_variables(command)
    assert parsed["CALLSCREEN_LIST"] == "L" * 300
    assert parsed["CALLSCREEN_MATCH"] == "+33*"
    assert parsed["CALLSCREEN_NUMBER"] == "+33123456789"
    assert 0 < len(parsed["CALLSCREEN_REASON"]) < 2000
    assert set(parsed["CALLSCREEN_REASON"]) == {"é"}


def test_cutting_never_splits_an_escape() -> None:
    for char in ['"', "\\", ",", "(", "é", "€", "😀"]:
        for extra in range(8):
            variables = {"CALLSCREEN_RESULT": "ALLOWED", "CALLSCREEN_REASON": char * 3000}
            variables["CALLSCREEN_LIST"] = "x" * extra
            command = mset_command(variables)
            assert len(command) <= MAX_COMMAND_BYTES
            assert len(_asterisk_lines(command)) == 1
            parsed = mset_variables(command)
            assert set(parsed["CALLSCREEN_REASON"]) == {char}
            assert parsed["CALLSCREEN_LIST"] == "x" * extra
            assert parsed["CALLSCREEN_RESULT"] == "ALLOWED"


def test_a_too_long_line_would_be_read_as_two_commands() -> None:
    # Why the limit matters: Asterisk's fgets cuts at 2,047 bytes.
    line = b"EXEC MSet " + b"x" * 2100 + b"\n"
    assert len(_asterisk_lines(line)) == 2
    assert len(_asterisk_lines(b"y" * (MAX_COMMAND_BYTES - 1) + b"\n")) == 1


hostile = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list('\\",()[]|$=\n\r\0\t ')),
    max_size=500,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries(dict.fromkeys(VARIABLES, hostile)))
def test_mset_round_trips_through_both_asterisk_parsers(values: dict[str, str]) -> None:
    command = mset_command(values)
    assert len(command) <= MAX_COMMAND_BYTES
    assert command.count(b"\n") == 1 and command.endswith(b"\n")
    assert b"\r" not in command and b"\0" not in command
    assert len(_asterisk_lines(command)) == 1
    parsed = mset_variables(command)
    assert list(parsed) == list(values)
    clean = {k: sanitize_value(v) for k, v in values.items()}
    cut = False
    for name in ("CALLSCREEN_REASON", "CALLSCREEN_LIST", "CALLSCREEN_MATCH"):
        assert clean[name].startswith(parsed[name])
        cut = cut or parsed[name] != clean[name]
    emptied = all(
        parsed[n] == "" for n in ("CALLSCREEN_REASON", "CALLSCREEN_LIST", "CALLSCREEN_MATCH")
    )
    for name in ("CALLSCREEN_RESULT", "CALLSCREEN_LABEL", "CALLSCREEN_NUMBER"):
        # kept whole unless the free-text values were all cut away first
        assert parsed[name] == clean[name] or (emptied and clean[name].startswith(parsed[name]))
    if not cut:
        assert parsed == clean


@settings(max_examples=200)
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=500, max_size=500),
    reason=hostile,
)
def test_long_list_names_keep_result_label_and_number(name: str, reason: str) -> None:
    decision = Decision(
        Result.LABELED, number="+12025550100", list_name=name, match="+1202*", reason=reason
    )
    parsed = mset_variables(mset_command(decision.variables()))
    expected = decision.variables()
    for key in ("CALLSCREEN_RESULT", "CALLSCREEN_LABEL", "CALLSCREEN_NUMBER"):
        assert parsed[key] == expected[key]
    assert sanitize_value(name).startswith(parsed["CALLSCREEN_LIST"])
    assert sanitize_value(reason).startswith(parsed["CALLSCREEN_REASON"])
    assert parsed["CALLSCREEN_MATCH"] == "+1202*"
    if parsed["CALLSCREEN_LIST"] != sanitize_value(name):
        assert parsed["CALLSCREEN_REASON"] == ""  # the reason goes first


# ----------------------------------------------------------------------- requests


def env_with(args: tuple[str, ...]) -> bytes:
    return build_env(args=args, callerid="+33111111111", extension="0612345678")


def test_screen_request_from_args() -> None:
    env = derive_env(env_lines(env_with(("Inbound ", " +33999 ", " spring "))))
    request = screen_request(env)
    assert request.direction is Direction.INBOUND
    assert request.number == "+33999"
    assert request.campaign == "spring"
    assert request.uniqueid == "1700000000.1"
    assert request.callerid_name == "Alice"


def test_screen_request_number_defaults() -> None:
    inbound = screen_request(derive_env(env_lines(env_with(("inbound",)))))
    assert inbound.number == "+33111111111" and inbound.campaign == ""
    outbound = screen_request(derive_env(env_lines(env_with(("outbound", "", "c")))))
    assert outbound.number == "0612345678" and outbound.campaign == "c"


@pytest.mark.parametrize("args", [(), ("both",), ("in",), ("",)])
def test_screen_request_needs_a_direction(args: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput, match="inbound"):
        screen_request(derive_env(env_lines(env_with(args))))


def test_printable() -> None:
    assert printable("a\nb\x00c") == "a b c"
    assert printable("x" * 100, 10) == "x" * 9 + "…"
    assert sanitize_value("a\ud800b") == "a\ufffdb"


def test_a_call_keeps_a_valid_campaign_and_marks_any_other_invalid() -> None:
    def campaign(value: str) -> str:
        env = AgiEnv(network_script="screen", args=("inbound", "+33123456789", value))
        return screen_request(env).campaign

    assert campaign(" spring ") == "spring"
    assert campaign("") == ""
    assert campaign("C" + "x" * 63) == "C" + "x" * 63
    # 4,000 distinct 200-character campaigns are one campaign to the log and counters
    assert {campaign(f"{i:04d}" + "y" * 196) for i in range(4000)} == {"~invalid"}
    assert campaign("spring sale") == campaign("x" * 65) == "~invalid"


# ------------------------------------------------ the answer's dialplan functions


def _request(name: str, number: str = "+33123456789") -> ScreenRequest:
    return ScreenRequest(number=number, direction=Direction.INBOUND, callerid_name=name)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=300),
    list_name=st.text(min_size=1, max_size=64),
    reason=st.text(max_size=400),
)
def test_labeled_answer_sets_cdr_and_name_exactly(name: str, list_name: str, reason: str) -> None:
    """Names and list names carrying quotes, backslashes, commas, unbalanced ( or [
    reach CDR(userfield) and CALLERID(name) as themselves (sanitized), and no other
    variable is set or shifted: MSet parses the data a second time after AGI."""
    decision = Decision(Result.LABELED, number="+33123456789", list_name=list_name, reason=reason)
    request = _request(name)
    variables = decision.answer_variables(request)
    line = mset_command(variables)
    assert len(line) <= MAX_COMMAND_BYTES
    parsed = mset_variables(line)
    assert list(parsed) == [*VARIABLES, "CDR(userfield)", "CALLERID(name)"]
    mark = parsed["CDR(userfield)"]
    assert len(mark.encode()) <= 255
    assert ("callscreen:LABELED:" + sanitize_value(list_name)).startswith(mark)
    shown = sanitize_value(name).strip()
    if shown.lower() in ("", "unknown"):
        shown = "+33123456789"
    assert ("Blacklisted: " + shown).startswith(parsed["CALLERID(name)"])
    assert parsed["CALLSCREEN_RESULT"] == "LABELED"
    assert parsed["CALLSCREEN_NUMBER"] == "+33123456789"


def test_cdr_mark_forms() -> None:
    """``callscreen:RESULT:DETAIL``: the list; for fail-policy answers a fixed cause,
    never the reason (which may name the Redis address); nothing for ALLOWED."""
    failed = Decision(
        Result.UNSCREENED, reason="screening unavailable: Redis 10.0.0.7:6379 refused", failed=True
    )
    assert failed.cdr_mark == "callscreen:UNSCREENED:screening unavailable"
    closed = Decision(Result.BLOCKED, reason="screening unavailable: deadline", failed=True)
    assert closed.cdr_mark == "callscreen:BLOCKED:screening unavailable"
    assert Decision(Result.BLOCKED, list_name="dnc").cdr_mark == "callscreen:BLOCKED:dnc"
    assert bad_request_decision("bad request: x").cdr_mark == "callscreen:UNSCREENED:bad request"
    anonymous = Decision(Result.LABELED, reason="anonymous caller (anonymous policy: label)")
    assert anonymous.cdr_mark == "callscreen:LABELED:anonymous caller (anonymous policy: label)"
    assert Decision(Result.ALLOWED, list_name="vip").cdr_mark == ""
    long = Decision(Result.BLOCKED, list_name="é" * 200).cdr_mark
    assert len(long.encode()) <= 255 and long.endswith("é")


def test_caller_name_only_for_labeled_inbound() -> None:
    labeled = Decision(Result.LABELED, list_name="suspects")
    outbound = ScreenRequest(number="+33123456789", direction=Direction.OUTBOUND)
    assert "CALLERID(name)" not in labeled.answer_variables(outbound)
    assert "CALLERID(name)" not in labeled.answer_variables(None)
    assert "CALLERID(name)" not in Decision(Result.BLOCKED).answer_variables(_request("Eve"))
    assert labeled.answer_variables(_request(" Eve "))["CALLERID(name)"] == "Blacklisted: Eve"
    # Asterisk writes "unknown" for a channel without a name: the number stands in
    assert labeled.answer_variables(_request("unknown"))["CALLERID(name)"] == (
        "Blacklisted: +33123456789"
    )
    assert Decision(Result.ALLOWED).answer_variables(_request("Eve")) == (
        Decision(Result.ALLOWED).variables()
    )


@pytest.mark.parametrize("name", ["CDR(userfield)", "CALLERID(name)", "CALLSCREEN_X"])
def test_mset_accepts_variables_and_plain_functions(name: str) -> None:
    assert mset_variables(mset_command({name: "a,b"})) == {name: "a,b"}


@pytest.mark.parametrize("name", ["CDR(a,b)", "CALLERID(name", "X Y", "SHELL(rm -rf)", ""])
def test_mset_refuses_other_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a dialplan variable name"):
        mset_command({name: "x"})


def test_one_reply_check_for_classic_and_fastagi() -> None:
    from callscreen.callpath.protocol import reply_outcome

    ok = Reply(200, "1", lines=("200 result=1",))
    assert reply_outcome(ok, hungup=False, corrected=False) == ("ok", "")
    assert reply_outcome(ok, hungup=False, corrected=True) == ("corrected", "")
    assert reply_outcome(ok, hungup=True, corrected=False) == ("hangup", "")
    gone = Reply(511, lines=("511 Command Not Permitted on a dead channel",))
    assert reply_outcome(gone, hungup=False, corrected=False)[0] == "hangup"
    refused = Reply(
        510, data="Invalid or unknown command", lines=("510 Invalid or unknown command",)
    )
    assert reply_outcome(refused, hungup=False, corrected=False) == (
        "reply 510",
        "Asterisk refused the answer: 510 Invalid or unknown command",
    )
