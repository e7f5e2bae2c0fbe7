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
    """What is stored for one entry, in a few bytes: ``s;batch;expires;removal;extid``.

    ``batch`` points at the shared record (reason, source, who, when) of the change
    that last set the entry; ``removal`` at the one that removed it. Trailing empty
    fields are dropped, so a bulk-loaded active entry costs ``a;17``.
    """

    status: Status
    batch: int
    expires: int | None = None
    removal: int | None = None
    external_id: str = ""

    def encode(self) -> str:
        parts = [
            _STATUS_CODES[self.status],
            str(self.batch),
            "" if self.expires is None else str(self.expires),
            "" if self.removal is None else str(self.removal),
            self.external_id,
        ]
        while len(parts) > 2 and parts[-1] == "":
            parts.pop()
        return ";".join(parts)

    @classmethod
    def decode(cls, raw: str | bytes) -> EntryRecord:
        text = raw.decode() if isinstance(raw, bytes) else raw
        parts = text.split(";", 4)
        parts += [""] * (5 - len(parts))
        return cls(
            status=_CODE_STATUS[parts[0]],
            batch=int(parts[1]),
            expires=int(parts[2]) if parts[2] else None,
            removal=int(parts[3]) if parts[3] else None,
            external_id=parts[4],
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
