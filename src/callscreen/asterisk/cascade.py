"""The cascade: when numbers become blocked, cancel the calls already on their way.

When an entry of a *block* list becomes enforced — added active, approved, restored,
imported approved (:mod:`callscreen.services.approvals`,
:mod:`callscreen.services.transfer`), or put on the do-not-call list by an opt-out
(:mod:`callscreen.gateway.optout`) — two kinds of work may still reach the number:

**Queued calls: Asterisk call files** in the outgoing spool directory (``spool_dir``).
A call file whose target — its ``Channel``, a numeric ``Extension`` it connects to, or
its ``CALLSCREEN_CALLEE`` variable — is a number the new entries match (exactly or under
a prefix) is cancelled. Its ``CallerID`` never counts: a block cancels calls *to* the
number, never calls that only show it (a forged caller ID must not cancel other
customers' calls).
Asterisk uses a call file's modification time as the time to call it, and that is
where we must not fight it (``pbx_spool.c``):

- a file whose time is more than :data:`DUE_MARGIN_S` ahead and that is not being
  dialed is *waiting*: it is removed — first moved out of Asterisk's sight into
  ``SPOOL/.callscreen-cancelled/`` (a rename, atomic; Asterisk ignores directories and
  does not watch subdirectories), checked to be still the file we read, then deleted;
- a file that is *due* (its time has come) or *being dialed* (a ``StartRetry`` line not
  yet followed by ``EndRetry``: Asterisk moves the time of a file it dials to the next
  retry, so it looks waiting although a call is up) is left alone: Asterisk may be
  reading or rewriting it, and deleting it would make Asterisk write a fresh one. The
  call itself is hung up instead when asked for (below); Asterisk then notes the
  failed attempt in the file and schedules the next retry, and the file, waiting
  again, is removed (we watch it for ``cascade_settle_s`` seconds). Without a hang-up
  the file is reported as left in place.

Call files place *outbound* calls: they are only looked at for block lists whose
direction includes outbound. A call file carries no campaign unless it sets the
channel variable ``CALLSCREEN_CAMPAIGN`` (``Set: CALLSCREEN_CAMPAIGN=spring``): for a
list that applies only to some campaigns, only files that name one of them are
cancelled.

**Live calls** (``--hangup-live``, or ``cascade_hangup_live``): through AMI, every live
channel whose ``CallerIDNum``, ``ConnectedLineNum`` or ``Exten`` (or, for a Local
channel, the number in its name) is a number the entries match is hung up with cause
21 (call rejected), each call once: its first channel (the others it dialed go with
it), never the ``;2`` half of a Local pair besides its ``;1``; the count is of calls
(channels sharing a ``Linkedid`` are one call). Live channels are matched whatever
their direction, and not for lists that apply only to some campaigns (a channel does
not show its campaign).

Numbers are read with the default region, and only valid numbers count
(:func:`callscreen.asterisk.callfiles.valid_number`): an internal extension never matches.
Nothing cancelled comes back when the entry is removed later.

Call files are read (opened read-only) to be matched. Asterisk takes a file that
appears by ``rename`` (the documented way: write it elsewhere, then ``mv``) at once; one
that appears as a *hard link* is taken after 2 s unless it is opened meanwhile, so a
cascade running in those 2 s would delay such a file until Asterisk restarts — use
``mv``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat as statmod
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from callscreen.asterisk.ami import AmiClient, Channel, ami_configured
from callscreen.asterisk.callfiles import (
    CAMPAIGN_VARIABLE,
    MAX_CALL_FILE_BYTES,
    CallFile,
    channel_number,
    parse_call_file,
    valid_number,
)
from callscreen.core.config import Settings
from callscreen.core.errors import AmiUnavailable
from callscreen.core.numbers import EntryKey
from callscreen.core.ratelog import clean

log = logging.getLogger("callscreen.cascade")

T = TypeVar("T")

#: A call file due within this many seconds counts as due: it may be picked up while we
#: work on it.
DUE_MARGIN_S = 2.0
CANCEL_DIR = ".callscreen-cancelled"
SETTLE_POLL_S = 0.05


# -- what became blocked -----------------------------------------------------------


class Targets(Protocol):
    """The numbers a change blocked: which of some numbers do they match?"""

    def match(self, numbers: Collection[str]) -> dict[str, str]:
        """For each of ``numbers`` (E.164 digits) that an entry matches: the entry
        (``+33123456789`` or ``+33*``)."""
        ...


@dataclass(frozen=True, slots=True)
class EntryTargets:
    """Targets given as entries (exact numbers and prefixes), held in memory."""

    exact: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, keys: Iterable[EntryKey]) -> EntryTargets:
        exact: set[str] = set()
        prefixes: set[str] = set()
        for key in keys:
            (prefixes if key.is_prefix else exact).add(key.digits)
        return cls(frozenset(exact), frozenset(prefixes))

    def __len__(self) -> int:
        return len(self.exact) + len(self.prefixes)

    def match(self, numbers: Collection[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for digits in numbers:
            if digits in self.exact:
                found[digits] = "+" + digits
                continue
            for end in range(len(digits), 0, -1):
                if digits[:end] in self.prefixes:
                    found[digits] = "+" + digits[:end] + "*"
                    break
        return found


# -- the report --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedCall:
    """A call file that matched: its name in the spool, the number and the entry."""

    file: str
    number: str  # +E.164
    entry: str
    field: str  # channel, extension or setvar


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A live channel that matched and was hung up."""

    channel: str
    number: str
    entry: str
    linkedid: str


@dataclass(frozen=True, slots=True)
class CascadeReport:
    """What the cascade of one change did.

    ``cancelled``: call files removed; ``left_due``: matching call files left in place
    because they were due or being dialed; ``hung_up``: live channels hung up
    (:attr:`hung_up_calls` counts calls); ``notes``: what could not be done and why.
    """

    entries: int
    spool_dir: str
    spool_checked: bool
    cancelled: tuple[QueuedCall, ...] = ()
    left_due: tuple[QueuedCall, ...] = ()
    hangup_requested: bool = False
    hung_up: tuple[LiveCall, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def hung_up_calls(self) -> int:
        return len({call.linkedid for call in self.hung_up})

    def line(self, verb: str) -> str:
        """``added 1 entry; cancelled 3 queued calls; hung up 1 live call``."""
        parts = [
            f"{verb} {_count(self.entries, 'entry', 'entries')}",
            f"cancelled {_count(len(self.cancelled), 'queued call')}",
        ]
        if self.hangup_requested:
            parts.append(f"hung up {_count(self.hung_up_calls, 'live call')}")
        if self.left_due:
            parts.append(f"left {_count(len(self.left_due), 'due call file')} in place")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "spool_dir": self.spool_dir,
            "spool_checked": self.spool_checked,
            "cancelled": [_qjson(c) for c in self.cancelled],
            "left_due": [_qjson(c) for c in self.left_due],
            "hangup_requested": self.hangup_requested,
            "hung_up_calls": self.hung_up_calls,
            "hung_up": [
                {"channel": c.channel, "number": c.number, "entry": c.entry, "linkedid": c.linkedid}
                for c in self.hung_up
            ],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CascadeReport:
        """The report :meth:`to_json` gave (a queued cascade's result, read back)."""
        return cls(
            entries=int(data["entries"]),
            spool_dir=str(data["spool_dir"]),
            spool_checked=bool(data["spool_checked"]),
            cancelled=tuple(QueuedCall(**c) for c in data["cancelled"]),
            left_due=tuple(QueuedCall(**c) for c in data["left_due"]),
            hangup_requested=bool(data["hangup_requested"]),
            hung_up=tuple(LiveCall(**c) for c in data["hung_up"]),
            notes=tuple(data["notes"]),
        )


def _qjson(call: QueuedCall) -> dict[str, str]:
    return {"file": call.file, "number": call.number, "entry": call.entry, "field": call.field}


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


# -- queued calls ------------------------------------------------------------------


@dataclass(slots=True)
class SpoolScan:
    """What :func:`cancel_queued` did."""

    checked: bool = False
    cancelled: list[QueuedCall] = field(default_factory=list)
    due: list[QueuedCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Read:
    path: str
    stat: os.stat_result
    call: CallFile


def _read(path: str) -> _Read | None:
    """The call file at ``path`` with its stat, or None (gone, not a file, unreadable,
    not a call file)."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if not statmod.S_ISREG(stat.st_mode):
                return None
            data = handle.read(MAX_CALL_FILE_BYTES)
    except OSError:
        return None
    call = parse_call_file(data.decode("utf-8", "replace"))
    return _Read(path, stat, call) if call is not None else None


def _waiting(item: _Read, now: float, margin: float) -> bool:
    """Not due yet and not being dialed: safe to take away from Asterisk."""
    return item.stat.st_mtime > now + margin and not item.call.in_progress


def _candidates(call: CallFile, region: str) -> list[tuple[str, str]]:
    """``(field, digits)`` of the call's valid numbers."""
    out = []
    for name, raw in call.targets():
        digits = valid_number(raw, region)
        if digits is not None:
            out.append((name, digits))
    return out


def _claim(item: _Read, spool_dir: str) -> bool:
    """Move a waiting call file out of Asterisk's sight, check it is still the file we
    read, and delete it. False (file put back, or gone) if Asterisk touched it."""
    holding = os.path.join(spool_dir, CANCEL_DIR)
    os.makedirs(holding, mode=0o750, exist_ok=True)
    name = os.path.basename(item.path)
    moved = os.path.join(holding, f"{name}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        os.rename(item.path, moved)
    except FileNotFoundError:
        return False
    try:
        after = os.stat(moved)
    except FileNotFoundError:
        return False
    if (after.st_mtime_ns, after.st_size, after.st_ino) != (
        item.stat.st_mtime_ns,
        item.stat.st_size,
        item.stat.st_ino,
    ):
        # Asterisk rewrote it between our read and the rename: give it back.
        if not os.path.exists(item.path):
            os.rename(moved, item.path)
            return False
        os.unlink(moved)  # a new file took its place meanwhile; ours is stale
        return True
    os.unlink(moved)
    return True


def cancel_queued(
    spool_dir: str,
    targets: Targets,
    region: str,
    *,
    campaigns: Collection[str] | None = None,
    now: float | None = None,
    margin: float = DUE_MARGIN_S,
    pause: Callable[[], None] | None = None,
) -> SpoolScan:
    """Cancel the waiting call files of ``spool_dir`` that ``targets`` match; report
    the matching ones that are due or being dialed, left in place. With ``campaigns``
    (a campaign-only list), only files setting ``CALLSCREEN_CAMPAIGN`` to one of them
    count. ``pause()`` is called after each file read (a background scan yields
    there). Never raises for one bad file: problems become notes."""
    scan = SpoolScan()
    if not spool_dir:
        return scan
    try:
        names = sorted(entry.name for entry in os.scandir(spool_dir) if entry.is_file())
    except FileNotFoundError:
        scan.notes.append(f"spool directory {spool_dir} not found: queued calls not checked")
        return scan
    except OSError as exc:
        scan.notes.append(f"cannot read spool directory {spool_dir}: {exc.strerror or exc}")
        return scan
    scan.checked = True
    reads: list[tuple[_Read, list[tuple[str, str]]]] = []
    for name in names:
        item = _read(os.path.join(spool_dir, name))
        if pause is not None:
            pause()
        if item is None:
            continue
        if campaigns is not None and item.call.variable(CAMPAIGN_VARIABLE) not in campaigns:
            continue
        numbers = _candidates(item.call, region)
        if numbers:
            reads.append((item, numbers))
    matched = targets.match({digits for _item, numbers in reads for _f, digits in numbers})
    at = time.time() if now is None else now
    for item, numbers in reads:
        hit = next(((f, d) for f, d in numbers if d in matched), None)
        if hit is None:
            continue
        queued = QueuedCall(os.path.basename(item.path), "+" + hit[1], matched[hit[1]], hit[0])
        if not _waiting(item, at, margin):
            scan.due.append(queued)
            continue
        try:
            claimed = _claim(item, spool_dir)
        except OSError as exc:
            scan.notes.append(
                f"could not remove call file {clean(queued.file)}: {exc.strerror or exc}"
            )
            continue
        if claimed:
            scan.cancelled.append(queued)
            log.info(
                "cancelled queued call %s to %s (%s)",
                clean(queued.file),
                queued.number,
                queued.entry,
            )
        elif os.path.exists(item.path):
            scan.due.append(queued)
    return scan


def settle_due(
    spool_dir: str, due: Sequence[QueuedCall], timeout: float, *, margin: float = DUE_MARGIN_S
) -> tuple[list[QueuedCall], list[QueuedCall]]:
    """After their calls were hung up, watch the due files for up to ``timeout``
    seconds: Asterisk records the failed attempt and reschedules each one, which is
    then waiting and removed. Returns (cancelled, still due); a file that Asterisk
    deleted itself (no retry left) is in neither."""
    pending = {call.file: call for call in due}
    cancelled: list[QueuedCall] = []
    deadline = time.monotonic() + timeout
    while pending:
        for name, call in list(pending.items()):
            path = os.path.join(spool_dir, name)
            item = _read(path)
            if item is None:
                if not os.path.exists(path):
                    del pending[name]  # Asterisk is done with it
                continue
            if _waiting(item, time.time(), margin):
                try:
                    if _claim(item, spool_dir):
                        cancelled.append(call)
                        del pending[name]
                except OSError:
                    continue
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(SETTLE_POLL_S)
    return cancelled, list(pending.values())


# -- the bounded runner for the gateway ---------------------------------------------


class SpoolCanceller:
    """Cancels the queued calls to numbers that became blocked, as **one bounded
    queue** worked by **one thread** (never the event loop), for the gateway's opt-outs.

    :meth:`submit` queues numbers (E.164 digits) and returns at once. Requests for a
    number already queued are merged; one spool scan serves every number queued at the
    moment it starts; at most one scan runs at a time; the thread lowers its own CPU
    priority where it can and yields after each file read, so that a flood of opt-outs
    against a large spool costs a scan or two, not one per opt-out, and calls keep
    being answered. It uses a thread of its own, so nothing else that runs in the
    default executor (the outcome watcher) waits behind it. At most ``max_pending``
    numbers wait at once; past it, numbers are dropped and counted (:attr:`dropped`)
    and logged.

    ``settings()`` is read at each scan (``spool_dir``, ``default_region``,
    ``cascade_enabled``: a reload applies). This is the executor a Redis-backed queue
    of cascade plans can hand its numbers to. ``on_scan(numbers, scan)`` is called in
    the thread after each scan, with the numbers it served (the opt-out route records
    what it did in the trail); it must not block.
    """

    def __init__(
        self,
        settings: Callable[[], Settings],
        *,
        max_pending: int = 100_000,
        on_scan: Callable[[list[str], SpoolScan], None] | None = None,
    ) -> None:
        self._settings = settings
        self.max_pending = max_pending
        self.on_scan = on_scan
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.scans = 0  # spool scans run
        self.submitted = 0  # numbers submitted (merged ones included)
        self.dropped = 0  # numbers dropped: the queue was full
        self.cancelled = 0  # call files cancelled

    def submit(self, numbers: Iterable[str]) -> int:
        """Queue ``numbers`` (E.164 digits) for the next scan; returns how many were
        not queued already. Never blocks; thread-safe."""
        added = 0
        with self._cond:
            if self._closed:
                return 0
            for digits in numbers:
                self.submitted += 1
                if digits in self._pending:
                    continue
                if len(self._pending) >= self.max_pending:
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.error(
                            "cascade queue full (%d numbers): %d number(s) not cancelled",
                            self.max_pending,
                            self.dropped,
                        )
                    continue
                self._pending[digits] = None
                added += 1
            if added:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="spool-cascade", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
        return added

    @property
    def pending(self) -> int:
        """Numbers waiting for a scan."""
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing is queued or scanning (True), or ``timeout`` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    async def drain(self, timeout: float) -> bool:
        """:meth:`wait_idle` from the event loop, without blocking it."""
        return await asyncio.to_thread(self.wait_idle, timeout)

    def close(self) -> None:
        """Stop taking numbers; the thread ends after the scan under way (if any)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: per-thread niceness
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    self._cond.notify_all()
                    return
                batch = list(self._pending)
                self._pending.clear()
                self._busy = True
            try:
                self._scan(batch)
            except Exception:
                log.exception("cancelling the queued calls of %d number(s) failed", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _scan(self, batch: list[str]) -> None:
        settings = self._settings()
        if not (settings.cascade_enabled and settings.spool_dir):
            return
        targets = EntryTargets(exact=frozenset(batch))
        scan = cancel_queued(settings.spool_dir, targets, settings.default_region, pause=_yield)
        self.scans += 1
        self.cancelled += len(scan.cancelled)
        if self.on_scan is not None:
            try:
                self.on_scan(batch, scan)
            except Exception:
                log.exception("reporting the cascade of %d number(s) failed", len(batch))
        for note in scan.notes:
            log.warning("cascade of %d number(s): %s", len(batch), note)
        if scan.cancelled or scan.due:
            log.info(
                "cascade of %d number(s): cancelled %d queued call(s); %d due left in place",
                len(batch),
                len(scan.cancelled),
                len(scan.due),
            )


def _yield() -> None:
    time.sleep(0)  # let the event loop's thread have the interpreter


# -- live calls --------------------------------------------------------------------


def channel_numbers(channel: Channel, region: str) -> list[str]:
    """The valid numbers a live channel shows (caller ID, connected line, extension,
    and the number in a Local channel's name), as E.164 digits."""
    raws = [channel.callerid_num, channel.connected_num, channel.exten]
    if channel.name.lower().startswith("local/"):
        raws.append(channel_number(channel.name))
    out: list[str] = []
    for raw in raws:
        digits = valid_number(raw, region)
        if digits is not None and digits not in out:
            out.append(digits)
    return out


async def hangup_matching(settings: Settings, targets: Targets, region: str) -> list[LiveCall]:
    """Hang up (cause 21) every live call with a channel showing a number ``targets``
    match — each call once (see :func:`call_to_hang_up`). Raises
    :class:`~callscreen.core.errors.AmiUnavailable` if AMI cannot be used."""
    client = AmiClient(settings, events="off")
    try:
        await client.connect()
        channels = await client.channels()
        numbers = {ch.name: channel_numbers(ch, region) for ch in channels}
        wanted = {d for found in numbers.values() for d in found}
        matched = await asyncio.to_thread(targets.match, wanted)  # may read Redis
        hits: dict[str, tuple[Channel, str]] = {}  # linkedid -> a matching channel, number
        for ch in channels:
            hit = next((d for d in numbers[ch.name] if d in matched), None)
            if hit is not None:
                hits.setdefault(ch.linkedid, (ch, hit))
        hung: list[LiveCall] = []
        for linkedid, (found, hit) in hits.items():
            call = [ch for ch in channels if ch.linkedid == linkedid]
            for ch in call_to_hang_up(call, found):
                if await client.hangup(ch.name):
                    hung.append(LiveCall(ch.name, "+" + hit, matched[hit], linkedid))
                    log.info(
                        "hung up live call %s through %s (%s, %s)",
                        clean(linkedid), clean(ch.name), "+" + hit, matched[hit],
                    )  # fmt: skip
                    break
        return hung
    finally:
        await client.close()


def call_to_hang_up(call: list[Channel], found: Channel) -> list[Channel]:
    """The channels of one call (one ``Linkedid``) to try hanging up, best first; the
    first that Asterisk hangs up ends the call.

    The call's first channel (its uniqueid is the Linkedid) comes first: when it goes,
    Asterisk hangs up every channel it dialed, Local pairs included. Then the channel
    that showed the number, then the others — never a Local channel's ``;2`` half while
    its ``;1`` half is there (hanging up ``;1`` takes ``;2`` with it; asking for both
    made Asterisk log "Request to hangup non-existent channel")."""
    names = {ch.name for ch in call}

    def rank(ch: Channel) -> tuple[int, int]:
        return (0 if ch.uniqueid == ch.linkedid else 1, 0 if ch is found else 1)

    return [
        ch
        for ch in sorted(call, key=rank)
        if not (ch.name.endswith(";2") and ch.name[:-1] + "1" in names)
    ]


# -- the whole cascade -------------------------------------------------------------


def spool_configured(settings: Settings) -> bool:
    """Whether ``spool_dir`` was set (environment, .env, argument), not defaulted."""
    return "spool_dir" in settings.model_fields_set


def spool_problem(settings: Settings) -> str | None:
    """Why queued calls will not be checked (the spool directory is missing or not a
    directory), or None: one line for ``serve`` to log at start-up."""
    if not settings.cascade_enabled or not settings.spool_dir:
        return None
    if os.path.isdir(settings.spool_dir):
        return None
    hint = "" if spool_configured(settings) else " (no Asterisk here? set CALLSCREEN_SPOOL_DIR=)"
    return f"spool directory {settings.spool_dir} not found: queued calls are not checked{hint}"


async def run(
    settings: Settings,
    targets: Targets,
    *,
    entries: int,
    outbound: bool = True,
    campaigns: Collection[str] | None = None,
    hangup_live: bool | None = None,
) -> CascadeReport:
    """Cancel the queued and (``hangup_live``; default: the setting) live calls that
    ``targets`` match. ``outbound``: whether the list blocks outbound calls (call files
    are looked at only then); ``campaigns``: the campaigns of a campaign-only list.
    The spool's file work runs in a worker thread (``targets.match`` may read Redis
    synchronously there); the AMI part on this loop."""
    region = settings.default_region
    hangup = settings.cascade_hangup_live if hangup_live is None else hangup_live
    notes: list[str] = []
    scan = SpoolScan()
    if not settings.spool_dir:
        notes.append("no spool directory configured: queued calls not checked")
    elif not outbound:
        notes.append("an inbound-only list: queued (outbound) calls not checked")
    else:
        scan = await asyncio.to_thread(
            cancel_queued, settings.spool_dir, targets, region, campaigns=campaigns
        )
    notes.extend(scan.notes)
    if not scan.checked and not spool_configured(settings):
        # The default spool of a machine without Asterisk: `serve` says so once at
        # start-up (spool_problem); every add would repeat it. The report still
        # says spool_checked false.
        notes = [n for n in notes if not n.startswith(f"spool directory {settings.spool_dir} ")]
    cancelled, due = list(scan.cancelled), list(scan.due)
    hung: list[LiveCall] = []
    if hangup:
        if campaigns is not None:
            notes.append("a campaign-only list: live calls not hung up (they show no campaign)")
        elif not ami_configured(settings):
            notes.append("AMI not configured (CALLSCREEN_AMI_HOST): live calls not hung up")
        else:
            try:
                hung = await hangup_matching(settings, targets, region)
            except AmiUnavailable as exc:
                notes.append(f"live calls not hung up: {exc}")
        if hung and due:
            settled, due = await asyncio.to_thread(
                settle_due, settings.spool_dir, due, settings.cascade_settle_s
            )
            cancelled += settled
    if due:
        notes.append(
            f"{_count(len(due), 'matching call file')} due or being dialed left in place "
            f"({', '.join(clean(c.file) for c in due[:5])}{', ...' if len(due) > 5 else ''})"
            + ("" if hangup else "; --hangup-live hangs up their calls")
        )
    return CascadeReport(
        entries=entries,
        spool_dir=settings.spool_dir,
        spool_checked=scan.checked,
        cancelled=tuple(cancelled),
        left_due=tuple(due),
        hangup_requested=hangup,
        hung_up=tuple(hung),
        notes=tuple(notes),
    )
