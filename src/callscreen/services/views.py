"""The views the services return: frozen dataclasses, each with a ``to_json()`` that
every front end uses as it is (the CLI's ``--json``, the HTTP API's bodies).

JSON convention: one name per field across every view; times ISO 8601 in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from callscreen.asterisk.cascade import CascadeReport
from callscreen.callpath.decision import Decision
from callscreen.core.model import Action, Direction, EntryRecord, Scope, Status, Transition
from callscreen.core.times import iso_ms
from callscreen.services.cascading import CascadePlan
from callscreen.services.entries import NO_CHANGE, Position, WriteSummary
from callscreen.services.importer import ImportSummary
from callscreen.services.table import Batch, ListInfo


@dataclass(frozen=True, slots=True)
class ListView:
    """A list, its settings, its audit fields and its entry counts by status."""

    id: int
    name: str
    action: Action
    direction: Direction
    scope: Scope
    description: str
    created_at: str | None
    created_by: str
    updated_at: str | None
    updated_by: str
    counts: dict[str, int]
    campaigns: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def enforced(self) -> int:
        """Entries that take part in screening (active and permanent)."""
        return self.counts.get("active", 0) + self.counts.get("permanent", 0)

    @classmethod
    def of(cls, info: ListInfo, counts: dict[str, int], campaigns: Sequence[str] = ()) -> ListView:
        return cls(
            id=info.id,
            name=info.name,
            action=info.action,
            direction=info.direction,
            scope=info.scope,
            description=info.description,
            created_at=iso_ms(info.created_at),
            created_by=info.created_by,
            updated_at=iso_ms(info.updated_at),
            updated_by=info.updated_by,
            counts=dict(counts),
            campaigns=tuple(campaigns),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["campaigns"] = list(self.campaigns)
        data["counts"] = {**self.counts, "total": self.total}
        return data


@dataclass(frozen=True, slots=True)
class TransitionView:
    """One transition of an entry, resolved through its batch record: what
    (:class:`~callscreen.core.model.Transition`: added, updated, approved,
    approved-permanently, unapproved, removed, restored, expired), who, when, and the
    change's reason and source; ``first_enforced`` when it made the entry enforced
    (active or permanent) in its list for the first time. ``expired`` is never stored:
    it is shown at the entry's expiry, by nobody (``by`` empty, ``batch`` None)."""

    transition: Transition
    by: str
    at: str | None
    reason: str = ""
    source: str = ""
    batch: int | None = None
    first_enforced: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(
        cls, record: EntryRecord, batches: Mapping[int, Batch], now: float
    ) -> tuple[TransitionView, ...]:
        """The transitions of ``record``, oldest first (``batches``: at least those of
        :func:`transition_batches`)."""
        out = []
        for step in record.steps:
            batch = batches.get(step.batch)
            out.append(
                cls(
                    step.transition,
                    batch.by if batch else "",
                    iso_ms(batch.at) if batch and batch.at else None,
                    batch.reason if batch else "",
                    batch.source if batch else "",
                    step.batch,
                    step.first_enforced,
                )
            )
        if record.effective_status(now) is Status.EXPIRED:
            out.append(cls(Transition.EXPIRED, "", iso_ms(record.expires)))
        return tuple(out)


def transition_batches(record: EntryRecord) -> list[int]:
    """The batch ids an entry's transitions point at."""
    return [step.batch for step in record.steps]


@dataclass(frozen=True, slots=True)
class EntryView:
    """One entry as an admin sees it: what, its status now, who created it and when,
    the reason it is listed for (``reason``, ``source``, ``op``: the change that gave
    it), and its last transition (``last_change``: what, ``updated_by``,
    ``updated_at``: who and when — an approval too), and since when it is enforced."""

    entry: str  # +33123456789 or +33*
    kind: str  # number | prefix | registry
    status: Status  # effective: an active entry past its expiry is expired
    reason: str
    source: str
    external_id: str
    expires: str | None
    op: str  # the change that last set the entry: add, import, ...
    created_by: str
    created_at: str | None
    updated_by: str
    updated_at: str | None
    removed_by: str = ""
    removed_at: str | None = None
    removed_reason: str = ""
    last_change: Transition = Transition.ADDED
    #: when the entry first became enforced (active or permanent) in its list, set once;
    #: None if it never was (an entry written before this was kept: its creation)
    enforced_since: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of a list's entries (sorted by entry), with totals."""

    list_name: str
    total: int  # entries matching the filter
    offset: int
    limit: int
    counts: dict[str, int]  # the whole list, by status
    entries: tuple[EntryView, ...]
    status: Status | None = None
    search: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "list_name": self.list_name,
            "status": self.status,
            "search": self.search,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "counts": self.counts,
            "entries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True, slots=True)
class EntryCursorPage:
    """A page of a list's entries in storage order, and where the next one starts
    (None: this was the last)."""

    list_name: str
    counts: dict[str, int]  # the whole list, by status
    entries: tuple[EntryView, ...]
    next: Position | None

    def to_json(self) -> dict[str, Any]:
        return {
            "list_name": self.list_name,
            "counts": self.counts,
            "entries": [entry.to_json() for entry in self.entries],
            "next": list(self.next) if self.next is not None else None,
        }


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change to entries did.

    ``outcomes`` counts entries by outcome (``added``, ``updated``, ``restored``,
    ``unchanged``, ``permanent-unchanged`` (a permanent entry is frozen: an add changes
    nothing of it), ``skipped``, ``removed``, ``approved``, ``unapproved``,
    ``purged``); ``entries`` gives each named entry's outcome (for small changes).
    """

    list_name: str
    op: str
    by: str
    outcomes: dict[str, int]
    entries: dict[str, str]
    reason: str = ""
    batch: int | None = None
    notes: tuple[str, ...] = ()
    cascade: CascadeReport | None = None  # when entries of a block list became enforced
    cascade_job: str | None = None  # the queued cascade (see services.cascading)
    cascade_plan: CascadePlan | None = None  # what it must cancel

    @property
    def changed(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k not in NO_CHANGE)

    @classmethod
    def of(
        cls,
        info: ListInfo,
        op: str,
        by: str,
        summary: WriteSummary,
        *,
        reason: str = "",
        batch: int | None = None,
        notes: Sequence[str] = (),
        cascade: tuple[str, CascadePlan] | None = None,
    ) -> ChangeResult:
        return cls(
            info.name,
            op,
            by,
            dict(summary.counts),
            dict(summary.outcomes),
            reason,
            batch,
            tuple(notes),
            None,
            cascade[0] if cascade else None,
            cascade[1] if cascade else None,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["changed"] = self.changed
        data["cascade"] = self.cascade.to_json() if self.cascade is not None else None
        data["cascade_plan"] = self.cascade_plan.to_json() if self.cascade_plan else None
        return data


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did, and, when it made entries of a block list enforced, what
    the cascade did (``cascade``)."""

    summary: ImportSummary
    cascade: CascadeReport | None = None
    cascade_job: str | None = None
    cascade_plan: CascadePlan | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.summary.to_json()
        data["cascade"] = self.cascade.to_json() if self.cascade is not None else None
        data["cascade_job"] = self.cascade_job
        data["cascade_plan"] = self.cascade_plan.to_json() if self.cascade_plan else None
        return data


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A deleted list and the entries it held, by stored status."""

    list_name: str
    by: str
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign: the lists assigned to it. Its calls are screened against these and
    every global list."""

    name: str
    lists: tuple[str, ...]
    global_lists: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lists": list(self.lists),
            "global_lists": list(self.global_lists),
        }


@dataclass(frozen=True, slots=True)
class MatchView:
    """One entry that matched a checked number, enforced or not."""

    list_name: str
    action: Action
    entry: str
    kind: str
    status: Status
    enforced: bool
    decides: bool
    reason: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a call to one number of a batch would get now, as the gateway would answer
    it: ``POST /check`` and ``callscreen scrub`` give one a number, in the order given."""

    input: str  # the number as given
    result: str
    label: str
    number: str  # E.164 as screened, empty when the input is not a number
    list_name: str
    entry: str
    reason: str

    #: the columns of ``callscreen scrub``'s CSV, as :meth:`to_json` names them
    COLUMNS = ("input", "result", "label", "number", "list", "entry", "reason")

    @classmethod
    def of(cls, raw: str, decision: Decision) -> Verdict:
        return cls(
            input=raw,
            result=decision.result.value,
            label=decision.label,
            number=decision.number,
            list_name=decision.list_name,
            entry=decision.match,
            reason=decision.reason,
        )

    def to_json(self) -> dict[str, str]:
        """The API's names: ``list`` for the list, ``entry`` for the matching entry."""
        return {
            "input": self.input,
            "result": self.result,
            "label": self.label,
            "number": self.number,
            "list": self.list_name,
            "entry": self.entry,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a call would get, every entry that matched, and why the winner won."""

    input: str
    direction: Direction
    campaign: str
    result: str
    label: str
    number: str
    list_name: str
    match: str
    reason: str
    explanation: str
    lists_applied: tuple[str, ...]
    matches: tuple[MatchView, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lists_applied"] = list(self.lists_applied)
        data["matches"] = [m.to_json() for m in self.matches]
        return data
