"""Free text from admins and files (reasons, descriptions, names, external ids): the
one check every front end and the importer apply. Pure, no I/O."""

from __future__ import annotations

import unicodedata

from callscreen.core.errors import InvalidInput


def free_text(
    value: str, what: str, limit: int, *, error: type[InvalidInput] = InvalidInput
) -> str:
    """``value`` unchanged if it has at most ``limit`` characters and no control
    characters (tab, newline and the rest of Unicode's ``Cc``); ``error`` naming
    ``what`` otherwise."""
    if len(value) > limit:
        raise error(f"{what} is longer than {limit} characters")
    # isprintable() is the fast path: most text has no character it refuses at all
    if not value.isprintable() and any(unicodedata.category(ch) == "Cc" for ch in value):
        raise error(f"{what} must not contain control characters")
    return value
