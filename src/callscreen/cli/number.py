"""``callscreen number``: everything callscreen knows about one number, on one page."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from callscreen.cli import app
from callscreen.cli.common import JsonOption, call, console, emit_json
from callscreen.services.numbers import DEFAULT_ATTEMPTS, MAX_ATTEMPTS, NumberCard


@app.command("number")
def number(
    ctx: typer.Context,
    raw: Annotated[
        str,
        typer.Argument(
            help="The number, as you would type it (national, E.164, tel: URI).",
            metavar="NUMBER",
            show_default=False,
        ),
    ],
    campaign: Annotated[
        str | None,
        typer.Option(
            help="Only this campaign's decisions and attempts (default: every campaign "
            "whose lists hold the number, and every attempt)."
        ),
    ] = None,
    attempts: Annotated[
        int,
        typer.Option("--attempts", "-n", min=0, max=MAX_ATTEMPTS, help="Last attempts shown."),
    ] = DEFAULT_ATTEMPTS,
    json_out: JsonOption = False,
) -> None:
    """Every list that holds the number (exactly or by a prefix, any status, deleted
    lists from their trail) with each entry's reason and history, the decision it gets
    inbound and outbound (globally and per campaign), registry listings, its first
    contact and its last attempts with totals: the answer to a data-subject request.
    The JSON shape is documented in docs/number.md."""
    card = call(ctx, lambda s: s.numbers.card(raw, campaign=campaign, attempts=attempts))
    if json_out:
        emit_json(card.to_json())
        return
    _render(card)


def _render(card: NumberCard) -> None:
    # the console prints text as it is (no markup): names and reasons need no escaping
    console.print(card.number)
    for d in card.decisions:
        c = d.check
        where = f"{d.direction}" + (f", campaign {d.campaign}" if d.campaign else "")
        line = f"  {where}: {c.result}"
        if c.list_name:
            line += f" by list {c.list_name}, entry {c.match}"
        if c.reason:
            line += f" ({c.reason})"
        console.print(line)
    console.print()
    owned = [x for x in card.lists if not x.registry or x.entries]
    if not owned:
        console.print("no list holds this number or a prefix of it")
    for item in owned:
        scope = item.scope + (f" ({', '.join(item.campaigns)})" if item.campaigns else "")
        console.print(
            (f"list {item.list_name}: {item.action}, {item.direction}, {scope}"),
            highlight=False,
        )
        for entry in item.entries:
            head = f"  {entry.entry} {entry.status}"
            if not entry.enforced:
                head += " (not enforced)"
            if entry.reason:
                head += f": {entry.reason}"
            console.print(head, highlight=False)
            if entry.external_id or entry.expires:
                extra = []
                if entry.external_id:
                    extra.append(f"external id {entry.external_id}")
                if entry.expires:
                    extra.append(f"expires {entry.expires}")
                console.print("    " + ", ".join(extra), highlight=False)
            for h in entry.history:
                why = f": {h.reason}" if h.reason else ""
                by = f" by {h.by}" if h.by else ""
                batch = f" (batch {h.batch})" if h.batch is not None else ""
                first = ", first enforced" if h.first_enforced else ""
                console.print(
                    f"    {h.at or '?'} {h.transition.value}{by}{batch}{first}{why}",
                    highlight=False,
                )
    for item in card.lists:
        if item.registry and not item.entries:
            console.print(f"registry {item.list_name} ({item.registry}): not listed")
    for gone in card.deleted_lists:
        t = gone.tombstone
        console.print(
            (f"deleted list {t.list_name} (id {t.list_id}), deleted by {t.by}: {t.reason}"),
            highlight=False,
        )
        for ev in gone.events:
            console.print(f"    {ev.id} {ev.op} by {ev.by}: {ev.reason}", highlight=False)
    log = card.log
    console.print()
    console.print(f"first contact: {log.first_contact or 'never'}")
    totals = ", ".join(f"{k} {v}" for k, v in log.totals.items()) or "none"
    console.print(f"attempts kept in the log: {log.total} ({totals})")
    if log.attempts:
        table = RichTable(box=None, pad_edge=False)
        for column in ("time", "direction", "result", "list", "campaign", "caller name"):
            table.add_column(column)
        for rec in log.attempts:
            table.add_row(
                *(
                    str(v)
                    for v in (
                        rec.to_json()["time"],
                        rec.direction.value,
                        rec.outcome.value,
                        rec.list_name,
                        rec.campaign,
                        rec.callerid_name,
                    )
                )
            )
        console.print(table)
