"""The vocabulary of callscreen: actions, directions, statuses, results, and the
compact record stored for each entry. Pure code, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum


class Action(StrEnum):
    """What a list does to a call whose number it holds."""

    BLOCK = "block"
    LABEL = "label"
    ALLOW = "allow"


class Direction(StrEnum):
    """The direction of a call (``BOTH`` only describes lists)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class Scope(StrEnum):
    """Whether a list applies to every call or only to the campaigns it is assigned to."""

    GLOBAL = "global"
    CAMPAIGN = "campaign"


class Result(StrEnum):
    """The value of ``CALLSCREEN_RESULT``."""

    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    LABELED = "LABELED"
    UNSCREENED = "UNSCREENED"


class Status(StrEnum):
    """The review status of an entry. Only ``ACTIVE`` and ``PERMANENT`` are enforced;
    ``EXPIRED`` is never stored, it is an active entry whose expiry has passed."""

    PENDING = "pending"
    ACTIVE = "active"
    PERMANENT = "permanent"
    DELETED = "deleted"
    EXPIRED = "expired"


LABEL = "Blacklisted"

_STATUS_CODES = {
    Status.PENDING: "p",
    Status.ACTIVE: "a",
    Status.PERMANENT: "P",
    Status.DELETED: "d",
}
_CODE_STATUS = {code: status for status, code in _STATUS_CODES.items()}


class Transition(StrEnum):
    """What a change did to an entry (its trail keeps one per change, see
    :class:`EntryRecord`). ``EXPIRED`` is never stored: an active entry whose expiry has
    passed expired at its expiry, with no write."""

    ADDED = "added"
    UPDATED = "updated"
    APPROVED = "approved"
    APPROVED_PERMANENTLY = "approved-permanently"
    UNAPPROVED = "unapproved"
    REMOVED = "removed"
    RESTORED = "restored"
    EXPIRED = "expired"


#: the trail's codes (``record.lua``) and what they stand for
TRANSITION_CODES = {
    "u": Transition.UPDATED,
    "a": Transition.APPROVED,
    "P": Transition.APPROVED_PERMANENTLY,
    "p": Transition.UNAPPROVED,
    "d": Transition.REMOVED,
    "r": Transition.RESTORED,
}
_TRAIL_ITEM = re.compile(r"(!?)([A-Za-z])(\d+)")
_CREATED = re.compile(r"\d*")


@dataclass(frozen=True, slots=True)
class Step:
    """One transition of an entry as stored: what, the batch of the change (its who,
    when and why), and whether it made the entry enforced for the first time."""

    transition: Transition
    batch: int
    first_enforced: bool = False


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """What is stored for one entry, in a few bytes: ``s;batch;expires;removal;trail;extid``.

    ``batch`` points at the shared record (reason, source, who, when) of the change
    that gave the entry its reason (what a call is told); ``removal`` at the one that
    removed it; ``created`` at the one that created it, stored only when that is not
    ``batch`` (None here means "created by ``batch``": see :attr:`created_batch`).

    ``trail`` is the entry's history after its creation, one short item per change: a
    code and the batch of that change (``u`` updated, ``a`` approved, ``P`` approved
    permanently, ``p`` unapproved, ``d`` removed, ``r`` restored: :data:`TRANSITION_CODES`),
    so that a bulk approval of a million entries writes a pointer to one batch record
    per entry, never a reason. It also says when the entry was first enforced (active
    or permanent), set once: ``~`` means "never yet" (created pending); the item of the
    change that first enforced it is marked ``!``; with neither, the entry was enforced
    from its creation (see :attr:`first_enforced_batch`). Stored in the fifth field
    after the creation batch (``a;25;;;17u25a30``), so the fields the lookup reads
    (status, batch, expiry) keep their places.

    Encoding: trailing empty fields are dropped, so a bulk-loaded active entry costs
    ``a;17`` — but the fifth field (creation batch and trail) and ``extid`` are written
    together or not at all: a record that has either has six fields or more
    (``a;25;;;17;``, ``a;17;;;;CRM-1``, ``a;17;;;a30;``; the external id may itself
    contain ``;``, it is everything after the fifth). A record of exactly five fields
    is the earlier format ``s;batch;expires;removal;extid`` (no ``created``) and is read
    as such; one of four fields or fewer means the same in both. (An earlier-format
    external id containing ``;`` would be misread; no data in that format was ever
    deployed.) Every reader and writer follows this: this class and ``record.lua`` (used
    by ``entries.lua`` and ``import.lua``); ``lookup.lua`` and the reports read only the
    status, batch and expiry, whose places never changed. A record written before the
    trail existed has none: its history is its creation and its last change.
    """

    status: Status
    batch: int
    expires: int | None = None
    removal: int | None = None
    external_id: str = ""
    created: int | None = None
    trail: str = ""

    @property
    def created_batch(self) -> int:
        """The batch of the change that created the entry."""
        return self.batch if self.created is None else self.created

    @property
    def steps(self) -> tuple[Step, ...]:
        """The entry's transitions in order, its creation (``added``) first. Times, who
        and why are in the batches (:meth:`callscreen.services.table.Table.batches`)."""
        enforced_at_creation = "~" not in self.trail and "!" not in self.trail
        out = [Step(Transition.ADDED, self.created_batch, enforced_at_creation)]
        for mark, code, batch in _TRAIL_ITEM.findall(self.trail):
            transition = TRANSITION_CODES.get(code)
            if transition is not None:
                out.append(Step(transition, int(batch), mark == "!"))
        return tuple(out)

    @property
    def last_batch(self) -> int:
        """The batch of the entry's last transition (its creation if none since)."""
        return self.steps[-1].batch

    @property
    def first_enforced_batch(self) -> int | None:
        """The batch of the change that first made the entry enforced (active or
        permanent) in its list, set once; None if it never was. For an entry written
        before the trail existed: its creation."""
        for step in self.steps:
            if step.first_enforced:
                return step.batch
        return None

    def encode(self) -> str:
        head = [
            _STATUS_CODES[self.status],
            str(self.batch),
            "" if self.expires is None else str(self.expires),
            "" if self.removal is None else str(self.removal),
        ]
        created = "" if self.created in (None, self.batch) else str(self.created)
        fifth = created + self.trail
        if fifth or self.external_id:
            return ";".join([*head, fifth, self.external_id])
        while len(head) > 2 and head[-1] == "":
            head.pop()
        return ";".join(head)

    @classmethod
    def decode(cls, raw: str | bytes) -> EntryRecord:
        text = raw.decode() if isinstance(raw, bytes) else raw
        parts = text.split(";", 5)
        if len(parts) == 5:  # the earlier format: s;batch;expires;removal;extid
            parts.insert(4, "")
        parts += [""] * (6 - len(parts))
        batch = int(parts[1])
        digits = _CREATED.match(parts[4])
        created_text = digits.group() if digits else ""
        created = int(created_text) if created_text else None
        return cls(
            status=_CODE_STATUS[parts[0]],
            batch=batch,
            expires=int(parts[2]) if parts[2] else None,
            removal=int(parts[3]) if parts[3] else None,
            external_id=parts[5],
            created=None if created == batch else created,
            trail=parts[4][len(created_text) :],
        )

    def effective_status(self, now: float) -> Status:
        """The status as enforced at ``now`` (an active entry past its expiry is expired)."""
        if self.status is Status.ACTIVE and self.expires is not None and self.expires <= now:
            return Status.EXPIRED
        return self.status

    def enforced(self, now: float) -> bool:
        """Whether the entry takes part in screening at ``now``."""
        return self.effective_status(now) in (Status.ACTIVE, Status.PERMANENT)

    def with_(self, **changes: object) -> EntryRecord:
        return replace(self, **changes)  # type: ignore[arg-type]
