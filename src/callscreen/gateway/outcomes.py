"""The outcome watcher: numbers the network says do not exist go on a list by themselves.

Like an email platform that stops sending to addresses that bounce: ``callscreen
serve`` follows the outcome of outbound calls over AMI and, when a number gets
``outcome_threshold`` answers meaning "no such number" within ``outcome_window_s``, puts
it on the system list ``outcome_list`` (created if missing: global, outbound, of action
``outcome_action``, label or block), with source ``auto`` and a reason naming the cause
and the date. An answered call to the number forgets its failures.

How an outbound call is recognised
----------------------------------
Every outbound leg Asterisk dials — from ``Dial()`` in the dialplan, from a call file
or from an ``Originate`` — starts with a ``DialBegin`` event naming the new channel
(``DestChannel``, ``DestUniqueid``) and the ``DialString`` it was dialed with; no
dialplan change is needed. The watcher keeps the dialed number of each such leg (the
number in the dial string, else ``DestExten``; only a valid number of the numbering
plan counts, so internal extensions are ignored) until the leg's ``Hangup``.
``outcome_channels`` (``fnmatch`` patterns such as ``PJSIP/trunk-*``) limits this to
legs on given trunks; empty, every leg counts.

- ``DialEnd`` with ``DialStatus: ANSWER``, or a ``Hangup`` of a leg that was up
  (``ChannelState: 6``), is an *answered* call: the number's failures are forgotten.
- A ``Hangup`` of a leg that was never answered, with a ``Cause`` in
  ``outcome_causes`` (default 1 unallocated number, 22 number changed, 28 invalid
  number format), is a *failure*.
- Anything else (busy, no answer, congestion, a leg we did not see begin) is ignored.

Counting is in Redis (``outcome.lua``): each call is counted at most once per number, by
the first gateway to report it (``SET NX`` on the call's ``Linkedid`` and the number,
kept a day), so several gateways may watch the same Asterisk, and a call that raises
several legs to one number (an ``Originate`` into a context that dials: the Local
channel's leg and the trunk's) counts once. Give every Asterisk a ``systemname``
(``asterisk.conf``) if several share one Redis: it prefixes their ids. Events are
handled in order by one task, from a bounded queue (past :data:`QUEUE_LIMIT` waiting
events, new ones are dropped with a warning). While AMI is down, events are lost
(Asterisk keeps none); the watcher reconnects and carries on with the legs it knew.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from callscreen.asterisk.ami import AmiClient, AmiMessage, ami_configured, field
from callscreen.asterisk.callfiles import dial_number, valid_number
from callscreen.callpath.leanredis import LeanRedis
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError, Conflict, NotFound
from callscreen.core.model import Direction
from callscreen.core.times import iso
from callscreen.schema import scripts
from callscreen.schema.keys import Keys
from callscreen.services.context import Actor, Context
from callscreen.services.entries import PERMANENT_UNCHANGED
from callscreen.services.facade import Services

log = logging.getLogger("callscreen.outcomes")

OUTCOME = scripts.OUTCOME

QUEUE_LIMIT = 10_000
MAX_LEGS = 100_000  # outbound legs remembered between DialBegin and Hangup
MAX_LEG_AGE_S = 86_400.0
SEEN_TTL_S = 86_400  # how long a counted call's uniqueid is remembered (dedup)
SOURCE = "auto"
ACTOR = "callscreen outcome watcher"
CAUSE_NAMES = {1: "unallocated number", 22: "number changed", 28: "invalid number format"}
STATE_UP = "6"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event says about a call: ``answered`` or ``failed`` (with its cause)."""

    kind: str  # "answered" | "failed"
    digits: str  # the number dialed, E.164 digits
    uniqueid: str  # the outbound leg's
    linkedid: str = ""  # the call's (every leg of one call shares it); '' if not given

    @property
    def call_id(self) -> str:
        """What one call to one number is counted by: ``LINKEDID:DIGITS``."""
        return f"{self.linkedid or self.uniqueid}:{self.digits}"

    cause: int = 0
    cause_text: str = ""


@dataclass(slots=True)
class _Leg:
    digits: str
    since: float
    linkedid: str
    answered: bool = False


class OutcomeTracker:
    """Follows outbound legs from ``DialBegin`` to ``Hangup``; pure, no I/O.

    :meth:`feed` takes every AMI event and returns the :class:`Outcome` it makes
    known, if any (see the module docstring for the rules).
    """

    def __init__(
        self,
        *,
        causes: tuple[int, ...],
        region: str,
        channels: tuple[str, ...] = (),
        max_legs: int = MAX_LEGS,
        max_age: float = MAX_LEG_AGE_S,
    ) -> None:
        self.causes = frozenset(causes)
        self.region = region
        self.channels = channels
        self.max_legs = max_legs
        self.max_age = max_age
        self.legs: OrderedDict[str, _Leg] = OrderedDict()

    def feed(self, event: AmiMessage, now: float | None = None) -> Outcome | None:
        at = time.time() if now is None else now
        name = field(event, "Event").lower()
        if name == "dialbegin":
            self._begin(event, at)
        elif name == "dialend":
            return self._end(event)
        elif name == "hangup":
            return self._hangup(event)
        return None

    def _begin(self, event: AmiMessage, at: float) -> None:
        uniqueid = field(event, "DestUniqueid")
        channel = field(event, "DestChannel")
        if not uniqueid:
            return
        if self.channels and not any(fnmatch.fnmatchcase(channel, p) for p in self.channels):
            return
        raw = dial_number(field(event, "DialString")) or field(event, "DestExten")
        digits = valid_number(raw, self.region)
        if digits is None:
            return
        self.legs[uniqueid] = _Leg(digits, at, field(event, "DestLinkedid"))
        self.legs.move_to_end(uniqueid)
        while self.legs:
            oldest_id, oldest = next(iter(self.legs.items()))
            if len(self.legs) <= self.max_legs and at - oldest.since <= self.max_age:
                break
            del self.legs[oldest_id]

    def _end(self, event: AmiMessage) -> Outcome | None:
        uniqueid = field(event, "DestUniqueid")
        leg = self.legs.get(uniqueid)
        if leg is None or leg.answered:
            return None
        if field(event, "DialStatus").upper() == "ANSWER":
            leg.answered = True
            return Outcome("answered", leg.digits, uniqueid, leg.linkedid)
        return None

    def _hangup(self, event: AmiMessage) -> Outcome | None:
        uniqueid = field(event, "Uniqueid")
        leg = self.legs.pop(uniqueid, None)
        if leg is None or leg.answered:
            return None
        linkedid = leg.linkedid or field(event, "Linkedid")
        if field(event, "ChannelState") == STATE_UP:
            return Outcome("answered", leg.digits, uniqueid, linkedid)
        try:
            cause = int(field(event, "Cause"))
        except ValueError:
            return None
        if cause not in self.causes:
            return None
        text = CAUSE_NAMES.get(cause) or field(event, "Cause-txt") or f"cause {cause}"
        return Outcome("failed", leg.digits, uniqueid, linkedid, cause, text)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _window_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class OutcomeWatcher:
    """Runs the outcome watcher in ``callscreen serve``::

        watcher = OutcomeWatcher(settings)
        await watcher.start()   # does nothing unless AMI is configured and outcome_watch
        ...
        await watcher.close()

    ``start`` returns at once: AMI is connected (and reconnected) in the background.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_tag)
        self.tracker = OutcomeTracker(
            causes=tuple(settings.outcome_causes),
            region=settings.default_region,
            channels=tuple(settings.outcome_channels),
        )
        self.client: AmiClient | None = None
        self.redis: LeanRedis | None = None
        self._queue: asyncio.Queue[AmiMessage] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None
        self._services: Services | None = None
        self.listed: list[tuple[str, str]] = []  # (number, reason) put on the list
        self.frozen: list[str] = []  # numbers found permanent on the list: left unchanged
        self.handled = 0  # events handled
        self._dropped = 0

    @property
    def enabled(self) -> bool:
        """Whether the settings ask for the watcher (AMI configured, outcome_watch)."""
        return ami_configured(self.settings) and self.settings.outcome_watch

    async def start(self) -> None:
        if not self.enabled:
            log.info("outcome watcher off (AMI not configured, or outcome_watch false)")
            return
        self.redis = LeanRedis.from_settings(self.settings)
        self.client = AmiClient(self.settings, events="call")
        for name in ("DialBegin", "DialEnd", "Hangup"):
            self.client.on(name, self._enqueue)
        self._worker = asyncio.get_running_loop().create_task(self._work())
        await self.client.connect(wait=False)
        log.info(
            "outcome watcher on: causes %s, %d within %s -> list %r (%s), AMI %s",
            ",".join(str(c) for c in self.settings.outcome_causes),
            self.settings.outcome_threshold,
            _window_text(self.settings.outcome_window_s),
            self.settings.outcome_list,
            self.settings.outcome_action.value,
            self.client.address,
        )

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until logged in to AMI (tests, health checks)."""
        if self.client is None:
            raise CallscreenError("the outcome watcher is not running")
        await self.client.wait_ready(timeout)

    async def drain(self) -> None:
        """Wait until every event received so far has been handled."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop: AMI closed, pending events dropped, Redis closed. Idempotent."""
        if self.client is not None:
            await self.client.close()
            self.client = None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self.redis is not None:
            await self.redis.close()
            self.redis = None
        services, self._services = self._services, None
        if services is not None:
            await services.close()

    # ------------------------------------------------------------ events

    def _enqueue(self, event: AmiMessage) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("outcome watcher behind: %d AMI events dropped", self._dropped)

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.handle(event)
            except Exception:
                log.exception("outcome watcher: handling %s failed", field(event, "Event"))
            finally:
                self.handled += 1
                self._queue.task_done()

    async def handle(self, event: Mapping[str, str]) -> str | None:
        """Handle one AMI event; what it did to the count (``reset``, ``counted``,
        ``reached``, ``dup``), or None."""
        outcome = self.tracker.feed(event)
        if outcome is None or self.redis is None:
            return None
        settings = self.settings
        op = "answer" if outcome.kind == "answered" else "fail"
        try:
            status, count = await self.redis.evalsha(
                OUTCOME,
                [
                    self.keys.outcome_seen(outcome.call_id),
                    self.keys.outcome_failures(outcome.digits),
                ],
                [
                    op,
                    str(int(time.time() * 1000)),
                    str(settings.outcome_window_s * 1000),
                    str(settings.outcome_threshold),
                    str(SEEN_TTL_S),
                    outcome.uniqueid,
                ],
            )
        except CallscreenError as exc:
            log.warning("outcome of +%s not counted: %s", outcome.digits, exc)
            return None
        result = _text(status)
        if result == "counted":
            log.info(
                "call %s to +%s: %s (cause %d), %d within %s",
                outcome.uniqueid,
                outcome.digits,
                outcome.cause_text,
                outcome.cause,
                int(count),
                _window_text(settings.outcome_window_s),
            )
        elif result == "reached":
            reason = (
                f"{outcome.cause_text} (hangup cause {outcome.cause}) on "
                f"{(iso(time.time()) or '')[:10]}: {int(count)} failed calls within "
                f"{_window_text(settings.outcome_window_s)}"
            )
            await self._list(outcome.digits, reason)
        return result

    async def _list(self, digits: str, reason: str) -> None:
        number = "+" + digits
        try:
            outcome = await self._add(number, reason)
        except CallscreenError as exc:
            log.error("could not put %s on list %r: %s", number, self.settings.outcome_list, exc)
            return
        if outcome == PERMANENT_UNCHANGED:
            # a permanent entry is frozen: its reason, expiry and external id stay
            self.frozen.append(number)
            log.info("%s is permanent on list %r: unchanged", number, self.settings.outcome_list)
            return
        self.listed.append((number, reason))
        log.warning("put %s on list %r: %s", number, self.settings.outcome_list, reason)

    async def _add(self, number: str, reason: str) -> str:
        """Create the list if missing, add the number (on a block list, the cascade's
        plan is queued for the gateway's runner; no live hang-up); the add's outcome for
        the number (``permanent-unchanged``: a permanent entry, left as it is)."""
        if self._services is None:
            actor = Actor(ACTOR, "gateway:outcomes")
            self._services = Services(Context.connect(self.settings, actor))
        services = self._services
        name = self.settings.outcome_list
        try:
            await services.lists.show_list(name)
        except NotFound:
            with contextlib.suppress(Conflict):  # another gateway may create it meanwhile
                await services.lists.create_list(
                    name,
                    self.settings.outcome_action,
                    Direction.OUTBOUND,
                    description="numbers the network reports as not existing (outcome watcher)",
                )
        result = await services.entries.add(
            name, [number], reason=reason, source=SOURCE, hangup_live=False
        )
        return result.entries.get(number, "")
