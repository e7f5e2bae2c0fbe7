"""The CLI's exit-code table covers the whole error tree, and README lists it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from callscreen.cli.exits import EXIT_CODES, EXIT_FAILED, EXIT_USAGE, exit_code
from callscreen.core import errors


def _error_classes() -> set[type[errors.CallscreenError]]:
    return {
        cls
        for _name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.CallscreenError)
    }


def test_every_error_class_has_an_exit_code() -> None:
    missing = sorted(cls.__name__ for cls in _error_classes() - set(EXIT_CODES))
    assert not missing, f"add these errors to callscreen.cli.exits.EXIT_CODES: {missing}"


def test_the_table_names_only_error_classes() -> None:
    assert set(EXIT_CODES) <= _error_classes()


def test_the_classes_users_must_tell_apart_have_codes_of_their_own() -> None:
    codes = [
        exit_code(errors.InvalidInput("x")),
        exit_code(errors.NotFound("x")),
        exit_code(errors.Refused("x")),
        exit_code(errors.Conflict("x")),
        exit_code(errors.StoreUnavailable("x")),
        exit_code(errors.SchemaTooOld("x")),
    ]
    assert len(set(codes)) == len(codes)
    assert not set(codes) & {0, EXIT_FAILED, EXIT_USAGE}
    assert exit_code(errors.InvalidNumber("x")) == exit_code(errors.InvalidInput("x"))
    assert exit_code(errors.NeedsConfirmation("x")) == exit_code(errors.Refused("x"))


def test_readme_lists_every_code() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert listed == set(EXIT_CODES.values()) | {0, EXIT_USAGE}
