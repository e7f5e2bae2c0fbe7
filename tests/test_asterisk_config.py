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
    text = DIALPLAN.read_text()
    assert text.count(match["old"]) == 2
    classic = text.replace(match["old"], match["new"])
    assert "AGI(callscreen-agi,inbound,${number}," in classic
    assert "AGI(callscreen-agi,outbound,${number}," in classic
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


def test_settings_get_defaults_only_when_empty(dialplan: dict[str, list[Step]]) -> None:
    defaults = {}
    for step in dialplan["callscreen-setup"]:
        match = re.fullmatch(r"\$\[\$\{LEN\(\$\{(\w+)\}\)\} = 0\]\?Set\((\w+)=(.*)\)", step.data)
        if step.app == "ExecIf" and match:
            assert match[1] == match[2]
            defaults[match[1]] = match[3]
    assert defaults["CALLSCREEN_PORT"] == "4573"
    assert defaults["CALLSCREEN_URL"] == "agi://${CALLSCREEN_HOST}:${CALLSCREEN_PORT}"
    assert defaults["CALLSCREEN_BLOCK_ACTION"] == "hangup"
    assert defaults["CALLSCREEN_ON_FAILURE"] == "continue"
    assert {"CALLSCREEN_HOST", "CALLSCREEN_ANNOUNCEMENT", "CALLSCREEN_EMERGENCY"} <= set(defaults)
    # the answer of an earlier screening is cleared, so "no answer" can be seen
    assert "MSet(CALLSCREEN_RESULT=,CALLSCREEN_LABEL=," in " ".join(
        str(step) for step in dialplan["callscreen-setup"]
    )


@pytest.mark.parametrize(
    ("context", "direction", "source"),
    [
        ("callscreen-inbound", "inbound", "${CALLERID(num)}"),
        ("callscreen-outbound", "outbound", "${ARG1}"),
    ],
)
def test_screening_passes_the_number_explicitly(
    dialplan: dict[str, list[Step]], context: str, direction: str, source: str
) -> None:
    steps = dialplan[context]
    agi = [step for step in steps if step.app == "AGI"]
    assert [step.data.split(",")[:3] for step in agi] == [
        ["${CALLSCREEN_URL}/screen", direction, "${number}"]
    ]
    assert f"Set(LOCAL(number)=${{FILTER(0-9A-Za-z+*#@.:,{source})}})" in map(str, steps)


def test_every_agi_call_has_a_number_argument(dialplan: dict[str, list[Step]]) -> None:
    """Inside a Gosub the AGI extension is ``s``: an empty NUMBER would screen "s"."""
    calls = [step for steps in dialplan.values() for step in steps if step.app == "AGI"]
    assert len(calls) == 3
    for step in calls:
        args = step.data.split(",")
        assert len(args) == 4 and args[2] == "${number}", step


_ANNOUNCE_AND_HANG_UP = [
    "Progress()",
    "Playback(${CALLSCREEN_ANNOUNCEMENT},noanswer)",
    "Hangup(21)",
]


@pytest.mark.parametrize(
    ("context", "path"),
    [
        (
            "callscreen-inbound",
            [
                "Set(CDR(userfield)=callscreen:BLOCKED:${CALLSCREEN_LIST})",
                'GotoIf($["${CALLSCREEN_BLOCK_ACTION}" = "busy"]?busy)',
                *_ANNOUNCE_AND_HANG_UP,
            ],
        ),
        (
            "callscreen-outbound",
            ["Set(CDR(userfield)=callscreen:BLOCKED:${CALLSCREEN_LIST})", *_ANNOUNCE_AND_HANG_UP],
        ),
    ],
)
def test_blocked_calls_are_hung_up_with_cause_21(
    dialplan: dict[str, list[Step]], context: str, path: list[str]
) -> None:
    steps = dialplan[context]
    assert 'GotoIf($["${CALLSCREEN_RESULT}" = "BLOCKED"]?blocked)' in map(str, steps)
    assert path_from(steps, "blocked") == path


def test_busy_is_the_other_inbound_block_action(dialplan: dict[str, list[Step]]) -> None:
    assert path_from(dialplan["callscreen-inbound"], "busy") == ["Busy(10)", "Hangup(17)"]


@pytest.mark.parametrize("context", ["callscreen-inbound", "callscreen-outbound"])
def test_labeled_calls_are_marked_in_the_cdr(dialplan: dict[str, list[Step]], context: str) -> None:
    steps = dialplan[context]
    assert 'GotoIf($["${CALLSCREEN_RESULT}" = "LABELED"]?labeled)' in map(str, steps)
    assert path_from(steps, "labeled")[0] == (
        "Set(CDR(userfield)=callscreen:LABELED:${CALLSCREEN_LIST})"
    )


def test_labeled_inbound_caller_name_is_prefixed(dialplan: dict[str, list[Step]]) -> None:
    assert "Set(CALLERID(name)=Blacklisted: ${CALLERID(name)})" in path_from(
        dialplan["callscreen-inbound"], "labeled"
    )


@pytest.mark.parametrize(
    "context", ["callscreen-inbound", "callscreen-outbound", "callscreen-optout"]
)
def test_gateway_failure_is_handled_right_after_the_agi_call(
    dialplan: dict[str, list[Step]], context: str
) -> None:
    """AGISTATUS=FAILURE (gateway unreachable), NOTFOUND (classic program missing) or an
    empty answer takes the ``failed`` branch at once."""
    steps = dialplan[context]
    after_agi = steps[next(i for i, step in enumerate(steps) if step.app == "AGI") + 1]
    assert after_agi.app == "GotoIf"
    assert after_agi.data.startswith('$["${AGISTATUS}" != "SUCCESS" | ')
    assert after_agi.data.endswith("?failed")
    assert any(step.label == "failed" for step in steps)


@pytest.mark.parametrize("context", ["callscreen-inbound", "callscreen-outbound"])
def test_gateway_failure_follows_the_configured_policy(
    dialplan: dict[str, list[Step]], context: str
) -> None:
    path = path_from(dialplan[context], "failed")
    assert path[1] == "MSet(CALLSCREEN_RESULT=UNSCREENED,CALLSCREEN_REASON=gateway unavailable)"
    assert path[2] == 'GotoIf($["${CALLSCREEN_ON_FAILURE}" != "block"]?unscreened)'
    assert "Set(CDR(userfield)=callscreen:BLOCKED:gateway unavailable)" in path
    assert path[-1] == "Goto(reject)"
    assert path_from(dialplan[context], "unscreened")[0] == (
        "Set(CDR(userfield)=callscreen:UNSCREENED:${CALLSCREEN_REASON})"
    )


def test_examples_add_one_gosub_line(dialplan: dict[str, list[Step]]) -> None:
    inbound = [str(step) for step in dialplan["callscreen-example-inbound"]]
    outbound = [str(step) for step in dialplan["callscreen-example-outbound"]]
    assert "Gosub(callscreen-inbound,s,1(mycampaign,101))" in inbound
    assert outbound[0] == "Gosub(callscreen-outbound,s,1(${EXTEN},mycampaign))"
    assert outbound[1].startswith("Dial(")
