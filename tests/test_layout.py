"""The package layout's rules, checked: the import contracts of ``pyproject.toml``
(import-linter over the whole import graph), a call path that loads nothing it does
not use (in a fresh interpreter, where ``sys.modules`` tells the truth), and entry
points that still load after the moves."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "callscreen"

#: What the call path must never load: the admin side, the Asterisk side, the gateway,
#: the front ends, and the libraries only they use.
FORBIDDEN_ON_CALL_PATH = (
    "callscreen.services",
    "callscreen.gateway",
    "callscreen.asterisk",
    "callscreen.reports",
    "callscreen.cli",
    "redis",
    "panoramisk",
    "prometheus_client",
    "typer",
    "rich",
)


def _loaded_after(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return set(json.loads(out))


def _forbidden(loaded: set[str]) -> list[str]:
    return sorted(
        name
        for name in loaded
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_ON_CALL_PATH)
    )


@pytest.mark.parametrize(
    "module",
    ["callscreen.callpath.server", "callscreen.callpath.classic", "callscreen.callpath.screener"],
)
def test_the_call_path_loads_nothing_it_does_not_use(module: str) -> None:
    loaded = _loaded_after(module)
    assert module in loaded
    assert _forbidden(loaded) == []


def test_the_forbidden_check_does_catch_the_admin_side() -> None:
    # the same check over a module that legitimately loads the admin side must fire
    loaded = _loaded_after("callscreen.gateway.serve")
    assert "callscreen.services.table" in _forbidden(loaded)
    assert "redis" in _forbidden(loaded)


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_package_says_what_it_holds_and_may_import() -> None:
    packages = [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert {p.name for p in packages} >= {
        "core",
        "schema",
        "callpath",
        "gateway",
        "services",
        "reports",
        "asterisk",
        "cli",
    }
    for package in packages:
        doc = (package / "__init__.py").read_text()
        assert doc.lstrip().startswith('"""'), package.name
        assert "import" in doc.split('"""')[1], f"{package.name}: no import rule stated"


def test_no_module_is_left_at_the_top_but_the_entry_points() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    assert not list(PACKAGE.glob("*.lua")), "Lua scripts live in callscreen/schema"


def test_console_scripts_load() -> None:
    scripts = {
        ep.name: ep
        for ep in metadata.distribution("callscreen").entry_points
        if ep.group == "console_scripts"
    }
    assert set(scripts) == {"callscreen", "callscreen-agi"}
    for ep in scripts.values():
        assert callable(ep.load()), ep.value


def test_the_console_scripts_run_in_a_fresh_process() -> None:
    bindir = Path(sys.executable).parent
    cli = subprocess.run(
        [str(bindir / "callscreen"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0 and "serve" in cli.stdout, cli.stderr
    # the classic entry point with no Asterisk on stdin: a clean refusal, not a traceback
    agi = subprocess.run(
        [str(bindir / "callscreen-agi")],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert agi.returncode == 1
    assert "Traceback" not in agi.stderr


def test_the_deployment_files_name_entry_points_that_exist() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["callscreen"]' in dockerfile
    unit = (ROOT / "deploy" / "callscreen.service").read_text()
    assert "/bin/callscreen serve" in unit
    sample = (ROOT / "asterisk" / "callscreen-classic.conf.sample").read_text()
    assert "AGI(callscreen-agi," in sample
