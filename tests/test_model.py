"""The compact entry record (model.EntryRecord): its encoding, the earlier five-field
format, and the round trip for any record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callscreen.core.model import EntryRecord, Status

STORED = [Status.PENDING, Status.ACTIVE, Status.PERMANENT, Status.DELETED]
IDS = st.integers(min_value=1, max_value=2**53)


@pytest.mark.parametrize(
    ("record", "encoded"),
    [
        (EntryRecord(Status.ACTIVE, 17), "a;17"),  # a bulk entry: no cost for `created`
        (EntryRecord(Status.ACTIVE, 17, created=17), "a;17"),  # created by its batch
        (EntryRecord(Status.PENDING, 17, 1900000000), "p;17;1900000000"),
        (EntryRecord(Status.DELETED, 17, None, 20), "d;17;;20"),
        (EntryRecord(Status.ACTIVE, 25, created=17), "a;25;;;17;"),
        (EntryRecord(Status.ACTIVE, 17, external_id="CRM-1"), "a;17;;;;CRM-1"),
        (
            EntryRecord(Status.DELETED, 25, 1900000000, 30, "a;b", created=17),
            "d;25;1900000000;30;17;a;b",
        ),
        (EntryRecord(Status.PERMANENT, 17, external_id=";"), "P;17;;;;;"),
    ],
)
def test_encoding(record: EntryRecord, encoded: str) -> None:
    assert record.encode() == encoded
    assert EntryRecord.decode(encoded) == record.with_(
        created=None if record.created == record.batch else record.created
    )
    assert EntryRecord.decode(encoded.encode()) == EntryRecord.decode(encoded)


@pytest.mark.parametrize(
    ("raw", "record"),
    [
        ("a;17;;;CRM-1", EntryRecord(Status.ACTIVE, 17, external_id="CRM-1")),
        ("d;17;1900000000;20;X", EntryRecord(Status.DELETED, 17, 1900000000, 20, "X")),
        ("a;17;;;123", EntryRecord(Status.ACTIVE, 17, external_id="123")),
    ],
)
def test_the_earlier_five_field_format_is_read(raw: str, record: EntryRecord) -> None:
    decoded = EntryRecord.decode(raw)
    assert decoded == record and decoded.created is None
    assert decoded.created_batch == decoded.batch
    assert EntryRecord.decode(decoded.encode()) == decoded  # rewritten in the new format


def test_created_batch() -> None:
    assert EntryRecord(Status.ACTIVE, 25).created_batch == 25
    assert EntryRecord(Status.ACTIVE, 25, created=17).created_batch == 17
    assert EntryRecord.decode("a;25;;;17;").created_batch == 17


@given(
    st.sampled_from(STORED),
    IDS,
    st.none() | IDS,
    st.none() | IDS,
    st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
    st.none() | IDS,
)
def test_any_record_round_trips(
    status: Status,
    batch: int,
    expires: int | None,
    removal: int | None,
    external_id: str,
    created: int | None,
) -> None:
    record = EntryRecord(status, batch, expires, removal, external_id, created)
    encoded = record.encode()
    assert encoded.count(";") != 4  # never five fields: those are the earlier format
    expected = record.with_(created=None if created == batch else created)
    assert EntryRecord.decode(encoded) == expected
    # the places lookup.lua and reports.py read never move: status, batch, expiry
    parts = encoded.split(";")
    assert parts[1] == str(batch)
    if expires is not None:
        assert parts[2] == str(expires)
