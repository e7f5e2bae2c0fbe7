"""``callscreen users add | passwd | disable | enable | ls``: the web console's users."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json
from callscreen.core.errors import InvalidInput
from callscreen.services import users

users_app = typer.Typer(
    help="Users of the web console (served by `callscreen api` under /).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(users_app, name="users")

ROLES = ", ".join(users.Role)

StdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input (one line)."),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InvalidInput("no password given")
    return password


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user name (lower case, digits, . _ -).")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {ROLES}.")],
    password_stdin: StdinOption = False,
    by: ByOption = "",
) -> None:
    """Make a console user (the password is asked for twice, or read with --password-stdin)."""
    parsed = users.parse_role(role)
    users.check_user_name(name)
    password = _password(password_stdin)
    user = call(ctx, lambda s: users.add(s.ctx, name, parsed, password), by=by)
    console.print(f"created user {user.name} ({user.role.value})")


@users_app.command("passwd")
def passwd(
    ctx: typer.Context, name: str, password_stdin: StdinOption = False, by: ByOption = ""
) -> None:
    """Set a user's password; its console sessions end."""
    call(ctx, lambda s: users.get(s.ctx, name))
    password = _password(password_stdin)
    call(ctx, lambda s: users.set_password(s.ctx, name, password), by=by)
    console.print(f"password of {name} changed; its sessions ended")


@users_app.command("disable")
def disable(ctx: typer.Context, name: str, by: ByOption = "") -> None:
    """Disable a user: its sessions end at once and it cannot sign in."""
    call(ctx, lambda s: users.set_disabled(s.ctx, name, True), by=by)
    console.print(f"disabled user {name}")


@users_app.command("enable")
def enable(ctx: typer.Context, name: str, by: ByOption = "") -> None:
    """Let a disabled user sign in again."""
    call(ctx, lambda s: users.set_disabled(s.ctx, name, False), by=by)
    console.print(f"enabled user {name}")


@users_app.command("ls")
def list_users(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Every console user."""
    found = call(ctx, lambda s: users.list_users(s.ctx))
    if json_out:
        emit_json([u.to_json() for u in found])
        return
    if not found:
        console.print("no users (make one: callscreen users add NAME --role admin)")
    for user in found:
        state = " (disabled)" if user.disabled else ""
        console.print(
            f"{user.name}: {user.role.value}{state}; created {user.to_json()['created_at']} "
            f"by {user.created_by}"
        )
