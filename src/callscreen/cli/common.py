"""What every command shares: the per-invocation state, common options, output, and
:func:`call`, the one place a command reaches the services.

A command parses its arguments, hands :func:`call` one coroutine function over the
:class:`~callscreen.services.facade.Services` (its only event loop: ``asyncio.run``
once per command), and renders what comes back with :func:`emit_json` or
:data:`console`. :class:`~callscreen.core.errors.CallscreenError` propagates: the root
group maps it to an exit code (:mod:`callscreen.cli.exits`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from callscreen.core.config import Settings
from callscreen.services.context import Actor, Context
from callscreen.services.facade import Services
from callscreen.services.views import ChangeResult, ImportResult

T = TypeVar("T")
R = TypeVar("R", ChangeResult, ImportResult)

# markup off: list names, reasons and entries are shown as they are, never as rich markup
# not on a terminal (a pipe, a file, a test), tables take the width they need
console = Console(
    markup=False, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 1000
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ByOption = Annotated[
    str,
    typer.Option(
        "--by",
        help="Who makes the change, for the audit trail [default: OS user]; the OS user "
        "and host are recorded too.",
    ),
]


@dataclass
class State:
    """Built once per invocation by the root callback: the settings and the command's
    name (for messages)."""

    settings: Settings
    command: str = ""


def state(ctx: typer.Context) -> State:
    """The invocation's state (the root context's ``obj``)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("callscreen CLI state missing")
    return obj


def call(
    ctx: typer.Context,
    work: Callable[[Services], Awaitable[T]],
    *,
    by: str = "",
    check_schema: bool = True,
) -> T:
    """Run ``work`` over the services, in this command's one event loop, as the actor
    ``--by`` (the OS user when empty) via this OS user at this host; first refuse to
    run on data of another schema version (but for ``migrate``)."""
    root = state(ctx)
    actor = Actor.cli(by)

    async def main() -> T:
        services = Services(Context.connect(root.settings, actor))
        try:
            if check_schema:
                # "lists create", whatever the program is called
                command = " ".join(ctx.command_path.split()[1:]) or root.command
                await services.schema.check(command)
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(main())


async def settled(services: Services, change: Awaitable[R]) -> R:
    """``change``'s result with its cascade's report once run (by the gateway of this
    host, or here when none runs), as the commands print it."""
    result = await change
    if result.cascade_job is None:
        return result
    report = await services.cascades.wait(result.cascade_job, services.ctx.settings)
    return dataclasses.replace(result, cascade=report)


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
    return (
        ", ".join(f"{n} {_OUTCOME_WORDS.get(o, o)}" for o, n in sorted(outcomes.items()))
        or "nothing to do"
    )


_OUTCOME_WORDS = {"permanent-unchanged": "permanent, unchanged"}
