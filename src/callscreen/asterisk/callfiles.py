"""Asterisk call files and dial strings, read as Asterisk reads them. Pure code, no I/O.

A call file (``/var/spool/asterisk/outgoing``) is ``Key: value`` lines, read by
``pbx_spool.c``'s ``apply_outgoing``: keys are case-insensitive; ``#`` starts a
comment at the start of a line or after a blank; ``;`` starts one unless escaped as
``\\;``; lines without ``:`` are ignored. What matters here:

- ``Channel: TECH/DATA`` — whom Asterisk calls (``PJSIP/+33123456789@trunk``,
  ``Local/0123456789@outbound``, ``SIP/trunk/0033123456789``);
- ``CallerID: "name" <number>`` — the caller ID presented (in click-to-call files, the
  customer shown to the agent's phone). It is **never** a target: a caller ID is
  whatever the file's writer (or a caller, through an opt-out) says, and blocking a
  number must only cancel calls *to* it, never calls that merely show it;
- ``Extension:`` — where the answered channel goes (in click-to-call files, the
  customer's number, dialed from there);
- ``Set:``/``Setvar: NAME=value`` — channel variables (``CALLSCREEN_CAMPAIGN``; and
  ``CALLSCREEN_CALLEE``, the number a click-to-call file finally dials when its
  ``Extension`` is not that number — see :data:`CALLEE_VARIABLE`);
- ``StartRetry:`` — Asterisk writes it when an attempt starts, and ``EndRetry:`` or
  ``AbortRetry:`` when one ends: a last ``StartRetry`` means a call is in progress now,
  although Asterisk has already moved the file's time (its next-attempt time) to the
  future.

The number in a dial string is the last ``/``-separated part that holds one, without
its ``@host`` or ``@context`` and without a ``sip:``/``tel:`` scheme: ``PJSIP/trunk/
sip:+33123@host`` → ``+33123``, ``Local/0123@ctx/n`` → ``0123``, ``IAX2/u:p@host/0033…``
→ ``0033…``. Numbers are then read strictly (:func:`valid_number`): only a *valid*
number of the numbering plan counts, so that an internal extension (``101``, read as a
national number) never matches a blocked prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callscreen.core.errors import InvalidInput
from callscreen.core.numbers import parse_entry

MAX_CALL_FILE_BYTES = 64 * 1024  # a call file is a few hundred bytes; read no more than this
CAMPAIGN_VARIABLE = "CALLSCREEN_CAMPAIGN"
#: The one channel variable read as a call file's target: the number the file's call
#: finally reaches, for dialers whose ``Extension`` is a menu or a queue rather than the
#: customer's number (``Setvar: CALLSCREEN_CALLEE=+33612345678``).
CALLEE_VARIABLE = "CALLSCREEN_CALLEE"

_NUMBERISH = re.compile(r"\+?[0-9][0-9 ().\-]*")
_RETRY_MARKS = {"startretry": True, "endretry": False, "abortretry": False}


@dataclass(frozen=True, slots=True)
class CallFile:
    """What a call file says, as far as screening is concerned."""

    channel: str  # TECH/DATA, as written
    callerid: str = ""  # the number part of CallerID (shown, never a target)
    extension: str = ""
    context: str = ""
    variables: tuple[tuple[str, str], ...] = ()
    in_progress: bool = False  # a StartRetry not followed by EndRetry/AbortRetry

    def variable(self, name: str) -> str:
        """The value of the last ``Set: NAME=…`` line (``""`` if none)."""
        value = ""
        for key, val in self.variables:
            if key == name:
                value = val
        return value

    def targets(self) -> tuple[tuple[str, str], ...]:
        """The raw numbers the call is placed *to*, by field: ``("channel", "+33…")``,
        ``("extension", …)`` (a numeric ``Extension``), ``("setvar", …)`` (the
        ``CALLSCREEN_CALLEE`` variable). Fields without a number are left out; the
        caller ID never counts (see the module docstring)."""
        found: list[tuple[str, str]] = []
        dialed = channel_number(self.channel)
        if dialed:
            found.append(("channel", dialed))
        if self.extension and _NUMBERISH.fullmatch(self.extension.strip()):
            found.append(("extension", self.extension.strip()))
        callee = self.variable(CALLEE_VARIABLE).strip()
        if callee and _NUMBERISH.fullmatch(callee):
            found.append(("setvar", callee))
        return tuple(found)


def _strip_comment(line: str) -> str:
    out: list[str] = []
    prev = ""
    i = 0
    while i < len(line):
        char = line[i]
        if char == "#" and (not out or prev in " \t"):
            break
        if char == ";":
            if prev == "\\":
                out[-1] = ";"
                prev = ";"
                i += 1
                continue
            break
        out.append(char)
        prev = char
        i += 1
    return "".join(out).rstrip()


def parse_call_file(text: str) -> CallFile | None:
    """The call file ``text``, or None if it has no ``Channel: TECH/DATA`` (Asterisk
    would refuse it too)."""
    channel = callerid = extension = context = ""
    variables: list[tuple[str, str]] = []
    in_progress = False
    for raw in text.splitlines():
        line = _strip_comment(raw)
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip(" \t")
        if key == "channel":
            channel = value if "/" in value else channel
        elif key == "callerid":
            callerid = callerid_number(value)
        elif key == "extension":
            extension = value
        elif key == "context":
            context = value
        elif key in ("set", "setvar"):
            name, eq, val = value.partition("=")
            if eq:
                variables.append((name.strip(), val))
        elif key in _RETRY_MARKS:
            in_progress = _RETRY_MARKS[key]
    if not channel:
        return None
    return CallFile(channel, callerid, extension, context, tuple(variables), in_progress)


def callerid_number(value: str) -> str:
    """The number of a caller ID as ``ast_callerid_split`` reads it: ``"Name" <num>``
    and ``Name <num>`` give ``num``; a bare value gives itself if it looks like a
    number (else it is a name, and there is no number)."""
    text = value.strip()
    start = text.rfind("<")
    if start >= 0:
        end = text.find(">", start)
        return text[start + 1 : end if end >= 0 else len(text)].strip()
    text = text.strip('"').strip()
    return text if _NUMBERISH.fullmatch(text) else ""


def dial_number(data: str) -> str:
    """The number in the data of a dial string (``TECH/`` already removed): the last
    ``/``-separated part that holds one, without ``@…``, scheme and parameters."""
    for part in reversed(data.split("/")):
        user = part.strip()
        lowered = user.lower()
        for scheme in ("sips:", "sip:", "tel:"):
            if lowered.startswith(scheme):
                user = user[len(scheme) :]
                break
        user = user.split("@", 1)[0].split(";", 1)[0].strip()
        if ":" in user:  # IAX2 user:secret
            continue
        if user and _NUMBERISH.fullmatch(user):
            return user
    return ""


def channel_number(channel: str) -> str:
    """The number in ``TECH/DATA`` (a call file's ``Channel``, or a Local channel's
    name such as ``Local/0123@ctx-00000001;1``); ``""`` if there is none."""
    tech, sep, data = channel.partition("/")
    if not sep or not tech:
        return ""
    return dial_number(data)


def valid_number(raw: str, region: str) -> str | None:
    """The E.164 digits of ``raw`` if it is a valid number (read with ``region``),
    else None. Never raises."""
    if not raw:
        return None
    try:
        key = parse_entry(raw, region)
    except InvalidInput:
        return None
    except Exception:  # phonenumbers has surprises; a cascade must not die on one file
        return None
    return None if key.is_prefix else key.digits
