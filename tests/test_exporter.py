"""The CSV exporter against a real redis-server: every field, formula neutralisation,
status filters, and the export -> import round trip into a new list."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import EXIT_NOT_FOUND
from callscreen.core.model import Action, Status
from callscreen.services import exporter, importer
from callscreen.services.exporter import EXPORT_COLUMNS, protect, unprotect
from callscreen.services.importer import ImportOptions
from callscreen.services.table import ListInfo
from tests.support.blocking import SyncAdmin as Admin
from tests.support.blocking import SyncTable as Table

REGION = "FR"
TRIGGERS = "=+-@\t\r"


# -- formula neutralisation (pure) ---------------------------------------------------


@given(st.text())
@example("=1+2")
@example("'=1+2")
@example("''@x")
@example("'")
@example("'a")
@example("\t")
def test_protect_round_trips(text: str) -> None:
    assert unprotect(protect(text)) == text


@given(st.text(min_size=1))
def test_protected_text_never_starts_a_formula(text: str) -> None:
    assert protect(text)[0] not in TRIGGERS


@given(st.text().filter(lambda t: not t.lstrip("'")[:1] or t.lstrip("'")[0] not in TRIGGERS))
def test_harmless_text_is_left_alone(text: str) -> None:
    assert protect(text) == text


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 555", "'+1 555"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("'=x", "''=x"),
        ("it's", "it's"),
        ("", ""),
    ],
)
def test_protect_examples(text: str, cell: str) -> None:
    assert protect(text) == cell
    assert unprotect(cell) == text


# -- against Redis -------------------------------------------------------------------


def export(table: Table, info: ListInfo, **kwargs: Any) -> list[dict[str, str]]:
    out = io.StringIO()
    exporter.export_list(table, info, out, now=kwargs.pop("now", time.time()), **kwargs)
    text = out.getvalue()
    assert text.startswith(",".join(EXPORT_COLUMNS) + "\r\n")
    return list(csv.DictReader(io.StringIO(text)))


def by_number(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["number"]: row for row in rows}


#: the last changes an import cannot make again: it writes the entry with its reason
#: (who, when) and its removal, so these read "updated" in a copy
_NOT_REPLAYED = {"approved", "approved-permanently", "unapproved", "restored"}


def as_imported(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``rows`` as an export of a copy made by importing them shows them."""
    return [
        {**row, "last_change": "updated"} if row["last_change"] in _NOT_REPLAYED else row
        for row in rows
    ]


@pytest.fixture
def populated(admin: Admin, table: Table) -> ListInfo:
    """A list with an entry in every state, and free text that looks like formulas."""
    info = table.create_list("src", Action.BLOCK)
    admin.add("src", ["+33123456781"], reason="=HYPERLINK(\"x\")", external_id="@crm-1",
              expires="2031-01-31", by="+alice", source="-web")  # fmt: skip
    admin.add("src", ["+33123456782", "+33*"], reason="country ban", by="bob")
    admin.approve("src", ["+33123456782"], permanent=True)
    admin.approve("src", ["+33*"], permanent=True, confirm_broad=True)
    admin.add("src", ["+33123456783"], reason="old", external_id="X3")
    admin.remove("src", ["+33123456783"], reason="=customer asked", by="carol")
    admin.add("src", ["+33123456784"], reason="short", expires="2000-01-01")  # expired
    importer.import_stream(
        table,
        info,
        io.BytesIO(b"number,reason\n+33612345678,from the registry\n+1900*,premium\n"),
        name="reg.csv",
        options=ImportOptions(workers=0, by="dave"),
    )
    return info


def test_every_field(table: Table, populated: ListInfo) -> None:
    rows = by_number(export(table, populated))
    assert set(rows) == {
        "+33123456781",
        "+33123456782",
        "+33*",
        "+33123456783",
        "+33123456784",
        "+33612345678",
        "+1900*",
    }
    first = rows["+33123456781"]
    assert first["kind"] == "number" and first["status"] == "active"
    assert first["reason"] == '\'=HYPERLINK("x")'
    assert first["external_id"] == "'@crm-1"
    assert first["updated_by"] == "'+alice" and first["source"] == "'-web"
    assert first["expires"] == "2031-02-01T00:00:00Z"
    assert first["updated_at"].endswith("Z") and first["removed_at"] == ""
    # never updated: created by the change that set it
    assert (first["created_by"], first["created_at"]) == ("'+alice", first["updated_at"])
    assert rows["+33*"]["kind"] == "prefix" and rows["+33*"]["status"] == "permanent"
    removed = rows["+33123456783"]
    assert removed["status"] == "deleted" and removed["reason"] == "old"
    assert (removed["removed_by"], removed["removed_reason"]) == ("carol", "'=customer asked")
    assert removed["removed_at"].endswith("Z") and removed["external_id"] == "X3"
    assert rows["+33123456784"]["status"] == "expired"
    pending = rows["+33612345678"]
    assert (pending["status"], pending["source"], pending["updated_by"]) == (
        "pending",
        "import:reg.csv",
        "dave",
    )
    assert rows["+1900*"]["reason"] == "premium"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({Status.PENDING}, {"+33612345678", "+1900*"}),
        ({Status.DELETED, Status.EXPIRED}, {"+33123456783", "+33123456784"}),
        ({Status.ACTIVE}, {"+33123456781"}),
        ({Status.PERMANENT}, {"+33123456782", "+33*"}),
    ],
)
def test_status_filter(
    table: Table, populated: ListInfo, statuses: set[Status], expected: set[str]
) -> None:
    rows = export(table, populated, statuses=frozenset(statuses))
    assert {row["number"] for row in rows} == expected


def test_round_trip_into_a_new_list_reproduces_every_field(
    table: Table, populated: ListInfo
) -> None:
    out = io.StringIO()
    now = time.time()
    exporter.export_list(table, populated, out, now=now)
    copy = table.create_list("copy", Action.BLOCK)
    summary = importer.import_stream(
        table,
        copy,
        io.BytesIO(out.getvalue().encode()),
        name="export.csv",
        options=ImportOptions(workers=0, keep_status=True, confirm_broad=True, by="eve"),
    )
    assert (summary.added, summary.errors) == (7, 0)
    assert export(table, copy, now=now) == as_imported(export(table, populated, now=now))
    assert table.r.hgetall(table.keys.counts(copy.id)) == table.r.hgetall(
        table.keys.counts(populated.id)
    )
    assert table.r.zcard(table.keys.expiring(copy.id)) == 2
    # and again: nothing changes
    again = importer.import_stream(
        table,
        copy,
        io.BytesIO(out.getvalue().encode()),
        name="export.csv",
        options=ImportOptions(workers=0, keep_status=True, confirm_broad=True),
    )
    assert (again.added, again.updated, again.restored) == (0, 0, 0)


def test_export_import_export_reproduces_every_column(
    redis_url: str, tmp_path: Path, table: Table, admin: Admin
) -> None:
    """Entries whose creation, last change and removal are three different changes,
    through the command line: export, import --keep-status into a new list, export."""
    info = table.create_list("hist", Action.BLOCK)
    admin.add("hist", ["+33123456781"], reason="first", by="alice", expires="2031-01-31")
    admin.add("hist", ["+33123456781"], reason="=second", by="bob", external_id="E;1")
    admin.add("hist", ["+33123456782"], reason="first", by="alice")
    admin.add("hist", ["+33123456782"], reason="second", by="bob", external_id="X2")
    admin.remove("hist", ["+33123456782"], reason="=asked", by="carol")
    admin.add("hist", ["+3389*"], reason="premium", by="dave", source="@crm")
    admin.approve("hist", ["+3389*"], permanent=True)
    for data, by, approve in (
        (b"number,reason\n+33612345678,registry\n+33612345670,registry\n", "erin", Status.PENDING),
        (b"number,reason\n+33612345678,registry 2\n", "frank", Status.ACTIVE),
    ):
        importer.import_stream(
            table,
            info,
            io.BytesIO(data),
            name="reg.csv",
            options=ImportOptions(workers=0, by=by, approve=approve),
        )
    admin.add("hist", ["+33612345679"], reason="short", expires="2000-01-01", by="gina")
    admin.add("hist", ["+33612345679"], reason="later", by="hank")  # still expired

    rows = by_number(export(table, info))
    # updated_*: the last transition (who, when), an approval and a removal included
    assert {
        n: (r["status"], r["created_by"], r["updated_by"], r["last_change"])
        for n, r in rows.items()
    } == {
        "+33123456781": ("active", "alice", "bob", "updated"),
        "+33123456782": ("deleted", "alice", "carol", "removed"),
        "+3389*": ("permanent", "dave", "tester", "approved-permanently"),
        "+33612345678": ("active", "erin", "frank", "updated"),
        "+33612345670": ("pending", "erin", "erin", "added"),
        "+33612345679": ("expired", "gina", "", "expired"),  # at its expiry, by nobody
    }
    assert rows["+33612345679"]["updated_at"].startswith("2000-01-02T00:00:00")  # through 01
    for row in rows.values():
        assert row["created_at"] and row["updated_at"]
        if row["last_change"] != "expired":
            assert row["created_at"] <= row["updated_at"]
    assert rows["+33123456781"]["created_at"] < rows["+33123456781"]["updated_at"]
    assert rows["+33123456782"]["removed_by"] == "carol"
    assert rows["+33123456782"]["removed_at"] == rows["+33123456782"]["updated_at"]

    runner = CliRunner()
    base = ["--redis-url", redis_url, "--region", REGION]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    table.create_list("copy", Action.BLOCK)
    for args in (
        ["export", "hist", str(first)],
        ["import", "copy", str(first), "--keep-status", "--by", "someone-else"],
        ["export", "copy", str(second)],
    ):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 0, result.output

    def rows_of(path: Path) -> list[list[str]]:
        with path.open(newline="") as handle:
            return sorted(csv.reader(handle))

    def replayed(path: Path) -> list[list[str]]:
        with path.open(newline="") as handle:
            return sorted(
                [row[k] for k in EXPORT_COLUMNS]
                for row in as_imported(list(csv.DictReader(handle)))
            )

    assert [row for row in rows_of(second) if row[0] != "number"] == replayed(first)
    assert len(rows_of(first)) == 7 and all(
        len(row) == len(EXPORT_COLUMNS) for row in rows_of(first)
    )
    copy = table.get_list("copy")
    assert table.r.hgetall(table.keys.counts(copy.id)) == table.r.hgetall(
        table.keys.counts(info.id)
    )
    # an entry never changed after its creation still costs no creation batch: a
    # pending one only its never-enforced mark
    n = 33612345670
    raw = table.r.hget(table.keys.exact(copy.id, n % table.buckets), str(n // table.buckets))
    assert raw is not None and raw.startswith("p;") and raw.endswith(";;;~;")


def test_round_trip_of_free_text_that_looks_like_formulas(table: Table, admin: Admin) -> None:
    info = table.create_list("f", Action.LABEL)
    texts = ["=1+2", "'=1+2", "''@x", "+33 is france", "-", "@", "plain", "'quoted'"]
    for i, text in enumerate(texts):
        admin.add("f", [f"+3361234567{i}"], reason=text, external_id=text)
    copy = table.create_list("g", Action.LABEL)
    out = io.StringIO()
    exporter.export_list(table, info, out, now=time.time())
    importer.import_stream(
        table,
        copy,
        io.BytesIO(out.getvalue().encode()),
        name="e.csv",
        options=ImportOptions(workers=0, keep_status=True),
    )
    rows = by_number(export(table, copy))
    for i, text in enumerate(texts):
        row = rows[f"+3361234567{i}"]
        assert unprotect(row["reason"]) == text
        assert unprotect(row["external_id"]) == text
        assert row["number"] == f"+3361234567{i}"  # numbers are never touched


def test_large_list_pages(table: Table) -> None:
    info = table.create_list("big", Action.BLOCK)
    data = "\n".join(f"+3361{i * 7:07d}" for i in range(20_000)) + "\n"
    importer.import_stream(
        table, info, io.BytesIO(data.encode()), name="b.csv", options=ImportOptions(workers=0)
    )
    seen: list[tuple[int, int]] = []
    out = io.StringIO()
    summary = exporter.export_list(
        table, info, out, now=time.time(), progress=lambda done, total: seen.append((done, total))
    )
    assert summary.rows == 20_000 and summary.by_status == {"pending": 20_000}
    assert seen[-1] == (table.buckets, table.buckets)
    assert len(out.getvalue().splitlines()) == 20_001


def test_cli_export(redis_url: str, tmp_path: Path, table: Table, populated: ListInfo) -> None:
    runner = CliRunner()
    base = ["--redis-url", redis_url, "--region", REGION]
    path = tmp_path / "out.csv"
    result = runner.invoke(app, [*base, "export", "src", str(path), "--status", "deleted,expired"])
    assert result.exit_code == 0, result.output
    assert "exported 2 entries of src" in result.stdout
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["status"] for row in rows} == {"deleted", "expired"}
    assert not list(tmp_path.glob(".export-*"))
    to_stdout = runner.invoke(app, [*base, "export", "src"])
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout.startswith("number,kind,status,")
    assert len(to_stdout.stdout.splitlines()) == 8
    bad = runner.invoke(app, [*base, "export", "src", "--status", "nope"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, [*base, "export", "nope"])
    assert missing.exit_code == EXIT_NOT_FOUND and "no list named" in missing.stderr
