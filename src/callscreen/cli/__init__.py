"""The ``callscreen`` command line: a thin skin over the services (:mod:`callscreen.services`).

Each command parses its arguments, calls the services through
:func:`callscreen.cli.common.call` (one ``asyncio.run`` per command) and renders the
result (text, or JSON with ``--json``). No Redis call is made here. One
:class:`~callscreen.core.config.Settings` is built per invocation, from ``CALLSCREEN_*``
variables and ``.env``, overridden by the global options.

Exit codes: :mod:`callscreen.cli.exits` (one line on stderr, never a traceback).

A front end: may import every other package; nothing imports it.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import pydantic
import typer
from typer.core import TyperGroup

from callscreen.cli.common import State
from callscreen.cli.exits import EXIT_FAILED, EXIT_USAGE, exit_code
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError, InvalidInput

EPILOG = (
    "Exit codes: 0 ok; 1 failed; 2 usage error; 3 invalid input; 4 not found; "
    "5 refused; 6 conflict; 7 Redis error; 8 AMI unavailable; 9 run callscreen migrate; "
    "75 Redis unavailable, retry later (one line on stderr). Settings come from "
    "CALLSCREEN_* variables and .env; --redis-url and --region override them."
)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` on stderr; return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class _Root(TyperGroup):
    """The root group: every callscreen error of any command becomes one line on
    stderr and its exit code (:data:`~callscreen.cli.exits.EXIT_CODES`)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CallscreenError as exc:
            raise fail(str(exc), exit_code(exc)) from None


app = typer.Typer(
    name="callscreen",
    cls=_Root,
    help="Call screening for Asterisk: lists of numbers and prefixes, checked on every call.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL: redis://, rediss://, unix:// [env CALLSCREEN_REDIS_URL].",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="Default region for national numbers, e.g. FR [env CALLSCREEN_DEFAULT_REGION].",
        ),
    ] = None,
) -> None:
    """Call screening for Asterisk: lists of numbers and prefixes, checked on every call."""
    overrides: dict[str, Any] = {}
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    if region is not None:
        overrides["default_region"] = region
    try:
        settings = Settings(**overrides)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"invalid settings: {problems}") from None
    _quiet_library_logs()
    ctx.obj = State(settings, ctx.invoked_subcommand or "")


def _quiet_library_logs() -> None:
    """Without logging set up, Python prints library warnings (a lost Redis
    connection) on stderr; the error line says it already. ``serve`` sets up logging,
    and its records still reach the root handlers."""
    logger = logging.getLogger("callscreen")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def non_utf8_argument(argv: list[str]) -> int | None:
    """The position (1-based) of the first argument that is not valid UTF-8 (Python
    keeps its bytes as lone surrogates), or None."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position
    return None


def main() -> None:
    """The ``callscreen`` console script."""
    bad = non_utf8_argument(sys.argv[1:])
    if bad is not None:
        typer.echo(
            f"error: argument {bad} is not valid UTF-8 text; callscreen takes names, "
            "numbers and reasons in UTF-8 (check the terminal's or the script's encoding)",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    try:
        app()
    except Exception as exc:  # a bug: still one line, never a traceback
        typer.echo(f"error: internal error ({type(exc).__name__}): {exc}", err=True)
        sys.exit(EXIT_FAILED)


# the commands register themselves on ``app``
from callscreen.cli import apikeys as _apikeys  # noqa: E402, F401
from callscreen.cli import campaigns as _campaigns  # noqa: E402, F401
from callscreen.cli import check as _check  # noqa: E402, F401
from callscreen.cli import entries as _entries  # noqa: E402, F401
from callscreen.cli import history as _history  # noqa: E402, F401
from callscreen.cli import io as _io  # noqa: E402, F401
from callscreen.cli import lists as _lists  # noqa: E402, F401
from callscreen.cli import number as _number  # noqa: E402, F401
from callscreen.cli import ops as _ops  # noqa: E402, F401
from callscreen.cli import registry as _registry  # noqa: E402, F401
from callscreen.cli import reports as _reports  # noqa: E402, F401
from callscreen.cli import users as _users  # noqa: E402, F401
