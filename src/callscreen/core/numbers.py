"""Phone numbers as callscreen reads them: E.164 digits, prefixes, anonymous callers.
Pure functions over strings, no I/O.

Every input first goes through the same cleanup:

- surrounding whitespace and one pair of ``<…>`` are dropped;
- a ``tel:`` URI keeps what is before its first ``;`` (``;ext=``, ``;phone-context=``
  and other parameters are dropped); a ``sip:``/``sips:`` URI (or any text with an
  ``@``) keeps its user part, without ``;`` parameters; schemes are case-insensitive
  and ``%xx`` escapes are decoded;
- whitespace and the separators ``- . ( ) /`` are removed.

``+…`` is international. The international call prefix (IDD) *of the default region*
also means international (``00`` in FR, ``011`` in US, ``0011``/``0014``… in AU: the
regex of the phonenumbers metadata). Anything else is a national number of the
default region. So ``0033 1 23 45 67 89`` is ``+33123456789`` from FR, but from US it
is a (meaningless) US national number, and ``011 33 1 23 45 67 89`` from FR is a
French national number starting ``011``, not ``+33…``.

Outcomes
--------
The call path (:func:`read_call_number`) never raises, whatever the string:

- an anonymous marker (``anonymous``, ``unknown``, ``restricted``, ``private``,
  ``withheld``, ``unavailable``, any case, also as the user part of a SIP URI such as
  ``sip:anonymous@anonymous.invalid``) gives ``ANONYMOUS`` with reason
  ``"anonymous caller"``; an empty or blank string gives ``ANONYMOUS`` with reason
  ``"no number"``;
- anything :func:`phonenumbers.parse` accepts gives ``NUMBER`` with its E.164 digits,
  *valid or not*: a spoofed or short caller ID must still be able to match a prefix;
- anything else gives ``INVALID`` with a reason such as ``"not a phone number: 'abc'"``
  or ``"unknown country calling code: '+999123456'"``. The screening layer treats it
  like an anonymous caller (the configured policy).

Entries (:func:`parse_entry`, :func:`parse_entry_fast`) are strict and raise
:class:`~callscreen.core.errors.InvalidNumber` with a message naming the input:

- an exact number must be a *valid* number (``phonenumbers.is_valid_number``):
  ``"not a valid number for FR: '0123'"``, ``"not a valid number: '+3312'"``,
  ``"not a phone number: 'abc'"``;
- a prefix ends with ``*`` (``+33*``, ``+1900*``, ``0033*`` with the region's IDD,
  ``0800*`` national → ``+33800*`` from FR). phonenumbers cannot read partial numbers,
  so a prefix has its own rule: only digits after cleanup, 1 to 15 of them, starting
  with a real country calling code. A national prefix loses the region's national
  (trunk) prefix if it starts with it and gains the region's country code. ``*``,
  ``+*``, a bare IDD (``00*``) or a bare national prefix (``0*``) would match far
  more than meant and are refused; so is ``(0)`` inside a prefix (``+44 (0)20*``),
  which is ambiguous (the 0 is dropped for the UK, kept for Italy). ``+1*`` (all of
  NANP) is accepted: it is explicit.

Speed
-----
Measured with ``timeit`` on one core of the development machine (±15 %; MEASURED.md's
machine is about 2x slower)::

    read_call_number("+33123456789", "FR")       fast path       1.4 µs   700k/s
    read_call_number("sip:+33…@h;user=phone")    fast path       3.1 µs   320k/s
    read_call_number("01 23 45 67 89", "FR")     phonenumbers     17 µs    60k/s
    read_call_number("+78123456789", "RU")       phonenumbers     17 µs    60k/s
    parse_entry_fast, 100k distinct +336…        fast path       2.9 µs   340k/s
    parse_entry, the same                        phonenumbers     20 µs    49k/s
    parse_entry_fast, 100k distinct +1… (NANP)   fast path       7.4 µs   135k/s
    parse_entry, the same                        phonenumbers     39 µs    26k/s
    parse_entry_fast("+33*") / parse_entry                 1.3 µs / 2.3 µs
    is_never_blocked_outbound("112", "FR")                       3.8 µs

The fast paths only take ``+`` followed by 7 to 15 ASCII digits starting with a known
country calling code, whose national part does not start with what phonenumbers
would try to strip as that country's national prefix (``+33 0 1…`` is read as
``+33 1…``). For that input :func:`phonenumbers.parse` provably keeps every digit, so
the E.164 digits are the input's; validity is then checked against the phonenumbers
metadata compiled once per country code, with the same rules as
``phonenumbers.is_valid_number``. Everything else goes through phonenumbers. Exact
equivalence with the phonenumbers route is checked by property tests. NANP numbers
cost more because, like phonenumbers, we try its 25 regions in turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from urllib.parse import unquote

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberDesc,
    shortnumberinfo,
)

from callscreen.core.errors import InvalidNumber

__all__ = [
    "CallNumber",
    "EntryKey",
    "NumberKind",
    "is_anonymous_marker",
    "is_never_blocked_outbound",
    "parse_entry",
    "parse_entry_fast",
    "read_call_number",
]

ANONYMOUS_MARKERS = frozenset(
    {"anonymous", "unknown", "restricted", "private", "withheld", "unavailable"}
)

MAX_PREFIX_DIGITS = 15  # E.164: at most 15 digits, country code included
MAX_INPUT_CHARS = 1024  # longer text is refused before any work (phonenumbers stops at 250)
_SHOW_CHARS = 40  # how much of a bad input an error message quotes

_SEPARATORS = str.maketrans("", "", "-.()/")
# ASCII digits only: other Unicode digits (full-width, Arabic-Indic) go to phonenumbers,
# which normalises them.
_CANONICAL = re.compile(r"\+([1-9][0-9]{6,14})")
_CANONICAL_PREFIX = re.compile(r"\+([0-9]*)\*")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_PAREN_ZERO = re.compile(r"\(\s*0\s*\)")
_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


class NumberKind(StrEnum):
    """What the call path made of a caller ID or dialed number."""

    NUMBER = "number"
    ANONYMOUS = "anonymous"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class CallNumber:
    """The number of a call as screened. Built by :func:`read_call_number`."""

    kind: NumberKind
    digits: str = ""  # E.164 digits without '+', e.g. "33123456789"; '' unless NUMBER
    reason: str = ""  # why ANONYMOUS or INVALID, human readable
    stripped: str = ""  # inbound: what trailed the leading number and was not screened

    @property
    def e164(self) -> str:
        """``+33123456789``, or ``''`` when there is no number."""
        return "+" + self.digits if self.digits else ""


@dataclass(frozen=True, slots=True)
class EntryKey:
    """An entry of a list: an exact number or a prefix, as E.164 digits without ``+``."""

    digits: str  # "33123456789", or "33" for the prefix +33*
    is_prefix: bool

    @property
    def display(self) -> str:
        """The entry as users write it: ``+33123456789`` or ``+33*``."""
        return "+" + self.digits + ("*" if self.is_prefix else "")


# -- cleanup -------------------------------------------------------------------------


def _user_part(raw: str) -> str:
    """The number-bearing part of ``raw``: URI scheme, host and parameters removed."""
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    head = text[:5].lower()
    if head.startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    elif head.startswith(("sip:", "sips:")):
        text = text[4 if head.startswith("sip:") else 5 :]
        # sip:user;userparams@host;uriparams?headers - with no '@' there is no user
        # part; we leniently read the host as one (sip:1234).
        text = text.split("@", 1)[0].split(";", 1)[0].split("?", 1)[0]
    elif "@" in text:
        text = text.split("@", 1)[0]
    if "%" in text:
        text = unquote(text)
    return text.strip()


def _strip_separators(text: str) -> str:
    return "".join(text.split()).translate(_SEPARATORS)


def _clean(raw: str) -> str:
    """``raw`` without URI syntax, whitespace and separators."""
    return _strip_separators(_user_part(raw))


def _show(raw: str) -> str:
    """``raw`` quoted for a message, cut short if long."""
    if len(raw) > _SHOW_CHARS:
        return repr(raw[:_SHOW_CHARS] + "…")
    return repr(raw)


# -- region and country data ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country_code: str
    idd: re.Pattern[str] | None  # the international call prefix, as a regex
    idd_display: str  # e.g. "00", "011"
    national_prefix: str  # e.g. "0", "1", "" when the region has none


@lru_cache(maxsize=64)
def _region(region: str) -> _Region | None:
    code = region.upper()
    metadata = PhoneMetadata.metadata_for_region(code, None)
    if metadata is None or metadata.country_code is None:
        return None
    idd = metadata.international_prefix
    display = metadata.preferred_international_prefix or idd or ""
    if not display.isdigit():
        display = ""
    return _Region(
        code=code,
        country_code=str(metadata.country_code),
        idd=re.compile(idd) if idd else None,
        idd_display=display.replace("~", ""),
        national_prefix=metadata.national_prefix or "",
    )


def _split_country_code(digits: str) -> tuple[str, str] | None:
    """``(country code, rest)`` of E.164 digits, or None. Country codes are prefix-free,
    so at most one of the first 1, 2 or 3 digits is one (phonenumbers takes the first)."""
    for size in (1, 2, 3):
        if digits[:size] in _COUNTRY_CODES:
            return digits[:size], digits[size:]
    return None


@cache
def _leading(first_digits: str) -> tuple[int, re.Pattern[str] | None] | None:
    """For the first three digits of ``+digits``: the length of their country code and
    the national prefix pattern phonenumbers would try after it, or None if they hold
    no country code. Memoised: at most 900 keys."""
    split = _split_country_code(first_digits)
    if split is None:
        return None
    country_code = int(split[0])
    main_region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region)
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return len(split[0]), re.compile(pattern) if pattern else None


def _fast_split(digits: str) -> tuple[str, str] | None:
    """Country code and national part of ``+digits`` when phonenumbers keeps every
    digit, else None (then ask phonenumbers).

    ``digits`` is 7-15 ASCII digits not starting with 0 (``_CANONICAL``). For such
    input phonenumbers.parse takes the first 1-3 digits that are a country code, as
    here; extensions, IDDs and length errors cannot occur; the only change it may
    make to the rest is stripping a national prefix, which it tries only when the
    national prefix pattern of the country code's main region matches the start of
    the rest: then we step aside.
    """
    leading = _leading(digits[:3])
    if leading is None:
        return None
    size, pattern = leading
    national = digits[size:]
    if pattern is not None and pattern.match(national) is not None:
        return None
    return digits[:size], national


@dataclass(frozen=True, slots=True)
class _Desc:
    """One PhoneNumberDesc, compiled: phonenumbers' ``_is_number_matching_desc``."""

    lengths: frozenset[int]  # empty: any length
    pattern: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern.fullmatch(nsn) is not None


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(frozenset(desc.possible_length), re.compile(desc.national_number_pattern))


@dataclass(frozen=True, slots=True)
class _RegionRules:
    """The validity rules of one region, compiled: phonenumbers' ``_number_type_helper``
    is not UNKNOWN exactly when the general description and one type match."""

    leading_digits: re.Pattern[str] | None
    general: _Desc | None
    types: tuple[_Desc, ...]

    def valid(self, nsn: str) -> bool:
        general = self.general
        if general is None or not general.matches(nsn):
            return False
        return any(desc.matches(nsn) for desc in self.types)


def _rules(metadata: PhoneMetadata) -> _RegionRules:
    descs = [
        metadata.fixed_line,
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        descs.insert(1, metadata.mobile)  # phonenumbers never looks at it otherwise
    leading = metadata.leading_digits
    return _RegionRules(
        leading_digits=re.compile(leading) if leading is not None else None,
        general=_desc(metadata.general_desc),
        types=tuple(d for d in (_desc(desc) for desc in descs) if d is not None),
    )


@cache
def _validator(country_code: str) -> tuple[_RegionRules, ...] | _RegionRules | None:
    """What ``phonenumbers.is_valid_number`` checks for this country code: the rules of
    its one region, or those of its regions in order (NANP, +44, +7, …), or None when
    nothing is valid."""
    code = int(country_code)
    regions = COUNTRY_CODE_TO_REGION_CODE[code]
    if len(regions) == 1:
        region = regions[0]
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
        if metadata is None or (
            region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
            and code != phonenumbers.country_code_for_valid_region(region)
        ):
            return None
        return _rules(metadata)
    found = (PhoneMetadata.metadata_for_region(region.upper(), None) for region in regions)
    return tuple(_rules(metadata) for metadata in found if metadata is not None)


def _fast_valid(country_code: str, nsn: str) -> bool:
    """``phonenumbers.is_valid_number`` of ``+CC NSN`` (the national significant number,
    leading zeros included) without building a PhoneNumber: about 1 µs instead of 7.

    With several regions on one code, phonenumbers picks the region first (the first
    whose leading digits match, or failing those the first the number is valid for),
    then checks validity for that region only; so do we.
    """
    rules = _validator(country_code)
    if rules is None:
        return False
    if isinstance(rules, _RegionRules):
        return rules.valid(nsn)
    for region_rules in rules:
        if region_rules.leading_digits is not None:
            if region_rules.leading_digits.match(nsn) is not None:
                return region_rules.valid(nsn)
        elif region_rules.valid(nsn):
            return True
    return False


def _phone_number(country_code: str, national: str) -> PhoneNumber:
    """The PhoneNumber phonenumbers.parse builds for this national significant number,
    leading zeros included (as in ``_set_italian_leading_zeros_for_phone_number``)."""
    number = PhoneNumber(country_code=int(country_code), national_number=int(national))
    if len(national) > 1 and national[0] == "0":
        number.italian_leading_zero = True
        zeros = 1
        # the last digit of an all-zero number is not a leading zero
        while zeros < len(national) - 1 and national[zeros] == "0":
            zeros += 1
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


def _e164_digits(number: PhoneNumber) -> str:
    return str(number.country_code) + phonenumbers.national_significant_number(number)


def _parse_failure(exc: NumberParseException, raw: str, cleaned: str, region: str) -> str:
    """A sentence saying why phonenumbers could not read ``raw``."""
    shown = _show(raw)
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        if not cleaned.startswith("+") and _region(region) is None:
            return f"unknown region {region!r}, cannot read the national number {shown}"
        return f"unknown country calling code: {shown}"
    if kind == NumberParseException.TOO_SHORT_AFTER_IDD:
        return f"too short after the international prefix: {shown}"
    if kind == NumberParseException.TOO_SHORT_NSN:
        return f"too short to be a phone number: {shown}"
    if kind == NumberParseException.TOO_LONG:
        return f"too long to be a phone number: {shown}"
    return f"not a phone number: {shown}"


# -- call path -----------------------------------------------------------------------


def is_anonymous_marker(raw: str) -> bool:
    """Whether ``raw`` says there is no number: empty or blank, or one of
    ``anonymous``, ``unknown``, ``restricted``, ``private``, ``withheld``,
    ``unavailable`` (any case, also as the user part of a SIP URI)."""
    user = _user_part(raw)
    return not user or user.lower() in ANONYMOUS_MARKERS


def read_call_number(raw: str, region: str) -> CallNumber:
    """The number of a call, from a caller ID or dialed string. Never raises.

    ``+`` and 7-15 digits take a fast path (~1.4 µs) that gives the same digits as
    phonenumbers; other input costs a phonenumbers parse (~15 µs).
    """
    try:
        return _fast_number(raw) or _read(raw, region)
    except Exception as exc:  # the call path never raises; phonenumbers has surprises
        return CallNumber(
            NumberKind.INVALID, reason=f"unreadable number {_show(raw)}: {type(exc).__name__}"
        )


def _fast_number(text: str) -> CallNumber | None:
    """The number of canonical ``text`` (``+`` and 7-15 digits), when phonenumbers
    would read every digit of it (see ``_fast_split``); else None."""
    match = _CANONICAL.fullmatch(text)
    if match is None or _fast_split(match.group(1)) is None:
        return None
    return CallNumber(NumberKind.NUMBER, match.group(1))


def _read(raw: str, region: str) -> CallNumber:
    if len(raw) > MAX_INPUT_CHARS:
        return CallNumber(NumberKind.INVALID, reason=f"too long to be a phone number: {_show(raw)}")
    user = _user_part(raw)
    if not user:
        return CallNumber(NumberKind.ANONYMOUS, reason="no number")
    if user.lower() in ANONYMOUS_MARKERS:
        return CallNumber(NumberKind.ANONYMOUS, reason="anonymous caller")
    cleaned = _strip_separators(user)
    fast = _fast_number(cleaned)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(cleaned, region)
    except NumberParseException as exc:
        return CallNumber(NumberKind.INVALID, reason=_parse_failure(exc, raw, cleaned, region))
    return CallNumber(NumberKind.NUMBER, _e164_digits(number))


# An inbound caller ID's leading number: an optional "+" (after any opening
# parenthesis), then a digit, then digits and the separators a person writes.
_LEADING_NUMBER = re.compile(r"[\s(]*\+?[\s(]*[0-9][0-9\s\-.()/]*")
_URI_SCHEME = re.compile(r"(?i)(?:sips?|tel):")


def read_inbound_number(raw: str, region: str) -> CallNumber:
    """The number of an inbound caller ID. Never raises.

    Unlike :func:`read_call_number` (for numbers the PBX dials, where ``1800FLOWERS``
    is a real number to dial), letters are never read as keypad digits: a caller
    chooses its caller ID, and ``+33123456789abc`` must not become another number.
    The *leading number* is screened — ``+`` or a digit, then digits and separators —
    whatever trails it (``;…``, ``#``, ``:5060``, ``@host``, letters); what trailed is
    kept in :attr:`CallNumber.stripped` for the attempt log. A caller ID with no
    leading number (``abc``) is INVALID; anonymous markers and an empty caller ID are
    read as by :func:`read_call_number`.
    """
    try:
        fast = _fast_number(raw)
        if fast is not None:
            return fast
        if len(raw) > MAX_INPUT_CHARS:
            return CallNumber(
                NumberKind.INVALID, reason=f"too long to be a phone number: {_show(raw)}"
            )
        user = _user_part(raw)
        if not user:
            return CallNumber(NumberKind.ANONYMOUS, reason="no number")
        if user.lower() in ANONYMOUS_MARKERS:
            return CallNumber(NumberKind.ANONYMOUS, reason="anonymous caller")
        body = raw.strip()
        if body.startswith("<"):
            body = body[1:].strip()
        scheme = _URI_SCHEME.match(body)
        if scheme is not None:
            body = body[scheme.end() :]
        if "%" in body:
            body = unquote(body)
        leading = _LEADING_NUMBER.match(body)
        if leading is None:
            return CallNumber(NumberKind.INVALID, reason=f"not a phone number: {_show(raw)}")
        text = leading.group().rstrip()
        stripped = body[len(text) :].strip()
        if stripped.endswith(">") and raw.strip().startswith("<"):
            stripped = stripped[:-1].rstrip()
        number = _read(text, region)
        if number.kind is NumberKind.NUMBER and stripped:
            return CallNumber(NumberKind.NUMBER, number.digits, stripped=stripped)
        return number
    except Exception as exc:  # the call path never raises; phonenumbers has surprises
        return CallNumber(
            NumberKind.INVALID, reason=f"unreadable number {_show(raw)}: {type(exc).__name__}"
        )


# -- entries -------------------------------------------------------------------------


def parse_entry(raw: str, region: str) -> EntryKey:
    """An exact number or a ``…*`` prefix for a list, read with the default ``region``.

    Raises :class:`InvalidNumber` saying what is wrong (see the module docstring).
    """
    if len(raw) > MAX_INPUT_CHARS:
        raise InvalidNumber(f"too long to be a phone number: {_show(raw)}")
    user = _user_part(raw)
    cleaned = _strip_separators(user)
    if not cleaned:
        raise InvalidNumber(f"empty number: {_show(raw)}")
    if cleaned.endswith("*"):
        if _PAREN_ZERO.search(user):
            raise InvalidNumber(
                f"write the prefix without '(0)', as dialed after the country code: {_show(raw)}"
            )
        return _parse_prefix(cleaned[:-1], raw, region)
    if "*" in cleaned:
        raise InvalidNumber(f"'*' may only end a prefix: {_show(raw)}")
    if not (cleaned[0] == "+" or cleaned[0].isdigit()):
        raise InvalidNumber(f"not a phone number: {_show(raw)}")
    try:
        number = phonenumbers.parse(cleaned, region)
    except NumberParseException as exc:
        raise InvalidNumber(
            _parse_failure(exc, raw, cleaned, region) + _prefix_hint(cleaned)
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(_not_valid(raw, cleaned, region) + _prefix_hint(cleaned))
    return EntryKey(_e164_digits(number), is_prefix=False)


#: An entry refused as a number with at most this many digits is shown how to write it
#: as a prefix: ``+33`` was meant as ``+33*`` far more often than as a 2-digit number.
PREFIX_HINT_DIGITS = 8


def _prefix_hint(cleaned: str) -> str:
    """How to write a refused short entry as a prefix, or nothing."""
    if sum(c.isdigit() for c in cleaned) > PREFIX_HINT_DIGITS:
        return ""
    return f"; a prefix ends in '*': '{cleaned}*'"


def _not_valid(raw: str, cleaned: str, region: str) -> str:
    if cleaned.startswith("+"):
        return f"not a valid number: {_show(raw)}"
    info = _region(region)
    if info is None:  # pragma: no cover - phonenumbers refuses a national number first
        return f"not a valid number: {_show(raw)}"
    message = f"not a valid number for {info.code}: {_show(raw)}"
    if info.idd_display and len(cleaned) > 10:
        # e.g. "011 33 …" typed from FR: say how international numbers are written there
        message += (
            f" (international numbers are written +… or {info.idd_display}… from {info.code})"
        )
    return message


def _parse_prefix(body: str, raw: str, region: str) -> EntryKey:
    """A prefix entry, ``body`` being the cleaned input without its trailing ``*``."""
    if body.startswith("+"):
        digits = body[1:]
        if not digits:
            raise InvalidNumber(
                f"{_show(raw)} would match every number; write a country code, e.g. '+33*'"
            )
        if _ASCII_DIGITS.fullmatch(digits) is None:
            raise InvalidNumber(f"a prefix is '+' and digits then '*': {_show(raw)}")
        return _international_prefix(digits, raw)
    if not body:
        raise InvalidNumber(
            f"{_show(raw)} would match every number; write a country code, e.g. '+33*'"
        )
    if _ASCII_DIGITS.fullmatch(body) is None:
        raise InvalidNumber(f"a prefix is digits then '*': {_show(raw)}")
    info = _region(region)
    if info is None:
        raise InvalidNumber(
            f"unknown region {region!r}, cannot read the national prefix {_show(raw)}"
        )
    if info.idd is not None:
        # as phonenumbers does: an IDD followed by 0 is not one (country codes never
        # start with 0)
        match = info.idd.match(body)
        if match is not None:
            rest = body[match.end() :]
            if not rest:
                raise InvalidNumber(
                    f"{_show(raw)} is only the international prefix of {info.code}; "
                    f"write a country code after it, e.g. '{body}{info.country_code}*'"
                )
            if rest[0] != "0":
                return _international_prefix(rest, raw)
    national = body
    if info.national_prefix and national.startswith(info.national_prefix):
        national = national[len(info.national_prefix) :]
        if not national:
            raise InvalidNumber(
                f"{_show(raw)} is only the national prefix of {info.code}; "
                f"write '+{info.country_code}*' to match every number of {info.code}"
            )
    if info.national_prefix and national.startswith("0"):
        # No national number of a region that has a national prefix starts with 0
        # (phonenumbers' examples for every such region agree): '0033*' under US is
        # another region's international prefix, and '+10033*' cannot be what was meant.
        idd = f" or {info.idd_display}…" if info.idd_display else ""
        raise InvalidNumber(
            f"{_show(raw)} is no prefix of {info.code} numbers (none starts with 0 after "
            f"the national prefix); international prefixes are written +…{idd} "
            f"from {info.code}, e.g. '+{national.lstrip('0') or '33'}*'"
        )
    return _international_prefix(info.country_code + national, raw)


def _international_prefix(digits: str, raw: str) -> EntryKey:
    """A prefix from its E.164 digits (ASCII, at least one)."""
    if len(digits) > MAX_PREFIX_DIGITS:
        raise InvalidNumber(f"a prefix has at most {MAX_PREFIX_DIGITS} digits: {_show(raw)}")
    if _split_country_code(digits) is None:
        if digits[0] != "0" and any(code.startswith(digits) for code in _COUNTRY_CODES):
            raise InvalidNumber(
                f"a prefix must hold a whole country calling code: {_show(raw)} stops inside one"
            )
        raise InvalidNumber(f"unknown country calling code: {_show(raw)}")
    return EntryKey(digits, is_prefix=True)


def parse_entry_fast(raw: str, region: str) -> EntryKey:
    """:func:`parse_entry`, faster for canonical input (``+33123456789``, ``+33*``).

    Same verdict and same message as :func:`parse_entry` for every input. Canonical
    exact numbers (``+`` and 7-15 digits) skip cleanup and ``phonenumbers.parse``
    when it provably keeps every digit (see ``_fast_split``), and are validated by
    the compiled rules of ``_fast_valid``; canonical prefixes skip cleanup.
    Anything else is handed to :func:`parse_entry`.
    """
    match = _CANONICAL.fullmatch(raw)
    if match is not None:
        split = _fast_split(match.group(1))
        if split is not None:
            return _valid_exact(split[0], split[1], raw)
        return parse_entry(raw, region)
    match = _CANONICAL_PREFIX.fullmatch(raw)
    if match is not None:
        digits = match.group(1)
        if not digits:
            raise InvalidNumber(
                f"{_show(raw)} would match every number; write a country code, e.g. '+33*'"
            )
        return _international_prefix(digits, raw)
    return parse_entry(raw, region)


def _valid_exact(country_code: str, national: str, raw: str) -> EntryKey:
    if not _fast_valid(country_code, national):
        raise InvalidNumber(f"not a valid number: {_show(raw)}" + _prefix_hint(raw))
    return EntryKey(country_code + national, is_prefix=False)


# -- outbound exemptions -------------------------------------------------------------


def is_never_blocked_outbound(raw: str, region: str) -> bool:
    """Whether a dialed number is exempt from outbound blocking from ``region``.

    True for the region's emergency numbers (exactly, as listed in the phonenumbers
    short-number metadata: 112, 15, 17, 18 in FR; 911 in US; 999 in GB; 000 in AU)
    and for the region's valid short service numbers (411 in US, 3949 in FR, …)
    that are not also ordinary numbers. The number is read as dialed, after cleanup:
    national digits, or ``+`` and the region's own country code (``+33112``). A PBX
    outside-line prefix (``9`` then ``911``) must be stripped by the dialplan first.
    """
    info = _region(region)
    if info is None:
        return False
    cleaned = _clean(raw)
    if cleaned.startswith("+"):
        if not cleaned.startswith(info.country_code, 1):
            return False
        national = cleaned[1 + len(info.country_code) :]
    else:
        national = cleaned
    # no short number is anywhere near E.164's 15 digits (12 at most, in CN): this bound
    # only spares the metadata lookups for absurd input
    if not national or len(national) > MAX_PREFIX_DIGITS or not _ASCII_DIGITS.fullmatch(national):
        return False
    if shortnumberinfo.is_emergency_number(national, info.code):
        return True
    number = _phone_number(info.country_code, national)
    return shortnumberinfo.is_valid_short_number_for_region(
        number, info.code
    ) and not phonenumbers.is_valid_number(number)
