"""Tests of callscreen.core.numbers: cleanup, call prefixes, entries, fast paths, exemptions."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from callscreen.core.errors import InvalidNumber
from callscreen.core.numbers import (
    CallNumber,
    EntryKey,
    NumberKind,
    _clean,  # the function's own cleaning
    is_anonymous_marker,
    is_never_blocked_outbound,
    parse_entry,
    parse_entry_fast,
    read_call_number,
    read_inbound_number,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
SOME_REGIONS = ["FR", "US", "GB", "DE", "AU", "RU", "IT", "JP", "BR", "CH", "IN", "CA"]


def _examples() -> list[str]:
    """E.164 digits of every example number phonenumbers has (every region, every type)."""
    found: set[str] = set()
    for region in REGIONS:
        for kind in range(12):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(digits[1:] for digits in found)


EXAMPLES = _examples()


def outcome(func: object, raw: str, region: str) -> tuple[str, object]:
    """``("ok", key)`` or ``("error", message)``, to compare two entry parsers."""
    assert callable(func)
    try:
        return ("ok", func(raw, region))
    except InvalidNumber as exc:
        return ("error", str(exc))


def oracle(raw: str, region: str) -> CallNumber:
    """What phonenumbers alone makes of a cleaned number (no fast path, no cleanup)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return CallNumber(NumberKind.INVALID)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return CallNumber(NumberKind.NUMBER, e164[1:])


# -- records -------------------------------------------------------------------------


def test_records_render_as_users_write_them() -> None:
    assert CallNumber(NumberKind.NUMBER, "33123456789").e164 == "+33123456789"
    assert CallNumber(NumberKind.ANONYMOUS, reason="anonymous caller").e164 == ""
    assert EntryKey("33123456789", is_prefix=False).display == "+33123456789"
    assert EntryKey("33", is_prefix=True).display == "+33*"


# -- call path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "digits"),
    [
        ("+33123456789", "FR", "33123456789"),
        ("+33 1 23 45 67 89", "US", "33123456789"),
        ("+33-1-23-45-67-89", "FR", "33123456789"),
        ("+33.1.23.45.67.89", "FR", "33123456789"),
        ("+33 (0)1 23 45 67 89", "FR", "33123456789"),
        ("+330123456789", "FR", "33123456789"),  # phonenumbers strips the 0: no fast path
        ("01 23 45 67 89", "FR", "33123456789"),
        ("01/23/45/67/89", "FR", "33123456789"),
        ("(202) 555-0100", "US", "12025550100"),
        ("1 (202) 555-0100", "US", "12025550100"),
        ("0033 1 23 45 67 89", "FR", "33123456789"),
        ("011 33 1 23 45 67 89", "US", "33123456789"),
        ("0011 33 1 23 45 67 89", "AU", "33123456789"),
        ("0014 33 1 23 45 67 89", "AU", "33123456789"),  # an alternative IDD of AU
        ("tel:+1-202-555-0100;ext=1", "FR", "12025550100"),
        ("TEL:+33123456789", "FR", "33123456789"),
        ("sip:+33123456789@host;user=phone", "US", "33123456789"),
        ("SIPS:+33123456789@host:5061;transport=tls", "US", "33123456789"),
        ("<sip:0123456789@10.0.0.1>", "FR", "33123456789"),
        ("sip:%2B33123456789@host", "US", "33123456789"),
        ("  +33123456789\t", "FR", "33123456789"),
        ("+78123456789", "RU", "78123456789"),  # national prefix 8 of +7: slow path
        ("+3912345", "IT", "3912345"),  # short, not valid: still a number
        ("+3906123456", "IT", "3906123456"),  # Italian leading zero kept
        ("123", "FR", "33123"),  # an extension or a short number: still a number
    ],
)
def test_call_number_reads_numbers(raw: str, region: str, digits: str) -> None:
    assert read_call_number(raw, region) == CallNumber(NumberKind.NUMBER, digits)


def test_idd_of_another_region_is_not_international() -> None:
    # From US, 00 is not an international prefix: 0033… is a (bogus) US national
    # number, which must not match +33 entries.
    us = read_call_number("0033 1 23 45 67 89", "US")
    assert us == CallNumber(NumberKind.NUMBER, "10033123456789")
    assert not us.digits.startswith("33")
    # From FR, 011 is not one either: a French national number starting 011,
    # never +33 1 23 45 67 89.
    fr = read_call_number("011 33 1 23 45 67 89", "FR")
    assert fr == CallNumber(NumberKind.NUMBER, "331133123456789")
    assert fr.digits != "33123456789"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "UNKNOWN",
        "restricted",
        "Private",
        "withheld",
        "unavailable",
        " anonymous ",
        "<unknown>",
        "sip:anonymous@anonymous.invalid",
        "SIP:Anonymous@anonymous.invalid;user=phone",
        "sips:restricted@example.com",
        "anonymous@10.0.0.1",
    ],
)
def test_anonymous_markers(raw: str) -> None:
    assert is_anonymous_marker(raw)
    number = read_call_number(raw, "FR")
    assert number.kind is NumberKind.ANONYMOUS
    assert number.digits == ""
    assert number.reason in ("anonymous caller", "no number")


def test_anonymous_reasons() -> None:
    assert read_call_number("anonymous", "FR").reason == "anonymous caller"
    assert read_call_number("", "FR").reason == "no number"


@pytest.mark.parametrize(
    "raw",
    ["+33123456789", "0123456789", "anonymous1", "sip:+33123456789@anonymous.invalid", "---"],
)
def test_not_anonymous(raw: str) -> None:
    assert not is_anonymous_marker(raw)
    assert read_call_number(raw, "FR").kind is not NumberKind.ANONYMOUS


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("abc", "FR", "not a phone number: 'abc'"),
        ("---", "FR", "not a phone number: '---'"),
        ("+999123456", "FR", "unknown country calling code: '+999123456'"),
        ("0123456789", "XX", "unknown region 'XX', cannot read the national number '0123456789'"),
        ("+" + "1" * 30, "FR", "too long to be a phone number: '+" + "1" * 30 + "'"),
        ("x" * 5000, "FR", "too long to be a phone number: '" + "x" * 40 + "…'"),
    ],
)
def test_invalid_call_numbers_say_why(raw: str, region: str, reason: str) -> None:
    assert read_call_number(raw, region) == CallNumber(NumberKind.INVALID, reason=reason)


@PROPERTY
@given(raw=st.text(max_size=300), region=st.sampled_from([*SOME_REGIONS, "XX", "", "fr"]))
@example(raw="\x00", region="FR")
@example(raw="+" + "9" * 250, region="FR")
@example(raw="tel:;phone-context=", region="FR")
@example(raw="sip:@", region="FR")
def test_call_path_never_raises(raw: str, region: str) -> None:
    number = read_call_number(raw, region)
    assert isinstance(number.kind, NumberKind)
    if number.kind is NumberKind.NUMBER:
        assert number.digits.isascii() and number.digits.isdigit()
        assert number.digits[0] != "0"
        assert number.reason == ""
    else:
        assert number.digits == ""
        assert number.reason
        assert "\n" not in number.reason
    # never raises either; and what it exempts is all ASCII digits once cleaned (with
    # at most a leading +), and short: no short number is near E.164's length
    if is_never_blocked_outbound(raw, region):
        cleaned = _clean(raw).removeprefix("+")
        assert cleaned.isascii() and cleaned.isdigit() and len(cleaned) <= 12 + 3


_PHONEY = st.text(alphabet="+0123456789 -().*/#xtelsip:@;=", max_size=30)


@PROPERTY
@given(raw=_PHONEY, region=st.sampled_from(SOME_REGIONS))
def test_call_path_never_raises_on_phone_like_text(raw: str, region: str) -> None:
    read_call_number(raw, region)
    is_never_blocked_outbound(raw, region)


@st.composite
def e164_like(draw: st.DrawFn) -> str:
    """``+`` and digits near real numbers: an example number of any region with its
    tail replaced, or random digits."""
    if draw(st.booleans()):
        base = draw(st.sampled_from(EXAMPLES))
        keep = draw(st.integers(1, len(base)))
        tail = draw(st.text(alphabet="0123456789", max_size=6))
        return "+" + base[:keep] + tail
    return "+" + draw(st.text(alphabet="0123456789", min_size=1, max_size=18))


@PROPERTY
@given(raw=e164_like(), region=st.sampled_from(REGIONS))
@example(raw="+330123456789", region="FR")
@example(raw="+78123456789", region="RU")
@example(raw="+0033123456789", region="FR")
@example(raw="+5491123456789", region="AR")
def test_fast_call_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    expected = oracle(raw, region)
    number = read_call_number(raw, region)
    assert number.kind is expected.kind
    assert number.digits == expected.digits


# -- entries: exact numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "digits"),
    [
        ("+33123456789", "FR", "33123456789"),
        ("+33 1 23 45 67 89", "US", "33123456789"),
        ("01 23 45 67 89", "FR", "33123456789"),
        ("0033 1 23 45 67 89", "FR", "33123456789"),
        ("(202) 555-0100", "US", "12025550100"),
        ("+1 202-555-0100", "FR", "12025550100"),
        ("011 33 1 23 45 67 89", "US", "33123456789"),
        ("tel:+1-202-555-0100;ext=1", "FR", "12025550100"),
        ("sip:+33123456789@host;user=phone", "US", "33123456789"),
        ("+44 (0)20 7946 0000", "GB", "442079460000"),
        ("+39 06 1234 5678", "FR", "390612345678"),
    ],
)
def test_entry_exact_numbers(raw: str, region: str, digits: str) -> None:
    expected = EntryKey(digits, is_prefix=False)
    assert parse_entry(raw, region) == expected
    assert parse_entry_fast(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("0123", "FR", "not a valid number for FR: '0123'; a prefix ends in '*': '0123*'"),
        ("+3312", "FR", "not a valid number: '+3312'; a prefix ends in '*': '+3312*'"),
        ("+33", "US", "not a phone number: '+33'; a prefix ends in '*': '+33*'"),
        ("+33023456789", "FR", "not a valid number: '+33023456789'"),
        ("abc", "FR", "not a phone number: 'abc'"),
        ("anonymous", "FR", "not a phone number: 'anonymous'"),
        ("", "FR", "empty number: ''"),
        ("  ", "FR", "empty number: '  '"),
        ("+999123456", "FR", "unknown country calling code: '+999123456'"),
        ("+33 1 23*45", "FR", "'*' may only end a prefix: '+33 1 23*45'"),
        (
            "0612345678",
            "XX",
            "unknown region 'XX', cannot read the national number '0612345678'",
        ),
        # the call prefix of the default region, not another's
        (
            "0033 1 23 45 67 89",
            "US",
            "not a valid number for US: '0033 1 23 45 67 89' "
            "(international numbers are written +… or 011… from US)",
        ),
        (
            "011 33 1 23 45 67 89",
            "FR",
            "not a valid number for FR: '011 33 1 23 45 67 89' "
            "(international numbers are written +… or 00… from FR)",
        ),
    ],
)
def test_entry_invalid_numbers_say_why(raw: str, region: str, message: str) -> None:
    with pytest.raises(InvalidNumber) as slow:
        parse_entry(raw, region)
    assert str(slow.value) == message
    with pytest.raises(InvalidNumber) as fast:
        parse_entry_fast(raw, region)
    assert str(fast.value) == message


# -- entries: prefixes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "digits"),
    [
        ("+33*", "FR", "33"),
        ("+33*", "US", "33"),
        ("+1*", "US", "1"),  # all of NANP: explicit, so accepted
        ("+1900*", "FR", "1900"),
        ("+1 900*", "FR", "1900"),
        ("+1-900-*", "FR", "1900"),
        ("0033*", "FR", "33"),
        ("00 33 6*", "FR", "336"),
        ("011 44*", "US", "44"),
        ("0011 61*", "AU", "61"),
        ("0014 61 2*", "AU", "612"),
        ("0800*", "FR", "33800"),
        ("06*", "FR", "336"),
        ("6*", "FR", "336"),
        ("1900*", "US", "1900"),
        ("900*", "US", "1900"),
        ("tel:+33*", "FR", "33"),
        ("+800*", "FR", "800"),  # a non-geographic country code
        ("+331234567890123*", "FR", "331234567890123"),  # 15 digits
    ],
)
def test_entry_prefixes(raw: str, region: str, digits: str) -> None:
    expected = EntryKey(digits, is_prefix=True)
    assert parse_entry(raw, region) == expected
    assert parse_entry_fast(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("*", "FR", "'*' would match every number; write a country code, e.g. '+33*'"),
        ("+*", "FR", "'+*' would match every number; write a country code, e.g. '+33*'"),
        (" + * ", "FR", "' + * ' would match every number; write a country code, e.g. '+33*'"),
        (
            "00*",
            "FR",
            "'00*' is only the international prefix of FR; "
            "write a country code after it, e.g. '0033*'",
        ),
        (
            "0*",
            "FR",
            "'0*' is only the national prefix of FR; write '+33*' to match every number of FR",
        ),
        (
            "1*",
            "US",
            "'1*' is only the national prefix of US; write '+1*' to match every number of US",
        ),
        (
            "+3*",
            "FR",
            "a prefix must hold a whole country calling code: '+3*' stops inside one",
        ),
        (
            "0033*",
            "US",
            "'0033*' is no prefix of US numbers (none starts with 0 after the national "
            "prefix); international prefixes are written +… or 011… from US, e.g. '+33*'",
        ),
        (
            "1 0044*",
            "US",
            "'1 0044*' is no prefix of US numbers (none starts with 0 after the national "
            "prefix); international prefixes are written +… or 011… from US, e.g. '+44*'",
        ),
        ("+999*", "FR", "unknown country calling code: '+999*'"),
        ("+0*", "FR", "unknown country calling code: '+0*'"),
        ("+033*", "FR", "unknown country calling code: '+033*'"),
        ("+3312345678901234*", "FR", "a prefix has at most 15 digits: '+3312345678901234*'"),
        ("+33abc*", "FR", "a prefix is '+' and digits then '*': '+33abc*'"),
        ("abc*", "FR", "a prefix is digits then '*': 'abc*'"),
        ("0800*", "XX", "unknown region 'XX', cannot read the national prefix '0800*'"),
        (
            "+44 (0)20*",
            "GB",
            "write the prefix without '(0)', as dialed after the country code: '+44 (0)20*'",
        ),
    ],
)
def test_entry_invalid_prefixes_say_why(raw: str, region: str, message: str) -> None:
    with pytest.raises(InvalidNumber) as slow:
        parse_entry(raw, region)
    assert str(slow.value) == message
    with pytest.raises(InvalidNumber) as fast:
        parse_entry_fast(raw, region)
    assert str(fast.value) == message


@PROPERTY
@given(base=st.sampled_from(EXAMPLES), data=st.data())
def test_prefix_forms_agree(base: str, data: st.DataObject) -> None:
    """A prefix of a real number reads the same as ``+…*``, ``00…*`` from FR, and
    in national form from the number's own region."""
    number = phonenumbers.parse("+" + base)
    code = str(number.country_code)
    size = data.draw(st.integers(len(code), len(base)), label="size")
    digits = base[:size]
    expected = EntryKey(digits, is_prefix=True)
    assert parse_entry("+" + digits + "*", "US") == expected
    assert parse_entry("00 " + digits + "*", "FR") == expected
    assert parse_entry("011-" + digits + "*", "US") == expected
    if code == "33" and size > len(code):
        assert parse_entry("0" + digits[2:] + "*", "FR") == expected


@PROPERTY
@given(raw=st.text(max_size=40), region=st.sampled_from(SOME_REGIONS))
def test_prefixes_are_well_formed(raw: str, region: str) -> None:
    try:
        key = parse_entry(raw + "*", region)
    except InvalidNumber:
        return
    assert key.is_prefix
    assert key.digits.isascii() and key.digits.isdigit()
    assert 1 <= len(key.digits) <= 15
    assert any(
        key.digits.startswith(str(code)) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    )


# -- parse_entry_fast == parse_entry -------------------------------------------------


@pytest.mark.parametrize("digits", EXAMPLES)
def test_fast_entry_agrees_on_every_example_number(digits: str) -> None:
    raw = "+" + digits
    assert outcome(parse_entry_fast, raw, "FR") == outcome(parse_entry, raw, "FR")
    assert outcome(parse_entry_fast, raw, "FR")[0] == "ok"


@st.composite
def entry_like(draw: st.DrawFn) -> str:
    """Canonical and non-canonical entries: +E.164, prefixes, spaced, IDD, national,
    URIs, junk."""
    number = draw(e164_like())
    shape = draw(st.integers(0, 7))
    if shape == 0:
        return number
    if shape == 1:
        return number[: draw(st.integers(1, len(number)))] + "*"
    if shape == 2:
        return "00" + number[1:]
    if shape == 3:
        return "0" + number[3:]
    if shape == 4:
        return " ".join(number[i : i + 3] for i in range(0, len(number), 3))
    if shape == 5:
        return "tel:" + number + ";ext=12"
    if shape == 6:
        return draw(_PHONEY)
    return draw(st.text(max_size=20))


@PROPERTY
@given(raw=entry_like(), region=st.sampled_from(REGIONS))
@example(raw="+33123456789", region="FR")
@example(raw="+330123456789", region="FR")
@example(raw="+78123456789", region="RU")
@example(raw="+18762345678", region="US")
@example(raw="+441534456789", region="GB")
@example(raw="+3906698", region="IT")
@example(raw="+*", region="FR")
@example(raw="+0*", region="FR")
@example(raw="+0033123456789", region="FR")
def test_fast_entry_agrees_with_parse_entry(raw: str, region: str) -> None:
    assert outcome(parse_entry_fast, raw, region) == outcome(parse_entry, raw, region)


@PROPERTY
@given(raw=e164_like(), region=st.sampled_from(REGIONS))
def test_exact_entries_are_valid_numbers(raw: str, region: str) -> None:
    try:
        key = parse_entry_fast(raw, region)
    except InvalidNumber:
        return
    assert not key.is_prefix
    assert phonenumbers.is_valid_number(phonenumbers.parse(key.display))
    assert read_call_number(key.display, region).digits == key.digits


# -- outbound exemptions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("112", "FR"),
        ("15", "FR"),
        ("17", "FR"),
        ("18", "FR"),
        ("114", "FR"),
        ("115", "FR"),
        ("119", "FR"),
        ("3949", "FR"),
        ("1 1 2", "FR"),
        ("tel:112", "FR"),
        ("sip:112@pbx", "FR"),
        ("+33112", "FR"),
        ("911", "US"),
        ("411", "US"),
        ("112", "US"),
        ("999", "GB"),
        ("112", "GB"),
        ("000", "AU"),
        ("110", "DE"),
        ("112", "fr"),
    ],
)
def test_never_blocked_outbound(raw: str, region: str) -> None:
    assert is_never_blocked_outbound(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("0123456789", "FR"),
        ("+33123456789", "FR"),
        ("0033112", "FR"),
        ("+1911", "FR"),  # not the region's country code
        ("2025550100", "US"),
        ("911 555 0100", "US"),  # starts like 911, but is longer
        ("1120", "FR"),
        ("112112112112", "FR"),
        ("abc", "FR"),
        ("", "FR"),
        ("112", "XX"),
    ],
)
def test_not_never_blocked_outbound(raw: str, region: str) -> None:
    assert not is_never_blocked_outbound(raw, region)


@pytest.mark.parametrize("region", SOME_REGIONS)
def test_ordinary_numbers_are_never_exempt(region: str) -> None:
    checked = 0
    for kind in range(12):
        number = phonenumbers.example_number_for_type(region, kind)
        if number is None:
            continue
        for fmt in (phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.E164):
            dialed = phonenumbers.format_number(number, fmt)
            assert not is_never_blocked_outbound(dialed, region), dialed
            checked += 1
    assert checked >= 4


def test_no_national_number_starts_with_0_where_there_is_a_national_prefix() -> None:
    """The fact behind refusing ``0033*`` under US: in every region with a national
    prefix, no national number starts with 0 (phonenumbers' examples of every type)."""
    from phonenumbers import PhoneMetadata, PhoneNumberType

    checked = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None or not metadata.national_prefix:
            continue
        for kind in PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            checked += 1
            assert not phonenumbers.national_significant_number(example).startswith("0"), (
                region,
                kind,
            )
    assert checked > 500


# -- inbound caller IDs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "digits", "stripped"),
    [
        ("+33123456789", "33123456789", ""),
        ("+33123456789abc", "33123456789", "abc"),
        ("+33123456789#", "33123456789", "#"),
        ("+33123456789:5060", "33123456789", ":5060"),
        ("+33123456789@host", "33123456789", "@host"),
        ("+33123456789;tag=x", "33123456789", ";tag=x"),
        ("sip:+33123456789@h;user=phone", "33123456789", "@h;user=phone"),
        ("<tel:+33123456789;ext=2>", "33123456789", ";ext=2"),
        ("01 23 45 67 89 x", "33123456789", "x"),
        ("+1 (415) 555-0100 ext 3", "14155550100", "ext 3"),
        ("1800FLOWERS", "331800", "FLOWERS"),
    ],
)
def test_inbound_reads_the_leading_number_and_never_converts_letters(
    raw: str, digits: str, stripped: str
) -> None:
    number = read_inbound_number(raw, "FR")
    assert (number.kind, number.digits, number.stripped) == (NumberKind.NUMBER, digits, stripped)


def test_inbound_without_a_leading_number() -> None:
    assert read_inbound_number("abc", "FR").kind is NumberKind.INVALID
    assert read_inbound_number("abc+33123456789", "FR").kind is NumberKind.INVALID
    assert read_inbound_number("anonymous", "FR").reason == "anonymous caller"
    assert read_inbound_number("", "FR").reason == "no number"
    assert read_inbound_number("x" * 5000, "FR").kind is NumberKind.INVALID


@PROPERTY
@given(
    digits=st.sampled_from(["33123456789", "14155550100", "447911123456", "4930123456"]),
    tail=st.text(min_size=1, max_size=30).filter(
        lambda t: not (t[0].isdigit() or t[0].isspace() or t[0] in "-./()")
    ),
)
def test_inbound_number_is_the_same_whatever_trails_it(digits: str, tail: str) -> None:
    number = read_inbound_number(f"+{digits}{tail}", "FR")
    assert (number.kind, number.digits) == (NumberKind.NUMBER, digits)
