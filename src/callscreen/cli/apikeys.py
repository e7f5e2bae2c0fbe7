"""``callscreen api`` (the HTTP API process) and ``callscreen apikeys create | ls | revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from callscreen.cli import app
from callscreen.cli.common import ByOption, JsonOption, call, console, emit_json, settings
from callscreen.services import apikeys

apikeys_app = typer.Typer(
    help="API keys of the HTTP API: made (shown once), listed, revoked.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(apikeys_app, name="apikeys")

SCOPES = ", ".join(s.value for s in apikeys.KeyScope)


@app.command("api")
def api(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address [env CALLSCREEN_API_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Listen port [env CALLSCREEN_API_PORT].")
    ] = None,
) -> None:
    """Run the HTTP API (default 127.0.0.1:8573) until stopped (Ctrl-C, SIGTERM).
    Needs the api extra: pip install 'callscreen[api]'."""
    try:
        from callscreen.api.server import run
    except ImportError as exc:
        raise typer.BadParameter(
            f"the HTTP API needs the api extra (pip install 'callscreen[api]'): {exc}"
        ) from None
    run(settings(ctx), host=host, port=port)


@apikeys_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The key's name (letters, digits, . _ -).")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"A scope (repeat, or comma-separate): {SCOPES}."),
    ],
    lists: Annotated[
        str, typer.Option("--lists", help="Restrict the key to these lists (comma-separated).")
    ] = "",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="A duration (90d) or a date (2027-01-31); default never."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the key alone (KEY=$(...)).")
    ] = False,
    by: ByOption = "",
    json_out: JsonOption = False,
) -> None:
    """Make an API key and print it once: only its hash is kept."""
    names = [part.strip() for part in lists.split(",") if part.strip()]
    key, secret = call(
        ctx, lambda s: s.apikeys.create(name, scope, lists=names, expires=expires), by=by
    )
    if quiet:
        typer.echo(secret)
    elif json_out:
        emit_json({**key.to_json(), "key": secret})
    else:
        console.print(f"created API key {key.name}: {' '.join(key.scopes)}")
        if key.list_names:
            console.print(f"  restricted to lists: {', '.join(key.list_names)}")
        if key.expires_at is not None:
            console.print(f"  expires {key.to_json()['expires_at']}")
        console.print("the key (shown once, keep it now):")
        typer.echo(secret)


@apikeys_app.command("ls")
def list_keys(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Every API key (never the keys themselves)."""
    keys = call(ctx, lambda s: s.apikeys.list_keys())
    if json_out:
        emit_json([key.to_json() for key in keys])
        return
    if not keys:
        console.print("no API keys")
    for key in keys:
        data = key.to_json()
        lists = f" lists={','.join(key.list_names)}" if key.list_ids else ""
        console.print(
            f"{key.name}: {' '.join(key.scopes)}{lists} created {data['created_at']} by "
            f"{key.created_by}; expires {data['expires_at'] or 'never'}; last used "
            f"{data['last_used_at'] or 'never'}"
        )


@apikeys_app.command("revoke")
def revoke(ctx: typer.Context, name: str, by: ByOption = "") -> None:
    """Revoke a key: every API process refuses it from its next request."""
    call(ctx, lambda s: s.apikeys.revoke(name), by=by)
    console.print(f"revoked API key {name}")
