"""The shipped Asterisk configuration: asterisklint finds nothing wrong with it, and the
dialplan does what the gateway relies on (explicit numbers, blocked calls hung up,
labels in the CDR, the gateway being down handled).

asterisklint runs in a subprocess: it is old code, and whatever it warns about or
leaves behind at import stays out of this strict pytest process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ASTERISK_DIR = Path(__file__).resolve().parent.parent / "asterisk"
DIALPLAN = ASTERISK_DIR / "extensions_callscreen.conf"
CLASSIC_SAMPLE = ASTERISK_DIR / "callscreen-classic.conf.sample"

# The console script installed next to this interpreter (the venv's bin/).
ASTERISKLINT = Path(sys.executable).with_name("asterisklint")

# asterisklint 0.4.3 knows the applications of Asterisk 13. These ones exist in
# Asterisk 22, the version we target, and are reported missing only because its list
# is old; its "app does not exist" finding is ignored for them and nothing else.
#   MSet: main/pbx_variables.c, a builtin since Asterisk 1.4.
ASTERISK22_APPS_UNKNOWN_TO_LINT = frozenset({"MSet"})

_FINDING = re.compile(r"^(?P<file>.+?):(?P<line>\d+) (?P<code>[EWH]_[A-Z0-9_]+): (?P<message>.*)$")
_APP_MISSING = re.compile(r"^app '(?P<app>[^']+)' does not exist")
_SED = re.compile(r"sed -i 's\|(?P<old>[^|]+)\|(?P<new>[^|]+)\|'")


@dataclass(frozen=True)
class Finding:
    """One line of asterisklint's report (``code`` is ``UNPARSED`` for anything else)."""

    file: str
    line: int
    code: str
    message: str

    @property
    def allowed(self) -> bool:
        """An unknown-application finding for an application Asterisk 22 has."""
        if self.code != "E_APP_MISSING":
            return False
        match = _APP_MISSING.match(self.message)
        return match is not None and match["app"] in ASTERISK22_APPS_UNKNOWN_TO_LINT


def lint(extensions_conf: Path) -> list[Finding]:
    """Every finding of ``asterisklint dialplan-check extensions_conf``."""
    if not ASTERISKLINT.is_file():
        pytest.fail(f"{ASTERISKLINT} not found: install the test extra (pip install -e '.[test]')")
    env = {key: value for key, value in os.environ.items() if key != "ALINT_IGNORE"}
    # asterisklint imports overrides from ~/.asterisklint; a bare HOME has none.
    env["HOME"] = str(extensions_conf.parent)
    proc = subprocess.run(
        [sys.executable, str(ASTERISKLINT), "dialplan-check", str(extensions_conf)],
        cwd=extensions_conf.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    findings = []
    for raw in (proc.stdout + proc.stderr).splitlines():
        if not raw.strip():
            continue
        match = _FINDING.match(raw)
        if match:
            name = Path(match["file"]).name
            findings.append(Finding(name, int(match["line"]), match["code"], match["message"]))
        else:
            findings.append(Finding("", 0, "UNPARSED", raw))
    if proc.returncode != 0 and not findings:
        findings.append(Finding("", 0, "UNPARSED", f"exit status {proc.returncode}"))
    return findings


def host_dialplan(directory: Path, *includes: str) -> Path:
    """An extensions.conf as a site would have it: [general], its own [globals], then
    the ``#include`` lines of docs/asterisk.md (files relative to it)."""
    lines = ["[general]", "static=yes", "writeprotect=no", "", "[globals]"]
    lines += ["CALLSCREEN_HOST=192.0.2.10", "CALLSCREEN_TRUNK_PREFIX=9", ""]
    lines += [f"#include {name}" for name in includes]
    path = directory / "extensions.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def unexpected(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if not finding.allowed]


# --- asterisklint ----------------------------------------------------------------


def test_shipped_files_lint_clean(tmp_path: Path) -> None:
    shutil.copy(DIALPLAN, tmp_path / DIALPLAN.name)
    shutil.copy(CLASSIC_SAMPLE, tmp_path / "callscreen-classic.conf")
    host = host_dialplan(tmp_path, DIALPLAN.name, "callscreen-classic.conf")

    assert unexpected(lint(host)) == []


def test_classic_instructions_give_a_clean_dialplan(tmp_path: Path) -> None:
    """The sed line of the classic sample rewrites both screening lines, and the result
    still lints clean."""
    match = _SED.search(CLASSIC_SAMPLE.read_text())
    assert match, "the classic sample lost its sed line"
    # the sed expression is a basic regex: "(" is literal, "[^,]*" a class
    pattern = re.escape(match["old"]).replace(re.escape("[^,]*"), "[^,]*")
    text = DIALPLAN.read_text()
    classic, count = re.subn(pattern, match["new"], text)
    assert count == 2
    assert "AGI(callscreen-agi,inbound,${FILTER(" in classic
    assert "AGI(callscreen-agi,outbound,${SET(LOCAL(number)=" in classic
    (tmp_path / DIALPLAN.name).write_text(classic)

    assert unexpected(lint(host_dialplan(tmp_path, DIALPLAN.name))) == []


def test_lint_reports_a_broken_dialplan(tmp_path: Path) -> None:
    """The check above can fail: real mistakes in an included file are reported, and
    only the allow-listed applications are let through."""
    (tmp_path / "broken.conf").write_text(
        "[broken]\n"
        "exten => s,1,MSet(A=1,B=2)\n"
        " same => n,Playbak(ss-noservice)\n"
        " same => n,Gosub(callscreen-nowhere,s,1(x))\n"
        " same => n,Set(N=${LEN(${CALLERID(num)})\n"
        " same => n,Hangup(21)\n"
    )
    findings = lint(host_dialplan(tmp_path, "broken.conf"))

    reported = {(f.file, f.line, f.code) for f in unexpected(findings)}
    assert ("broken.conf", 3, "E_APP_MISSING") in reported  # Playbak
    assert ("broken.conf", 4, "E_DP_GOTO_NOCONTEXT") in reported
    assert {line for file, line, _ in reported if file == "broken.conf"} == {3, 4, 5}
    assert [(f.line, f.message) for f in findings if f.allowed] == [
        (2, "app 'MSet' does not exist, dialplan will halt here!")
    ]


def test_a_missing_include_is_a_finding(tmp_path: Path) -> None:
    """A wrong path in the host file is reported, not silently linted as empty."""
    findings = unexpected(lint(host_dialplan(tmp_path, DIALPLAN.name)))

    assert "W_PP_INCLUDE_MISSING" in {f.code for f in findings}


# --- what the dialplan does --------------------------------------------------------

_STEP = re.compile(
    r"^\s*(?:exten\s*=>\s*(?P<exten>[^,]+),|same\s*=>\s*)"
    r"(?P<prio>[^,(]+)(?:\((?P<label>[^)]+)\))?,"
    r"(?P<app>[A-Za-z]+)\((?P<data>.*)\)$"
)


@dataclass(frozen=True)
class Step:
    exten: str
    label: str | None
    app: str
    data: str

    def __str__(self) -> str:
        return f"{self.app}({self.data})"


def parse_dialplan(text: str) -> dict[str, list[Step]]:
    """Context name -> its priorities in file order (enough for this file's syntax)."""
    contexts: dict[str, list[Step]] = {}
    steps: list[Step] = []
    exten = ""
    for raw in text.splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).rstrip()
        if not line.strip():
            continue
        if line.startswith("["):
            steps = contexts.setdefault(line.strip("[]"), [])
            continue
        match = _STEP.match(line)
        if not match:
            assert line.lstrip().startswith("include =>"), f"unparsed line: {raw!r}"
            continue
        exten = match["exten"] or exten
        steps.append(Step(exten, match["label"], match["app"], match["data"]))
    return contexts


@pytest.fixture(scope="module")
def dialplan() -> dict[str, list[Step]]:
    return parse_dialplan(DIALPLAN.read_text())


def path_from(steps: list[Step], label: str) -> list[str]:
    """The steps that run in order from ``label`` when no condition jumps, up to the
    first Return, Hangup or Goto."""
    start = next(i for i, step in enumerate(steps) if step.label == label)
    path = []
    for step in steps[start:]:
        path.append(str(step))
        if step.app in ("Return", "Hangup", "Goto"):
            break
    return path


def test_no_globals_context(dialplan: dict[str, list[Step]]) -> None:
    """An #include'd [globals] would override the site's own settings."""
    assert "globals" not in dialplan
    assert "general" not in dialplan


def agi_step(steps: list[Step]) -> Step:
    (agi,) = [step for step in steps if step.app == "AGI"]
    return agi


def agi_args(step: Step) -> list[str]:
    """The AGI data split at the commas AGI splits on (none inside ``${…}``)."""
    args, depth, current = [], 0, ""
    for char in step.data:
        depth += char == "{"
        depth -= char == "}"
        if char == "," and depth == 0:
            args.append(current)
            current = ""
        else:
            current += char
    return [*args, current]


URL = (
    '${IF($[${LEN(${CALLSCREEN_URL})}]?"${CALLSCREEN_URL}":agi://'
    '${IF($[${LEN(${CALLSCREEN_HOST})}]?"${CALLSCREEN_HOST}":127.0.0.1)}:'
    "${IF($[${LEN(${CALLSCREEN_PORT})}]?${CALLSCREEN_PORT}:4573)})}"
)


@pytest.mark.parametrize(
    ("context", "script"),
    [
        ("callscreen-inbound", "screen"),
        ("callscreen-outbound", "screen"),
        ("callscreen-optout", "optout"),
    ],
)
def test_the_url_defaults_and_the_answer_is_cleared_in_the_agi_line(
    dialplan: dict[str, list[Step]], context: str, script: str
) -> None:
    """CALLSCREEN_URL, else agi://HOST:PORT with their defaults, worked out in the AGI
    line itself (no setup priorities); the earlier answer cleared there too."""
    args = agi_args(agi_step(dialplan[context]))
    assert args[0] == f"{URL}/{script}"
    assert args[-1].endswith("${SET(CALLSCREEN_RESULT=)}")
    assert "callscreen-setup" not in dialplan


@pytest.mark.parametrize(
    ("context", "direction", "number"),
    [
        ("callscreen-inbound", "inbound", "${FILTER(0-9A-Za-z+*#@.:,${CALLERID(num)})}"),
        (
            "callscreen-outbound",
            "outbound",
            "${SET(LOCAL(number)=${FILTER(0-9A-Za-z+*#@.:,${IF($[${LEN(${CALLSCREEN_TRUNK_PREFIX})}"
            ' > 0 & "${ARG1:0:${LEN(${CALLSCREEN_TRUNK_PREFIX})}}" = "${CALLSCREEN_TRUNK_PREFIX}"]'
            '?"${ARG1:${LEN(${CALLSCREEN_TRUNK_PREFIX})}}":${ARG1})})})}',
        ),
    ],
)
def test_screening_passes_the_number_explicitly(
    dialplan: dict[str, list[Step]], context: str, direction: str, number: str
) -> None:
    """Inside a Gosub the AGI extension is ``s``: the number is always an argument,
    filtered so that it cannot add arguments."""
    args = agi_args(agi_step(dialplan[context]))
    assert len(args) == 4
    assert args[1:3] == [direction, number]


@pytest.mark.parametrize("context", ["callscreen-inbound", "callscreen-outbound"])
def test_a_call_that_goes_on_costs_two_priorities(
    dialplan: dict[str, list[Step]], context: str
) -> None:
    """AGI, then one ExecIf that returns: the gateway's MSet carries the CDR mark and
    the labeled caller's name, so nothing else runs for ALLOWED, LABELED or
    UNSCREENED (Goto and Return run inside ExecIf, checked on Asterisk 22)."""
    steps = dialplan[context]
    assert [step.app for step in steps[:2]] == ["AGI", "ExecIf"]
    condition = steps[1].data
    assert condition.startswith(
        '$["${CALLSCREEN_RESULT}" = "BLOCKED" | "${CALLSCREEN_RESULT}" = ""'
    )
    assert condition.endswith("]?Goto(check):Return()")


_HANG_UP = [
    "GotoIf($[${LEN(${CALLSCREEN_ANNOUNCEMENT})} = 0]?hangup)",
    "Progress()",
    "Playback(${CALLSCREEN_ANNOUNCEMENT},noanswer)",
    "Hangup(21)",
]


@pytest.mark.parametrize(
    ("context", "path"),
    [
        (
            "callscreen-inbound",
            ['GotoIf($["${CALLSCREEN_BLOCK_ACTION}" = "busy"]?busy)', *_HANG_UP],
        ),
        ("callscreen-outbound", _HANG_UP),
    ],
)
def test_blocked_calls_are_hung_up_with_cause_21(
    dialplan: dict[str, list[Step]], context: str, path: list[str]
) -> None:
    """No announcement unless one is set (a box without sound files logs no warnings)."""
    steps = dialplan[context]
    assert path_from(steps, "blocked") == path
    assert path_from(steps, "hangup") == ["Hangup(21)"]


def test_busy_is_the_other_inbound_block_action(dialplan: dict[str, list[Step]]) -> None:
    assert path_from(dialplan["callscreen-inbound"], "busy") == ["Busy(10)", "Hangup(17)"]


def test_the_dialplan_no_longer_sets_what_the_gateway_answers(
    dialplan: dict[str, list[Step]],
) -> None:
    """CDR marks and the labeled name come with the gateway's MSet; the dialplan only
    writes its own failure mark."""
    for context in ("callscreen-inbound", "callscreen-outbound"):
        text = " ".join(map(str, dialplan[context]))
        assert "CALLERID(name)=" not in text
        assert "${CALLSCREEN_LIST}" not in text


def test_the_last_caller_is_remembered_only_when_asked(dialplan: dict[str, list[Step]]) -> None:
    steps = dialplan["callscreen-inbound"]
    assert "${LEN(${ARG2})} > 0]?Goto(check)" in steps[1].data
    assert path_from(steps, "pass") == [
        "ExecIf($[${LEN(${ARG2})} > 0]?Set(DB(callscreen/lastcaller/${ARG2})="
        "${FILTER(0-9A-Za-z+*#@.:,${CALLERID(num)})}))",
        "Return()",
    ]


_FAILED = (
    "CALLSCREEN_LABEL=,CALLSCREEN_LIST=,CALLSCREEN_MATCH=,CALLSCREEN_REASON=gateway unavailable,"
    "CALLSCREEN_NUMBER=,CDR(userfield)=callscreen:{0}:gateway unavailable)"
)


@pytest.mark.parametrize("context", ["callscreen-inbound", "callscreen-outbound"])
def test_gateway_failure_follows_the_configured_policy(
    dialplan: dict[str, list[Step]], context: str
) -> None:
    """An empty CALLSCREEN_RESULT after the AGI call (refused, no connection, closed
    without an answer) takes the failure path: the policy decides, the variables
    are all set, and the CDR mark has the gateway's form."""
    steps = dialplan[context]
    check = path_from(steps, "check")
    assert 'GotoIf($["${CALLSCREEN_RESULT}" = ""]?failed)' in check
    failed = " ".join(path_from(steps, "failed"))
    text = " ".join(map(str, steps))
    assert '"${CALLSCREEN_ON_FAILURE}"' in failed
    assert "MSet(CALLSCREEN_RESULT=UNSCREENED," + _FAILED.format("UNSCREENED") in text
    assert "MSet(CALLSCREEN_RESULT=BLOCKED," + _FAILED.format("BLOCKED") in text


def test_emergency_numbers_are_never_blocked_by_the_failure_policy(
    dialplan: dict[str, list[Step]],
) -> None:
    steps = [str(step) for step in dialplan["callscreen-outbound"]]
    assert (
        "Set(LOCAL(emergency)=${IF($[${LEN(${CALLSCREEN_EMERGENCY})} > 0]?${CALLSCREEN_EMERGENCY}"
        ":112&911&999&000&110&119&15&17&18)})"
    ) in steps
    assert "GotoIf($[${LEN(${number})} > 0 & ${FIELDNUM(emergency,&,${number})} > 0]?failopen)" in (
        steps
    )


def test_examples_add_one_gosub_line(dialplan: dict[str, list[Step]]) -> None:
    inbound = [str(step) for step in dialplan["callscreen-example-inbound"]]
    outbound = [str(step) for step in dialplan["callscreen-example-outbound"]]
    assert "Gosub(callscreen-inbound,s,1(mycampaign,101))" in inbound
    assert outbound[0] == "Gosub(callscreen-outbound,s,1(${EXTEN},mycampaign))"
    assert outbound[1].startswith("Dial(")


def test_the_classic_wrapper_runs_the_program_with_the_settings_file(tmp_path: Path) -> None:
    """Asterisk gives an AGI program its own environment, without CALLSCREEN_*: the
    shipped wrapper reads them from a file and hands over arguments and stdin."""
    program = tmp_path / "program"
    program.write_text(
        '#!/bin/sh\necho "url=$CALLSCREEN_REDIS_URL region=$CALLSCREEN_DEFAULT_REGION args=$*"\n'
        "cat\n"
    )
    program.chmod(0o755)
    settings = tmp_path / "callscreen.env"
    settings.write_text(
        "CALLSCREEN_REDIS_URL=redis://10.0.0.7:6379/0\nCALLSCREEN_DEFAULT_REGION=FR\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CALLSCREEN_ENV_FILE": str(settings),
        "CALLSCREEN_AGI_PROGRAM": str(program),
    }
    proc = subprocess.run(
        ["sh", str(ASTERISK_DIR / "callscreen-agi.sh"), "inbound", "+33123456789", "spring"],
        input="agi_request: callscreen-agi\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "url=redis://10.0.0.7:6379/0 region=FR args=inbound +33123456789 spring",
        "agi_request: callscreen-agi",
        "",
    ]
    missing = subprocess.run(
        ["sh", str(ASTERISK_DIR / "callscreen-agi.sh")],
        input="",
        env={**env, "CALLSCREEN_ENV_FILE": str(tmp_path / "none.env")},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert "not readable" in missing.stderr and missing.stdout.startswith("url= region=")
