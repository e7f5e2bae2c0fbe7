"""The one date parser, and the one free-text check: pure, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callscreen.core.errors import InvalidInput, InvalidName
from callscreen.core.text import free_text
from callscreen.core.times import parse_before, parse_datetime, parse_expiry
from callscreen.services.importer import parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T18:00", datetime(2027, 1, 31, 18, tzinfo=UTC)),
        ("2027-01-31T18:00:00Z", datetime(2027, 1, 31, 18, tzinfo=UTC)),
        ("2027-01-31T19:00:00+01:00", datetime(2027, 1, 31, 18, tzinfo=UTC)),
        ("2025-11-25T08:30:00.123456Z", datetime(2025, 11, 25, 8, 30, 0, 123456, tzinfo=UTC)),
        ("2025-11-25T08:30:00.123Z", datetime(2025, 11, 25, 8, 30, 0, 123000, tzinfo=UTC)),
        (" 2027-01-31 ", datetime(2027, 1, 31, tzinfo=UTC)),
    ],
)
def test_one_parser_for_every_time_format(text: str, expected: datetime) -> None:
    assert parse_datetime(text, "when") == expected
    assert parse_time(text, "updated_at") == expected.timestamp()  # the importer's


def test_bad_times_name_what_was_asked() -> None:
    with pytest.raises(InvalidInput, match="updated_at is not a date"):
        parse_time("yesterday", "updated_at")
    with pytest.raises(InvalidInput, match="--expires must be a duration like 30d"):
        parse_expiry("soon", 0)
    with pytest.raises(InvalidInput, match="--before must be a duration"):
        parse_before("2027-13-01", 0)


def test_an_expiry_is_never_before_the_time_asked() -> None:
    # whole seconds, rounded up: a short duration given late in a second keeps it whole
    assert parse_expiry("1s", 1000.9) == 1002
    assert parse_expiry("1s", 1000.0) == 1001
    assert parse_expiry("30d", 1000.5) == 1001 + 30 * 86400
    assert (
        parse_expiry("2027-01-31T18:00:00.2Z", 0)
        == datetime(2027, 1, 31, 18, 0, 1, tzinfo=UTC).timestamp()
    )
    assert parse_expiry("2027-01-31", 0) == datetime(2027, 2, 1, tzinfo=UTC).timestamp()


def test_free_text_is_bounded_and_has_no_control_characters() -> None:
    assert free_text("asked us, twice — «non»", "reason", 100) == "asked us, twice — «non»"
    with pytest.raises(InvalidInput, match="reason is longer than 5 characters"):
        free_text("x" * 6, "reason", 5)
    with pytest.raises(InvalidInput, match="must not contain control characters"):
        free_text("a\nb", "reason", 100)
    with pytest.raises(InvalidName):
        free_text("a\x00", "list name", 100, error=InvalidName)
