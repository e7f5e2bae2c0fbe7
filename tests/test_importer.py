"""The CSV importer against a real redis-server: formats, bad rows, merge rules,
idempotency, --strict, --replace, bookkeeping (counts, expiry index), memory."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from callscreen.cli import app
from callscreen.cli.exits import EXIT_INVALID, EXIT_NOT_FOUND
from callscreen.core.config import Settings
from callscreen.core.errors import InvalidInput, StoreError
from callscreen.core.model import Action, EntryRecord, Status
from callscreen.core.numbers import EntryKey, parse_entry
from callscreen.services import importer
from callscreen.services.entries import expiry_member
from callscreen.services.importer import ImportOptions, ImportSummary, sniff
from callscreen.services.table import ListInfo
from tests.support.blocking import SyncAdmin as Admin
from tests.support.blocking import SyncTable as Table

REGION = "FR"


@pytest.fixture
def dnc(table: Table) -> ListInfo:
    return table.create_list("dnc", Action.BLOCK, by="tester")


def run(
    table: Table,
    info: ListInfo,
    data: str | bytes,
    *,
    name: str = "f.csv",
    errors_out: Any = None,
    seekable: bool = True,
    **options: Any,
) -> ImportSummary:
    raw = data.encode() if isinstance(data, str) else data
    options.setdefault("workers", 0)
    options.setdefault("by", "tester")
    stream: Any = io.BytesIO(raw) if seekable else _Pipe(raw)
    return importer.import_stream(
        table, info, stream, name=name, options=ImportOptions(**options), errors_out=errors_out
    )


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream, like standard input."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        chunk = self.inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def record(table: Table, info: ListInfo, entry: str) -> EntryRecord | None:
    key = parse_entry(entry, REGION)
    if key.is_prefix:
        raw = table.r.hget(table.keys.prefixes(info.id), key.digits)
    else:
        n = int(key.digits)
        raw = table.r.hget(table.keys.exact(info.id, n % table.buckets), str(n // table.buckets))
    return EntryRecord.decode(str(raw)) if raw else None


def reason(table: Table, rec: EntryRecord | None) -> str:
    assert rec is not None
    return table.batches([rec.batch])[rec.batch].reason


def dump(table: Table, info: ListInfo) -> dict[str, str]:
    """Every record of the list, by hash key and field."""
    out: dict[str, str] = {}
    for key in table.r.scan_iter(match=f"{table.keys.base}:[ep]:{info.id}*", count=1000):
        for field, value in table.r.hgetall(key).items():
            out[f"{key}/{field}"] = value
    return out


def check_bookkeeping(table: Table, info: ListInfo) -> Counter[str]:
    """The stored counts and expiry index agree with the records; returns the counts."""
    counts: Counter[str] = Counter()
    expiring: dict[str, float] = {}
    buckets = table.buckets
    # SCAN may return a key twice (while Redis resizes its keyspace): each key once
    for key in set(table.r.scan_iter(match=f"{table.keys.base}:[ep]:{info.id}*", count=1000)):
        prefix = key.startswith(f"{table.keys.base}:p:")
        for field, value in table.r.hgetall(key).items():
            rec = EntryRecord.decode(value)
            code = value[0]
            counts[code] += 1
            if prefix:
                entry = EntryKey(field, True)
            else:
                entry = EntryKey(str(int(field) * buckets + int(key.rsplit(":", 1)[1])), False)
            member = expiry_member(buckets, entry)
            if code == "a" and rec.expires is not None:
                expiring[member] = float(rec.expires)
            if code == "P":
                assert rec.expires is None
    stored = {k: int(v) for k, v in table.r.hgetall(table.keys.counts(info.id)).items()}
    assert {k: v for k, v in stored.items() if v} == dict(counts)
    assert dict(table.r.zrange(table.keys.expiring(info.id), 0, -1, withscores=True)) == expiring
    assert not list(table.r.scan_iter(match=f"{table.keys.base}:imp:*"))
    assert not table.r.zcard(table.keys.imports)
    return counts


# -- what a file looks like ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "delimiter", "header", "columns"),
    [
        ("+33123456789", ",", False, {"number": 0}),
        ("number", ",", True, {"number": 0}),
        ("Phone Numbers", ",", True, {"number": 0}),
        ("NUMBER;Reason;External ID;Expires", ";", True,
         {"number": 0, "reason": 1, "external_id": 2, "expires": 3}),
        ("reason\tphone", "\t", True, {"reason": 0, "number": 1}),
        ("msisdn,ext-id,expiry", ",", True, {"number": 0, "external_id": 1, "expires": 2}),
        ("+33123456789,whatever", ",", False, {"number": 0}),
    ],
)  # fmt: skip
def test_sniff(line: str, delimiter: str, header: bool, columns: dict[str, int]) -> None:
    layout = sniff(line)
    assert (layout.delimiter, layout.header, layout.columns) == (delimiter, header, columns)


def test_sniff_header_without_number_column() -> None:
    with pytest.raises(InvalidInput, match="no number column"):
        sniff("reason,expires")


def test_sniff_reports_ignored_columns() -> None:
    assert sniff("number,colour").ignored == ("colour",)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_separators_bom_line_ends(
    table: Table, dnc: ListInfo, sep: str, bom: bytes, eol: str
) -> None:
    text = eol.join([f"number{sep}reason{sep}external_id", f"+33123456789{sep}opt-out{sep}X1", ""])
    summary = run(table, dnc, bom + text.encode())
    assert (summary.added, summary.errors) == (1, 0)
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.external_id == "X1"
    assert reason(table, rec) == "opt-out"
    check_bookkeeping(table, dnc)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_single_column_without_header(table: Table, dnc: ListInfo, bom: bytes) -> None:
    summary = run(table, dnc, bom + b"+33123456789\n06 12 34 56 78\n+33*\n")
    assert (summary.added, summary.errors) == (3, 0)
    assert record(table, dnc, "+33612345678") is not None
    assert record(table, dnc, "+33*") is not None


def test_quoted_cells_with_separators_and_newlines(table: Table, dnc: ListInfo) -> None:
    data = 'number,note,reason\n+33123456789,"two\nlines","asked, twice"\nbad,,x\n'
    summary = run(table, dnc, data)
    assert summary.added == 1
    assert reason(table, record(table, dnc, "+33123456789")) == "asked, twice"
    # the quoted newline counts as a line: the bad row is on line 4
    assert [e.line for e in summary.first_errors] == [4]
    assert summary.notes == ["columns ignored: note"]


# -- bad rows ------------------------------------------------------------------------


def test_bad_rows_reported_by_line_and_good_rows_imported(table: Table, dnc: ListInfo) -> None:
    data = (
        "number,reason,expires\n"  # 1
        "+33123456789,ok,\n"  # 2
        "\n"  # 3: blank, skipped
        "abc,x,\n"  # 4
        "+3312,x,\n"  # 5
        ",no number,\n"  # 6
        "+33612345678,x,30d\n"  # 7: a duration in a file
        "+33612345679,x,tomorrow\n"  # 8
        "+33612345670," + "r" * 501 + ",\n"  # 9: reason too long
        "06 12 34 56 71,fine,2030-01-31\n"  # 10
    )
    out = io.StringIO()
    summary = run(table, dnc, data, errors_out=out)
    assert summary.added == 2
    assert summary.errors == 6
    assert [e.line for e in summary.first_errors] == [4, 5, 6, 7, 8, 9]
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["line", "raw", "error"]
    assert [r[0] for r in rows[1:]] == ["4", "5", "6", "7", "8", "9"]
    assert rows[1][1] == "abc,x,"
    assert "not a phone number" in rows[1][2]
    assert "no number" in rows[3][2]
    assert "duration" in rows[4][2]
    assert "longer than 500" in rows[6][2]
    rec = record(table, dnc, "+33612345671")
    assert rec is not None and rec.expires == 1896134400  # kept through 2030-01-31 (UTC)
    check_bookkeeping(table, dnc)


def test_errors_file_neutralises_formulas(table: Table, dnc: ListInfo) -> None:
    out = io.StringIO()
    run(table, dnc, "=HYPERLINK(1)\n", errors_out=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_only_the_first_errors_are_kept_in_the_summary(table: Table, dnc: ListInfo) -> None:
    summary = run(table, dnc, "number\n" + "x\n" * 50, shown_errors=5)
    assert summary.errors == 50
    assert len(summary.first_errors) == 5


def test_a_quote_left_open_is_reported(table: Table, dnc: ListInfo) -> None:
    data = 'number,reason\n+33123456789,"open\n+33612345678,x\n+33612345679,y\n'
    summary = run(table, dnc, data)
    assert summary.added == 0 and summary.errors == 1
    assert "lines 2-4 were read as one row" in summary.first_errors[0].error


def test_a_line_without_end_is_refused(table: Table, dnc: ListInfo) -> None:
    with pytest.raises(InvalidInput, match="line 2 is longer"):
        run(table, dnc, b"number\n" + b"1" * (importer.MAX_BLOCK + 10))


def test_invalid_utf8_line(table: Table, dnc: ListInfo) -> None:
    summary = run(table, dnc, b"+33123456789\n\xff\xfe06\n+33612345678\n")
    assert summary.added == 2
    assert [(e.line, "UTF-8" in e.error) for e in summary.first_errors] == [(2, True)]


def test_header_without_number_column_is_refused(table: Table, dnc: ListInfo) -> None:
    with pytest.raises(InvalidInput, match="no number column"):
        run(table, dnc, "reason,expires\nx,\n")
    check_bookkeeping(table, dnc)


# -- --strict ------------------------------------------------------------------------


@pytest.mark.parametrize("seekable", [True, False])
def test_strict_writes_nothing_if_any_row_is_bad(
    table: Table, dnc: ListInfo, seekable: bool
) -> None:
    seq = table.r.get(table.keys.batch_seq)
    summary = run(table, dnc, "+33123456789\nbad\n+33612345678\n", strict=True, seekable=seekable)
    assert not summary.written
    assert summary.errors == 1
    assert summary.added == 0
    assert dump(table, dnc) == {}
    assert not table.r.exists(table.keys.counts(dnc.id))
    assert table.r.get(table.keys.batch_seq) == seq
    check_bookkeeping(table, dnc)


def test_a_redis_failure_midway_says_what_was_written_and_a_rerun_finishes_it(
    table: Table, dnc: ListInfo
) -> None:
    data = "".join(f"+336{i:08d}\n" for i in range(12_000)).encode()  # two blocks
    admin_r = redis.Redis.from_url(table.settings.redis_url)

    def fail_after_first_block(phase: str, done: int, rows: int) -> None:
        if phase == "import" and rows:  # Redis refuses writes from now on
            admin_r.config_set("maxmemory-policy", "noeviction")
            admin_r.config_set("maxmemory", "1")

    options = ImportOptions(approve=Status.ACTIVE, strict=True, by="tester", workers=0)
    try:
        with pytest.raises(StoreError) as caught:
            importer.import_stream(
                table, dnc, io.BytesIO(data), name="f.csv", options=options,
                progress=fail_after_first_block,
            )  # fmt: skip
    finally:
        admin_r.config_set("maxmemory", "0")
        admin_r.close()
    message = str(caught.value)
    written = len(dump(table, dnc))
    assert 0 < written < 12_000
    assert f"{written} entries were written and stay in effect" in message
    assert "run the same import again to finish it" in message
    again = importer.import_stream(table, dnc, io.BytesIO(data), name="f.csv", options=options)
    assert again.written and again.added == 12_000 - written and again.unchanged == written


@pytest.mark.parametrize("seekable", [True, False])
def test_strict_imports_a_good_file(table: Table, dnc: ListInfo, seekable: bool) -> None:
    summary = run(
        table, dnc, "number\n+33123456789\n+33612345678\n", strict=True, seekable=seekable
    )
    assert summary.written and summary.added == 2 and summary.rows == 2


# -- merge rules ---------------------------------------------------------------------

MIXED = (
    "number;reason;external_id;expires\n"
    "+33123456789;opt-out;CRM-1;\n"
    "01 23 45 67 89;;;\n"  # the same entry, national: a duplicate
    "06-12-34-56-78;complaint;;2031-06-30\n"
    "+33 6 12 34 56 79;;CRM-3;\n"
    "+33 6 12 34 56 79;other reason;CRM-4;\n"  # conflicting duplicate: the first wins
    "+33*;whole country;;\n"
    "0800*;;;\n"
    "not a number;x;;\n"
)


def test_reimport_changes_nothing(table: Table, dnc: ListInfo) -> None:
    first = run(table, dnc, MIXED, reason="default")
    assert (first.added, first.duplicates, first.errors, first.pending) == (5, 2, 1, 5)
    before = dump(table, dnc)
    seq = table.r.get(table.keys.batch_seq)
    history = table.r.xlen(table.keys.history(dnc.id))
    second = run(table, dnc, MIXED, reason="default")
    assert (second.added, second.updated, second.restored) == (0, 0, 0)
    assert (second.unchanged, second.duplicates, second.errors) == (5, 2, 1)
    assert dump(table, dnc) == before
    assert table.r.get(table.keys.batch_seq) == seq  # not even a batch record
    assert table.r.xlen(table.keys.history(dnc.id)) == history
    check_bookkeeping(table, dnc)
    # the first row of a duplicated entry won
    rec = record(table, dnc, "+33612345679")
    assert rec is not None and rec.external_id == "CRM-3"
    assert reason(table, rec) == "default"


def test_one_batch_per_distinct_reason(table: Table, dnc: ListInfo) -> None:
    lines = ["number,reason"] + [
        f"+3361234{i:04d},{('a', 'b', '')[i % 3]}" for i in range(3000)
    ]  # rows across several script calls
    seq = int(table.r.get(table.keys.batch_seq) or 0)
    summary = run(table, dnc, "\n".join(lines), reason="dflt")
    assert summary.added == 3000
    assert int(table.r.get(table.keys.batch_seq) or 0) - seq == 3
    reasons = Counter(reason(table, record(table, dnc, f"+3361234{i:04d}")) for i in range(30))
    assert reasons == {"a": 10, "b": 10, "dflt": 10}
    batch = table.batches([seq + 1])[seq + 1]
    assert (batch.op, batch.source, batch.by) == ("import", "import:f.csv", "tester")


def test_entries_from_import_are_pending_and_not_enforced(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    summary = run(table, dnc, "+33123456789\n")
    assert summary.pending == 1 and summary.list_pending == 1
    assert admin.check("+33123456789").result == "ALLOWED"
    admin.approve("dnc", all_pending=True)
    assert admin.check("+33123456789").result == "BLOCKED"
    check_bookkeeping(table, dnc)


@pytest.mark.parametrize("approve", [Status.ACTIVE, Status.PERMANENT])
def test_approve_options(admin: Admin, table: Table, dnc: ListInfo, approve: Status) -> None:
    summary = run(table, dnc, "number,expires\n+33123456789,2031-01-01\n", approve=approve)
    assert summary.pending == 0
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.status is approve
    assert rec.expires == (1925078400 if approve is Status.ACTIVE else None)
    assert admin.check("+33123456789").result == "BLOCKED"
    check_bookkeeping(table, dnc)  # a permanent entry carries no expiry


def test_rows_for_a_permanent_entry_are_permanent_unchanged(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33612345678"], reason="court order", external_id="CASE-1")
    admin.approve("dnc", ["+33612345678"], permanent=True)
    before = dump(table, dnc)
    data = "number,reason,external_id,expires,status\n"
    data += "+33612345678,overwrite,CASE-2,2099-01-01,active\n"
    summary = run(table, dnc, data, approve=Status.ACTIVE)
    assert (summary.permanent_unchanged, summary.updated, summary.unchanged) == (1, 0, 0)
    assert summary.skipped == 1 and summary.to_json()["permanent_unchanged"] == 1
    assert dump(table, dnc) == before
    rec = record(table, dnc, "+33612345678")
    assert rec is not None and (rec.status, rec.expires, rec.external_id) == (
        Status.PERMANENT,
        None,
        "CASE-1",
    )
    assert reason(table, rec) == "court order"
    check_bookkeeping(table, dnc)


def test_never_demotes(admin: Admin, table: Table, dnc: ListInfo) -> None:
    admin.add("dnc", ["+33123456789"], reason="added by hand")
    run(table, dnc, "+33612345678\n", approve=Status.PERMANENT)
    summary = run(table, dnc, "number,reason\n+33123456789,from file\n+33612345678,from file\n")
    assert summary.updated == 1  # the reason changed...
    assert summary.permanent_unchanged == 1  # (a permanent entry is frozen)
    assert summary.pending == 0  # ...but neither went back to pending
    assert record(table, dnc, "+33123456789").status is Status.ACTIVE  # type: ignore[union-attr]
    assert record(table, dnc, "+33612345678").status is Status.PERMANENT  # type: ignore[union-attr]
    assert reason(table, record(table, dnc, "+33123456789")) == "from file"
    assert admin.check("+33123456789").result == "BLOCKED"
    check_bookkeeping(table, dnc)


def test_pending_promoted_by_approve_keeps_its_reason(table: Table, dnc: ListInfo) -> None:
    run(table, dnc, "number,reason\n+33123456789,opt-out\n")
    summary = run(table, dnc, "+33123456789\n", approve=Status.ACTIVE, name="second.csv")
    assert summary.updated == 1
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.status is Status.ACTIVE
    batch = table.batches([rec.batch])[rec.batch]
    assert (batch.reason, batch.source) == ("opt-out", "import:second.csv")
    check_bookkeeping(table, dnc)


def test_empty_cells_keep_what_the_entry_has(table: Table, dnc: ListInfo) -> None:
    run(table, dnc, "number,external_id,expires\n+33123456789,X1,2031-01-01\n")
    summary = run(table, dnc, "number,external_id,expires\n+33123456789,,\n")
    assert summary.unchanged == 1
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and (rec.external_id, rec.expires) == ("X1", 1925078400)


def test_deleted_entries_are_skipped_unless_restore_deleted(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456789"], reason="first", expires="2031-01-01")
    admin.remove("dnc", ["+33123456789"], reason="customer asked")
    skipped = run(table, dnc, "+33123456789\n", approve=Status.ACTIVE)
    assert (skipped.deleted_kept, skipped.restored) == (1, 0)
    assert record(table, dnc, "+33123456789").status is Status.DELETED  # type: ignore[union-attr]
    restored = run(table, dnc, "+33123456789\n", restore_deleted=True)
    assert restored.restored == 1 and restored.pending == 1
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.status is Status.PENDING and rec.removal is None
    assert reason(table, rec) == "first"  # no reason in the file: it keeps its own
    assert admin.check("+33123456789").result == "ALLOWED"  # pending: not enforced
    again = run(table, dnc, "+33123456789\n", approve=Status.ACTIVE, restore_deleted=True)
    assert again.updated == 1
    assert admin.check("+33123456789").result == "BLOCKED"
    check_bookkeeping(table, dnc)


def test_replace_removes_what_the_file_lacks_but_permanent(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456781"], expires="2031-01-01")  # active, expiring
    admin.add("dnc", ["+33123456782", "+33*"])
    admin.approve("dnc", ["+33123456782"], permanent=True)
    admin.add("dnc", ["+33123456783"])
    admin.remove("dnc", ["+33123456783"], reason="gone")
    run(table, dnc, "+33123456784\n+1*\n")  # pending
    summary = run(
        table,
        dnc,
        "number\n+33123456781\n+33123456785\n",
        replace=True,
        name="registry.csv",
        max_remove=1.0,  # 3 of the 5 live entries go
    )
    assert summary.replaced
    assert (summary.added, summary.unchanged) == (1, 1)
    assert summary.removed == 3  # +33*, +33123456784, +1*
    assert summary.kept_permanent == 1
    statuses = {
        e: record(table, dnc, e).status  # type: ignore[union-attr]
        for e in ("+33123456781", "+33123456782", "+33123456783", "+33123456784", "+33*", "+1*")
    }
    assert statuses == {
        "+33123456781": Status.ACTIVE,
        "+33123456782": Status.PERMANENT,
        "+33123456783": Status.DELETED,
        "+33123456784": Status.DELETED,
        "+33*": Status.DELETED,
        "+1*": Status.DELETED,
    }
    gone = record(table, dnc, "+33*")
    assert gone is not None and gone.removal is not None
    removal = table.batches([gone.removal])[gone.removal]
    assert "registry.csv" in removal.reason and removal.op == "replace"
    assert admin.check("+33999999999").result == "ALLOWED"  # a removed prefix stops at once
    check_bookkeeping(table, dnc)


def test_replace_removes_expiring_entries_from_the_index(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456781"], expires="2031-01-01")
    run(table, dnc, "+33123456785\n", replace=True)
    assert record(table, dnc, "+33123456781").status is Status.DELETED  # type: ignore[union-attr]
    assert table.r.zcard(table.keys.expiring(dnc.id)) == 0
    check_bookkeeping(table, dnc)


def test_replace_is_not_applied_when_rows_are_bad(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456781"])
    summary = run(table, dnc, "+33123456785\n+33 1 23 45 67 8x\n", replace=True)
    assert not summary.replaced and summary.removed == 0
    assert any("--replace not applied" in note for note in summary.notes)
    assert record(table, dnc, "+33123456781").status is Status.ACTIVE  # type: ignore[union-attr]


@pytest.mark.parametrize("data", ["", "number\n", "bad\n+33 1 23 45 67 8x\n"])
def test_replace_with_a_file_naming_no_entry_is_refused(
    admin: Admin, table: Table, dnc: ListInfo, data: str
) -> None:
    admin.add("dnc", ["+33123456781", "+33123456782"])
    summary = run(table, dnc, data, replace=True)
    assert not summary.replaced and summary.removed == 0
    assert "--replace refused: the file names no entry" in summary.replace_refused
    assert check_bookkeeping(table, dnc) == {"a": 2}
    emptied = run(table, dnc, data, replace=True, allow_empty=True)
    assert not emptied.replace_refused
    if not emptied.errors:  # a file of bad rows never sweeps (a typo must not remove)
        assert emptied.replaced and emptied.removed == 2
        assert check_bookkeeping(table, dnc) == {"d": 2}


def test_replace_refuses_to_remove_more_than_max_remove(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", [f"+3312345678{i}" for i in range(4)])
    admin.add("dnc", ["+33123456789"])
    admin.approve("dnc", ["+33123456789"], permanent=True)
    # the file names 1 of the 4 live entries: 3 would go (75 %)
    summary = run(table, dnc, "+33123456780\n", replace=True)
    assert not summary.replaced and summary.removed == 0
    refused = summary.replace_refused
    assert "would remove 3 of the list's 4 live entries" in refused and "50 %" in refused
    assert "1 permanent entries missing from the file would be kept" in refused
    assert check_bookkeeping(table, dnc) == {"a": 4, "P": 1}
    done = run(table, dnc, "+33123456780\n", replace=True, max_remove=0.75)
    assert done.replaced and (done.removed, done.kept_permanent) == (3, 1)
    assert check_bookkeeping(table, dnc) == {"a": 1, "d": 3, "P": 1}


def test_replace_pages_through_many_prefixes(table: Table, dnc: ListInfo) -> None:
    # more prefixes than a listpack holds: the prefix hash is swept a page at a time
    prefixes = [f"+33{i:05d}*" for i in range(1500)]
    run(table, dnc, "\n".join(prefixes) + "\n", approve=Status.ACTIVE)
    summary = run(table, dnc, "\n".join(prefixes[::2]) + "\n", replace=True)
    assert (summary.unchanged, summary.removed) == (750, 750)
    assert check_bookkeeping(table, dnc) == {"a": 750, "d": 750}


def test_replace_strict_with_a_bad_row_writes_nothing(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456781"])
    summary = run(table, dnc, "+33123456785\nbad\n", replace=True, strict=True)
    assert not summary.written and summary.removed == 0
    assert record(table, dnc, "+33123456781").status is Status.ACTIVE  # type: ignore[union-attr]
    assert record(table, dnc, "+33123456785") is None


def test_rows_marked_deleted_are_skipped_without_keep_status(table: Table, dnc: ListInfo) -> None:
    data = "number,status\n+33123456789,deleted\n+33612345678,active\n"
    summary = run(table, dnc, data)
    assert (summary.added, summary.deleted_kept, summary.rows) == (1, 1, 2)
    assert record(table, dnc, "+33123456789") is None
    assert any("marked deleted" in note for note in summary.notes)


def test_broad_permanent_prefix_needs_confirmation(table: Table, dnc: ListInfo) -> None:
    summary = run(table, dnc, "+33*\n+331*\n", approve=Status.PERMANENT)
    assert summary.added == 1 and summary.errors == 1
    assert "--confirm-country" in summary.first_errors[0].error
    confirmed = run(table, dnc, "+33*\n", approve=Status.PERMANENT, confirm_broad=True)
    assert confirmed.added == 1
    assert record(table, dnc, "+33*").status is Status.PERMANENT  # type: ignore[union-attr]


def test_created_columns_give_a_new_entry_its_creation(table: Table, dnc: ListInfo) -> None:
    data = (
        "number,reason,created_by,created_at,updated_by,updated_at\n"
        "+33123456781,r,alice,2025-01-01T00:00:00Z,bob,2025-02-01T00:00:00Z\n"
        "+33123456782,r,,,bob,2025-02-01T00:00:00Z\n"  # none given: created = updated
        "+33123456783,r,carol,,,\n"  # only who: at the import's time
    )
    summary = run(table, dnc, data)  # without --keep-status too
    assert (summary.added, summary.errors) == (3, 0)
    first = record(table, dnc, "+33123456781")
    assert first is not None and first.created is not None
    batches = table.batches([first.batch, first.created])
    assert (batches[first.created].by, batches[first.created].at) == ("alice", 1735689600.0)
    assert (batches[first.batch].by, batches[first.batch].at) == ("bob", 1738368000.0)
    assert batches[first.created].reason == "r"
    second = record(table, dnc, "+33123456782")
    assert second is not None and second.created is None
    third = record(table, dnc, "+33123456783")
    assert third is not None and third.created is not None
    created = table.batches([third.created])[third.created]
    assert created.by == "carol" and created.at == table.batches([third.batch])[third.batch].at
    # an entry already in the list keeps its own creation
    again = data.replace("alice", "zoe").replace(",r,", ",changed,")
    assert run(table, dnc, again).updated == 3
    after = record(table, dnc, "+33123456781")
    assert after is not None and after.created == first.created and after.batch != first.batch
    check_bookkeeping(table, dnc)


def test_an_entry_changed_by_import_keeps_its_creation(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    admin.add("dnc", ["+33123456789"], reason="by hand", by="alice", external_id="A")
    created = record(table, dnc, "+33123456789")
    assert created is not None and created.created is None
    run(table, dnc, "number,reason\n+33123456789,from a file\n", by="bob")
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.created == created.batch and rec.external_id == "A"
    admin.remove("dnc", ["+33123456789"], reason="x")
    run(table, dnc, "+33123456789\n", restore_deleted=True, reason="back")
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.status is Status.PENDING and rec.created == created.batch
    run(table, dnc, "+33123456785\n", replace=True)  # the sweep keeps it too
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.status is Status.DELETED and rec.created == created.batch
    assert rec.external_id == "A"
    view = admin.list_entries("dnc", search="+33123456789").entries[0]
    assert (view.created_by, view.updated_by) == ("alice", "tester")
    check_bookkeeping(table, dnc)


def test_an_imported_entry_costs_no_creation_field(table: Table, dnc: ListInfo) -> None:
    run(table, dnc, "+33123456789\n+33*\n", approve=Status.ACTIVE, reason="registry")
    raws = dump(table, dnc).values()
    assert len(raws) == 2
    assert all(raw.count(";") == 1 for raw in raws), raws  # "a;17"


def test_enforced_counts_what_the_import_made_enforced(
    admin: Admin, table: Table, dnc: ListInfo
) -> None:
    assert run(table, dnc, "+33123456781\n+33123456782\n").enforced == 0  # pending
    approved = run(table, dnc, "+33123456781\n+33123456783\n", approve=Status.ACTIVE)
    assert (approved.added, approved.updated, approved.enforced) == (1, 1, 2)
    again = run(table, dnc, "+33123456781\n+33123456783\n", approve=Status.PERMANENT)
    assert (again.updated, again.enforced) == (2, 0)  # enforced already
    admin.add("dnc", ["+33123456784"], expires="2000-01-01")
    admin.add("dnc", ["+33123456785"])
    admin.remove("dnc", ["+33123456785"], reason="x")
    data = "number,expires\n+33123456784,2099-01-01\n+33123456785,\n+33123456786,2000-01-01\n"
    back = run(table, dnc, data, approve=Status.ACTIVE, restore_deleted=True)
    # expired and removed before, enforced now; a new entry already expired is not
    assert (back.updated, back.restored, back.added, back.enforced) == (1, 1, 1, 2)
    assert back.to_json()["enforced"] == 2


def test_formula_quote_is_taken_off(table: Table, dnc: ListInfo) -> None:
    run(table, dnc, "number,reason,external_id\n+33123456789,'=1+2,'@x\n")
    rec = record(table, dnc, "+33123456789")
    assert rec is not None and rec.external_id == "@x"
    assert reason(table, rec) == "=1+2"


def test_status_column_needs_keep_status(table: Table, dnc: ListInfo) -> None:
    data = "number,status\n+33123456789,active\n"
    summary = run(table, dnc, data)
    assert summary.pending == 1
    assert any("--keep-status" in note for note in summary.notes)
    other = table.create_list("other", Action.BLOCK)
    kept = run(table, other, data, keep_status=True)
    assert kept.pending == 0
    assert record(table, other, "+33123456789").status is Status.ACTIVE  # type: ignore[union-attr]


# -- temporary keys ------------------------------------------------------------------


def test_a_failed_import_cleans_up(table: Table, dnc: ListInfo) -> None:
    def boom(phase: str, done: int, rows: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        importer.import_stream(
            table,
            dnc,
            io.BytesIO(b"+33123456789\n"),
            name="f.csv",
            options=ImportOptions(workers=0),
            progress=boom,
        )
    check_bookkeeping(table, dnc)


def test_keys_of_a_dead_import_are_cleaned_by_the_next(table: Table, dnc: ListInfo) -> None:
    table.r.zadd(table.keys.imports, {"dead": time.time() - 2 * importer.STALE_AFTER})
    table.r.hset(table.keys.import_seen("dead", 5), "1", "1")
    table.r.hset(table.keys.import_seen("dead", "p"), "33", "1")
    table.r.hset(table.keys.import_batches("dead"), "k", "1")
    assert table.keys.import_seen("dead", 5).startswith(table.keys.import_temp("dead") + ":")
    run(table, dnc, "+33123456789\n")
    check_bookkeeping(table, dnc)


# -- size, speed, memory -------------------------------------------------------------


def _numbers(count: int, offset: int = 0) -> list[str]:
    # distinct valid French mobiles
    return [f"+3361{(offset + i) * 7 % 10_000_000:07d}" for i in range(count)]


@pytest.mark.slow
def test_100k_rows_in_a_worker_process(tmp_path: Path, table: Table, dnc: ListInfo) -> None:
    path = tmp_path / "big.csv"
    numbers = _numbers(100_000)
    path.write_text("\n".join(numbers + numbers[:1000] + ["garbage"]) + "\n")
    options = ImportOptions(workers=1, by="tester")
    summary = importer.import_file(table, "dnc", str(path), options)
    assert (summary.added, summary.duplicates, summary.errors) == (100_000, 1000, 1)
    assert summary.first_errors[0].line == 101_001
    again = importer.import_file(table, "dnc", str(path), options)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 100_000)
    assert check_bookkeeping(table, dnc) == {"p": 100_000}


def test_stdin_in_a_worker_process(table: Table, dnc: ListInfo) -> None:
    data = ("\n".join(_numbers(5000)) + "\nnope\n").encode()
    summary = run(table, dnc, data, seekable=False, workers=1)
    assert (summary.added, summary.errors) == (5000, 1)


@pytest.mark.slow
def test_bytes_per_entry_with_a_shared_reason(redis_url: str) -> None:
    # 1,024 buckets and 50k entries: ~49 entries a bucket, as 1.6M entries in 32,768
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset("{cs}:meta", "buckets", 1024)
    admin = Admin(Settings(redis_url=redis_url, default_region=REGION))
    table = admin.table
    info = table.create_list("mem", Action.BLOCK)
    summary = importer.import_stream(
        table,
        info,
        io.BytesIO(("\n".join(_numbers(50_000)) + "\n").encode()),
        name="m.csv",
        options=ImportOptions(
            workers=0, reason="registry 2025", approve=Status.ACTIVE, by="tester"
        ),
    )
    assert summary.added == 50_000
    # MEMORY USAGE of every key, exact (used_memory's difference also counts what the
    # allocator has not handed back yet): the entry hashes (14 B), the number index of
    # searches (15 B) and the holders index of the lookup (10 B): 40 B measured
    keys = list(client.scan_iter(count=1000))
    per_entry = sum(client.memory_usage(key, samples=0) or 0 for key in keys) / 50_000
    assert per_entry <= 44, per_entry
    admin.close()
    client.close()


# -- the command line ----------------------------------------------------------------


def cli(redis_url: str, *args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(
        app, ["--redis-url", redis_url, "--region", REGION, *args], input=stdin
    )


def test_cli_import(redis_url: str, tmp_path: Path, table: Table, dnc: ListInfo) -> None:
    path = tmp_path / "list.csv"
    path.write_text("number;reason\n+33123456789;opt-out\nbad;x\n06 12 34 56 78;\n")
    errors = tmp_path / "errors.csv"
    result = cli(redis_url, "import", "dnc", str(path), "--errors", str(errors), "--by", "me")
    assert result.exit_code == 1
    assert "added      2" in result.stdout
    assert "NOT enforced until approved" in result.stdout
    assert "line 3: not a phone number" in result.stdout
    assert "1 bad rows" in result.stderr
    assert errors.read_text().splitlines()[1].startswith("3,bad;x,")
    again = cli(redis_url, "import", "dnc", str(path), "--json")
    data = json.loads(again.stdout)
    assert (data["added"], data["updated"], data["unchanged"]) == (0, 0, 2)


def test_cli_import_stdin_strict(redis_url: str, table: Table, dnc: ListInfo) -> None:
    result = cli(redis_url, "import", "dnc", "-", "--strict", stdin=b"+33123456789\nbad\n")
    assert result.exit_code == 1
    assert "nothing written" in result.stdout
    good = cli(redis_url, "import", "dnc", "-", "--approve", stdin=b"+33123456789\n")
    assert good.exit_code == 0, good.output
    assert "every entry of this file is enforced" in good.stdout


def test_cli_import_usage_errors(redis_url: str, table: Table, dnc: ListInfo) -> None:
    both = cli(redis_url, "import", "dnc", "-", "--approve", "--approve-permanently", stdin=b"")
    assert both.exit_code == 2
    missing = cli(redis_url, "import", "dnc", os.path.join("no", "such.csv"))
    assert missing.exit_code == EXIT_INVALID and "cannot read" in missing.stderr
    no_list = cli(redis_url, "import", "nope", "-", stdin=b"+33123456789\n")
    assert no_list.exit_code == EXIT_NOT_FOUND and "no list named" in no_list.stderr
