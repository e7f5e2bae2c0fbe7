"""Campaign names: the one validator for every way a campaign name comes in (the
dialplan's third AGI argument, the CLI, the HTTP API). Pure code, no I/O.

A campaign name is 1 to :data:`MAX_CAMPAIGN_NAME` (64) characters from
:data:`CAMPAIGN_CHARS` — ASCII letters and digits, then also ``_ . - : @ + /`` — and
starts with a letter or digit. A name is a Redis key fragment and a field of the
per-day counters, so the bound and the character set keep the memory a hostile
dialplan argument can take bounded: on the call path, any other value is screened
with the global lists only and logged (attempt log, counters) as campaign
:data:`INVALID_CAMPAIGN` (``~invalid``, which no valid name can be).
"""

from __future__ import annotations

import re

from callscreen.core.errors import InvalidName

__all__ = [
    "CAMPAIGN_CHARS",
    "INVALID_CAMPAIGN",
    "MAX_CAMPAIGN_NAME",
    "call_campaign",
    "check_campaign",
    "valid_campaign",
]

MAX_CAMPAIGN_NAME = 64
CAMPAIGN_CHARS = "ASCII letters and digits, and _ . - : @ + / after the first character"
INVALID_CAMPAIGN = "~invalid"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-:@+/]{0,63}")  # 64 = MAX_CAMPAIGN_NAME


def valid_campaign(name: str) -> bool:
    """Whether ``name`` is a valid campaign name."""
    return _NAME.fullmatch(name) is not None


def check_campaign(name: str) -> str:
    """``name`` if it is a valid campaign name; else :class:`InvalidName` saying why."""
    if valid_campaign(name):
        return name
    if not name:
        raise InvalidName("campaign name must not be empty")
    if len(name) > MAX_CAMPAIGN_NAME:
        raise InvalidName(f"campaign name is longer than {MAX_CAMPAIGN_NAME} characters")
    raise InvalidName(f"campaign name must be {CAMPAIGN_CHARS}")


def call_campaign(raw: str) -> str:
    """A call's campaign as the call path keeps it: ``""`` for none, the name if valid,
    else :data:`INVALID_CAMPAIGN`."""
    name = raw.strip()
    if not name or valid_campaign(name):
        return name
    return INVALID_CAMPAIGN
