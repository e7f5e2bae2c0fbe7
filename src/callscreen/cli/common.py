"""What every command shares: the per-invocation state, common options, output.

Commands get the :class:`~callscreen.services.admin.Admin` service from the context
(:func:`admin`), print JSON with :func:`emit_json` or text with :data:`console`, and
let :class:`~callscreen.core.errors.CallscreenError` propagate: the root group turns it
into one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console

from callscreen.core.config import Settings
from callscreen.services.admin import Admin

# markup off: list names, reasons and entries are shown as they are, never as rich markup
# not on a terminal (a pipe, a file, a test), tables take the width they need
console = Console(
    markup=False, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ByOption = Annotated[
    str, typer.Option("--by", help="Who makes the change, for the audit trail [default: OS user].")
]


@dataclass
class State:
    """Built once per invocation by the root callback: the settings, and the service
    (connected on first use)."""

    settings: Settings
    _admin: Admin | None = None

    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.settings)
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


def state(ctx: typer.Context) -> State:
    """The invocation's state (the root context's ``obj``)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("callscreen CLI state missing")
    return obj


def admin(ctx: typer.Context) -> Admin:
    """The admin service for this invocation."""
    return state(ctx).admin()


def settings(ctx: typer.Context) -> Settings:
    return state(ctx).settings


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def interactive() -> bool:
    """Whether a person can answer a question (stdin and stdout are terminals)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def outcome_line(outcomes: dict[str, int]) -> str:
    """``2 added, 1 updated`` (``nothing to do`` when empty)."""
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "nothing to do"
