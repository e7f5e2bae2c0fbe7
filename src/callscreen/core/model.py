"""The vocabulary of callscreen: actions, directions, statuses, results, and the
compact record stored for each entry. Pure code, no I/O."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """What is stored for one entry, in a few bytes: ``s;batch;expires;removal;created;extid``.

    ``batch`` points at the shared record (reason, source, who, when) of the change
    that last set the entry; ``removal`` at the one that removed it; ``created`` at the
    one that created it, stored only when that is not ``batch`` (None here means
    "created by ``batch``": see :attr:`created_batch`).

    Encoding: trailing empty fields are dropped, so a bulk-loaded active entry costs
    ``a;17`` — but ``created`` and ``extid`` are written together or not at all: a
    record that has either has six fields or more (``a;25;;;17;``, ``a;17;;;;CRM-1``;
    the external id may itself contain ``;``, it is everything after the fifth).
    A record of exactly five fields is the earlier format ``s;batch;expires;removal;extid``
    (no ``created``) and is read as such; one of four fields or fewer means the same in
    both. (An earlier-format external id containing ``;`` would be misread; no data in
    that format was ever deployed.) Every reader and writer follows this: this class,
    ``entries.lua``, ``import.lua``; ``lookup.lua`` and ``reports.py`` read only the
    status, batch and expiry, whose places never changed.
    """

    status: Status
    batch: int
    expires: int | None = None
    removal: int | None = None
    external_id: str = ""
    created: int | None = None

    @property
    def created_batch(self) -> int:
        """The batch of the change that created the entry."""
        return self.batch if self.created is None else self.created

    def encode(self) -> str:
        head = [
            _STATUS_CODES[self.status],
            str(self.batch),
            "" if self.expires is None else str(self.expires),
            "" if self.removal is None else str(self.removal),
        ]
        created = "" if self.created in (None, self.batch) else str(self.created)
        if created or self.external_id:
            return ";".join([*head, created, self.external_id])
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
        created = int(parts[4]) if parts[4] else None
        return cls(
            status=_CODE_STATUS[parts[0]],
            batch=batch,
            expires=int(parts[2]) if parts[2] else None,
            removal=int(parts[3]) if parts[3] else None,
            external_id=parts[5],
            created=None if created == batch else created,
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
