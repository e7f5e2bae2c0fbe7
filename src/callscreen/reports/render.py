"""Reports and log records as people and programs read them: terminal tables (rich),
CSV, JSON and a self-contained HTML page with inline SVG charts (no script, no
external resource: it opens from a file or a mail attachment as it is).

Everything here is pure: a :class:`~callscreen.reports.report.Report` in, text out. Names
of lists and campaigns, numbers and reasons come from users and callers: they are
escaped for HTML, kept out of rich markup, and guarded against spreadsheet formula
injection in CSV.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from callscreen.reports.report import OUTCOMES, NumberFate, Report, TopNumber
from callscreen.schema.attempts import AttemptRecord, Outcome

LABELS = {
    Outcome.ALLOWED.value: "allowed",
    Outcome.BLOCKED.value: "blocked",
    Outcome.LABELED.value: "labeled",
    Outcome.UNSCREENED.value: "unscreened",
    Outcome.UNAVAILABLE.value: "blocked (unavailable)",
}
COLORS = {
    Outcome.ALLOWED.value: "#2e7d32",
    Outcome.BLOCKED.value: "#c62828",
    Outcome.LABELED.value: "#f9a825",
    Outcome.UNSCREENED.value: "#9e9e9e",
    Outcome.UNAVAILABLE.value: "#6a1b9a",
}
# the charts stack these, bottom up (the blocked/labeled/allowed, and the two
# failure outcomes so that a bar's height is every call of its day or list)
CHART_ORDER = (
    Outcome.BLOCKED.value,
    Outcome.UNAVAILABLE.value,
    Outcome.LABELED.value,
    Outcome.UNSCREENED.value,
    Outcome.ALLOWED.value,
)
NO_LIST = "(no list)"
NO_CAMPAIGN = "(no campaign)"


def _name(value: str, empty: str) -> str:
    return value if value else empty


def _when(ts: float | None, tz: str = "UTC") -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def _period(report: Report) -> str:
    scope = "all campaigns" if report.campaign is None else _name(report.campaign, NO_CAMPAIGN)
    return f"{report.since} to {report.until} ({report.timezone}), {scope}"


# -- JSON ------------------------------------------------------------------------------------


def report_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)


def attempt_json(record: AttemptRecord) -> str:
    """One record as one JSON line (``callscreen log --json``)."""
    return json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"))


# -- CSV -------------------------------------------------------------------------------------

_E164ISH = re.compile(r"\+[0-9]*\*?")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a value starting with ``= + - @`` (a
    formula to Excel or LibreOffice) gets a leading ``'``, unless it is a number or
    an entry (``+33123456789``, ``+33*``, ``-5``)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _E164ISH.fullmatch(text):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def report_csv(report: Report) -> str:
    """The report as one long table: ``section,key,metric,value``.

    Sections: ``meta``, ``total`` (key: outcome), ``direction``, ``day``, ``list``,
    ``campaign`` (key: the direction, day, list or campaign; metric: the outcome),
    ``top_blocked``, ``top_labeled``, ``lost``, ``never_contacted``, ``unknown``
    (key: the number) and ``summary``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "metric", "value"])

    def row(*cells: object) -> None:
        writer.writerow([csv_cell(cell) for cell in cells])

    row("meta", "since", "", report.since.isoformat())
    row("meta", "until", "", report.until.isoformat())
    row("meta", "timezone", "", report.timezone)
    row("meta", "campaign", "", "" if report.campaign is None else report.campaign)
    row("meta", "all_campaigns", "", "yes" if report.campaign is None else "no")
    row("meta", "generated_at", "", _when(report.generated_at))
    for outcome, n in report.totals.items():
        row("total", outcome, "calls", n)
    for section, table in (
        ("direction", report.by_direction),
        ("day", report.by_day),
        ("list", report.by_list),
        ("campaign", report.by_campaign),
    ):
        for key, counts in table.items():
            for outcome, n in counts.items():
                row(section, key, outcome, n)
    for section, tops in (("top_blocked", report.top_blocked), ("top_labeled", report.top_labeled)):
        for top in tops:
            row(section, top.number, "attempts", top.attempts)
            row(section, top.number, "lists", " ".join(top.lists))
    for section, fates in (
        ("lost", report.lost),
        ("never_contacted", report.never_contacted),
        ("unknown", report.unknown),
    ):
        for fate in fates:
            row(section, fate.number, "attempts", fate.attempts)
            row(section, fate.number, "list", fate.list_name)
            row(section, fate.number, "entry", fate.entry)
            row(section, fate.number, "blacklisted_at", _when(fate.blacklisted_at))
            row(section, fate.number, "first_contact", _when(fate.first_contact))
    for key, value in (
        ("listed_numbers", report.listed_numbers),
        ("lost", report.lost_count),
        ("never_contacted", report.never_contacted_count),
        ("unknown", report.unknown_count),
        ("dropped", report.dropped),
        ("uncounted", report.uncounted),
    ):
        row("summary", key, "numbers" if key not in ("dropped", "uncounted") else "calls", value)
    return out.getvalue()


# -- terminal --------------------------------------------------------------------------------


def _counts_table(title: str, first: str, rows: dict[str, dict[str, int]], empty: str) -> Table:
    table = Table(title=title, title_justify="left", show_footer=False)
    table.add_column(first)
    for outcome in OUTCOMES:
        table.add_column(LABELS[outcome.value], justify="right")
    table.add_column("total", justify="right")
    for key, counts in rows.items():
        cells = [str(counts.get(outcome.value, 0)) for outcome in OUTCOMES]
        table.add_row(Text(_name(key, empty)), *cells, str(sum(counts.values())))
    return table


def _top_table(title: str, rows: Sequence[TopNumber]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("number")
    table.add_column("attempts", justify="right")
    table.add_column("lists")
    for top in rows:
        table.add_row(Text(top.number), str(top.attempts), Text(", ".join(top.lists)))
    return table


def _fate_table(title: str, rows: Sequence[NumberFate], tz: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("number", "attempts", "list", "entry", "blacklisted", "first contact"):
        table.add_column(name, justify="right" if name == "attempts" else "left")
    for fate in rows:
        table.add_row(
            Text(fate.number),
            str(fate.attempts),
            Text(fate.list_name),
            Text(fate.entry),
            _when(fate.blacklisted_at, tz) or "(entry gone)",
            _when(fate.first_contact, tz) or "never",
        )
    return table


def report_renderable(report: Report) -> RenderableType:
    """The report as rich tables, for the terminal."""
    parts: list[RenderableType] = [Text(f"callscreen report: {_period(report)}", style="bold")]
    totals = Table(title="totals", title_justify="left")
    totals.add_column("outcome")
    totals.add_column("calls", justify="right")
    for outcome, n in report.totals.items():
        totals.add_row(LABELS[outcome], str(n))
    totals.add_row(Text("total", style="bold"), Text(str(report.total), style="bold"))
    parts.append(totals)
    parts.append(_counts_table("by direction", "direction", report.by_direction, "-"))
    parts.append(_counts_table("by list", "list", report.by_list, NO_LIST))
    if report.campaign is None:
        parts.append(_counts_table("by campaign", "campaign", report.by_campaign, NO_CAMPAIGN))
    parts.append(_counts_table("by day", "day", report.by_day, "-"))
    parts.append(_top_table("top blocked numbers", report.top_blocked))
    parts.append(_top_table("top labeled numbers", report.top_labeled))
    parts.append(
        Text(
            f"blacklisted numbers called in the period: {report.listed_numbers} — "
            f"lost (contacted before being blacklisted): {report.lost_count}, "
            f"never contacted: {report.never_contacted_count}, unknown: {report.unknown_count}"
        )
    )
    parts.append(_fate_table("lost", report.lost, report.timezone))
    parts.append(_fate_table("never contacted", report.never_contacted, report.timezone))
    if report.unknown:
        parts.append(_fate_table("unknown (entry gone)", report.unknown, report.timezone))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def report_text(report: Report, width: int = 120) -> str:
    """The terminal rendering as plain text (no colour), e.g. for a file or a test."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(report_renderable(report))
    return console.export_text()


def attempts_table(records: Iterable[AttemptRecord], tz: str = "UTC") -> Table:
    """Log records as a rich table (``callscreen log``)."""
    table = Table(show_lines=False)
    for name in (
        "time",
        "dir",
        "number",
        "campaign",
        "result",
        "list",
        "entry",
        "reason",
        "caller name",
        "uniqueid",
        "ms",
    ):
        table.add_column(name, justify="right" if name == "ms" else "left", overflow="fold")
    for rec in records:
        table.add_row(*attempt_cells(rec, tz))
    return table


def attempt_cells(rec: AttemptRecord, tz: str = "UTC") -> list[Text]:
    result = LABELS[rec.outcome.value]
    style = {"allowed": "green", "blocked": "red", "labeled": "yellow"}.get(result, "magenta")
    return [
        Text(_when(rec.time, tz)),
        Text(rec.direction.value[:3]),
        Text(rec.number or rec.dialed or "-"),
        Text(rec.campaign),
        Text(result, style=style),
        Text(rec.list_name),
        Text(rec.match),
        Text(rec.reason),
        Text(rec.callerid_name),
        Text(rec.uniqueid),
        Text(f"{rec.elapsed_us / 1000:.1f}"),
    ]


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
margin:24px;color:#212121;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#616161;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 14px;min-width:120px}
.card .n{font-size:24px;font-weight:600}.card .l{color:#616161;font-size:13px}
.chart{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f5f5}.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.note{color:#8d6e00}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _legend() -> str:
    items = "".join(
        f'<span><i style="background:{COLORS[o]}"></i>{_e(LABELS[o])}</span>'
        for o in reversed(CHART_ORDER)
    )
    return f'<div class="legend">{items}</div>'


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def day_chart_svg(by_day: dict[str, dict[str, int]]) -> str:
    """Stacked bars of calls a day (blocked, labeled, allowed, ...), as inline SVG."""
    days = list(by_day)
    width, height = 1000, 320
    left, right, top, bottom = 60, 10, 10, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(c.values()) for c in by_day.values()), default=0)
    scale_max = _nice_max(peak)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="calls per day">'
    ]
    for i in range(5):
        value = scale_max * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e0e0e0"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="12" '
            f'text-anchor="end" fill="#616161">{value:g}</text>'
        )
    n = max(1, len(days))
    slot = plot_w / n
    bar = max(1.0, slot * 0.7)
    label_every = max(1, (n + 14) // 15)
    for index, day in enumerate(days):
        x = left + slot * index + (slot - bar) / 2
        y = top + plot_h
        counts = by_day[day]
        for outcome in CHART_ORDER:
            value = counts.get(outcome, 0)
            if not value:
                continue
            h = plot_h * value / scale_max
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[outcome]}"><title>{_e(day)}: {value} '
                f"{_e(LABELS[outcome])}</title></rect>"
            )
        if index % label_every == 0:
            cx = left + slot * index + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 18}" font-size="12" '
                f'text-anchor="middle" fill="#424242">{_e(day[5:])}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        'stroke="#9e9e9e"/></svg>'
    )
    return "".join(parts)


def list_chart_svg(by_list: dict[str, dict[str, int]], limit: int = 15) -> str:
    """Horizontal stacked bars of calls a list decided, as inline SVG."""
    rows = [(name, counts) for name, counts in by_list.items() if name][:limit]
    width = 1000
    left, right = 220, 70
    row_h = 26
    height = max(1, len(rows)) * row_h + 20
    plot_w = width - left - right
    peak = max((sum(c.values()) for _, c in rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="calls per list">'
    ]
    if not rows:
        parts.append(
            '<text x="10" y="30" font-size="13" fill="#616161">no call matched a list</text>'
        )
    for index, (name, counts) in enumerate(rows):
        y = 10 + index * row_h
        label = name if len(name) <= 30 else name[:29] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" font-size="13" text-anchor="end" '
            f'fill="#212121">{_e(label)}</text>'
        )
        x = float(left)
        for outcome in CHART_ORDER:
            value = counts.get(outcome, 0)
            if not value:
                continue
            w = plot_w * value / peak
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{COLORS[outcome]}"><title>{_e(name)}: {value} '
                f"{_e(LABELS[outcome])}</title></rect>"
            )
            x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 16}" font-size="12" fill="#424242">'
            f"{sum(counts.values())}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_counts(first: str, rows: dict[str, dict[str, int]], empty: str) -> str:
    head = "".join(f'<th class="n">{_e(LABELS[o.value])}</th>' for o in OUTCOMES)
    body = []
    for key, counts in rows.items():
        cells = "".join(f'<td class="n">{counts.get(o.value, 0)}</td>' for o in OUTCOMES)
        body.append(
            f"<tr><td>{_e(_name(key, empty))}</td>{cells}"
            f'<td class="n">{sum(counts.values())}</td></tr>'
        )
    return (
        f'<table><tr><th>{_e(first)}</th>{head}<th class="n">total</th></tr>'
        + "".join(body)
        + "</table>"
    )


def _html_tops(rows: Sequence[TopNumber]) -> str:
    if not rows:
        return "<p>none</p>"
    body = "".join(
        f'<tr><td>{_e(t.number)}</td><td class="n">{t.attempts}</td>'
        f"<td>{_e(', '.join(t.lists))}</td></tr>"
        for t in rows
    )
    return f'<table><tr><th>number</th><th class="n">attempts</th><th>lists</th></tr>{body}</table>'


def _html_fates(rows: Sequence[NumberFate], count: int, tz: str) -> str:
    if not rows:
        return "<p>none</p>"
    body = "".join(
        f'<tr><td>{_e(f.number)}</td><td class="n">{f.attempts}</td><td>{_e(f.list_name)}</td>'
        f"<td>{_e(f.entry)}</td><td>{_e(_when(f.blacklisted_at, tz) or '(entry gone)')}</td>"
        f"<td>{_e(_when(f.first_contact, tz) or 'never')}</td></tr>"
        for f in rows
    )
    more = f"<p>{count - len(rows)} more not shown</p>" if count > len(rows) else ""
    return (
        '<table><tr><th>number</th><th class="n">attempts</th><th>list</th><th>entry</th>'
        f"<th>blacklisted</th><th>first contact</th></tr>{body}</table>{more}"
    )


def report_html(report: Report) -> str:
    """A self-contained HTML page: summary, charts (inline SVG), tables."""
    cards = [
        ("calls", report.total),
        *((LABELS[o], n) for o, n in report.totals.items()),
        ("lost numbers", report.lost_count),
        ("never contacted", report.never_contacted_count),
    ]
    card_html = "".join(
        f'<div class="card"><div class="n">{n}</div><div class="l">{_e(label)}</div></div>'
        for label, n in cards
    )
    generated = datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>callscreen report {_e(report.since)} to {_e(report.until)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>callscreen report</h1>",
        f'<div class="sub">{_e(_period(report))} &middot; generated {_e(generated)}</div>',
        f'<div class="cards">{card_html}</div>',
        "<h2>Calls per day</h2>",
        _legend(),
        f'<div class="chart">{day_chart_svg(report.by_day)}</div>',
        "<h2>Calls per list</h2>",
        _legend(),
        f'<div class="chart">{list_chart_svg(report.by_list)}</div>',
        "<h2>By direction</h2>",
        _html_counts("direction", report.by_direction, "-"),
        "<h2>By list</h2>",
        _html_counts("list", report.by_list, NO_LIST),
    ]
    if report.campaign is None:
        sections += [
            "<h2>By campaign</h2>",
            _html_counts("campaign", report.by_campaign, NO_CAMPAIGN),
        ]
    sections += [
        "<h2>By day</h2>",
        _html_counts("day", report.by_day, "-"),
        "<h2>Top blocked numbers</h2>",
        _html_tops(report.top_blocked),
        "<h2>Top labeled numbers</h2>",
        _html_tops(report.top_labeled),
        "<h2>Lost: contacted before being blacklisted</h2>",
        f"<p>{report.lost_count} of {report.listed_numbers} blacklisted numbers called in the "
        "period had an allowed call before their entry was added.</p>",
        _html_fates(report.lost, report.lost_count, report.timezone),
        "<h2>Never contacted before being blacklisted</h2>",
        _html_fates(report.never_contacted, report.never_contacted_count, report.timezone),
    ]
    if report.unknown_count:
        sections += [
            "<h2>Unknown (entry gone)</h2>",
            _html_fates(report.unknown, report.unknown_count, report.timezone),
        ]
    sections += [f'<p class="note">{_e(note)}</p>' for note in report.notes]
    sections.append("</body></html>")
    return "\n".join(sections) + "\n"
