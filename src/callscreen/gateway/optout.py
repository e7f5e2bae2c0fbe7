"""Opt-out capture: ``AGI(agi://HOST:4573/optout,DIRECTION[,NUMBER[,CAMPAIGN]])``.

The arguments are those of ``screen``: the other party of the call — the caller
inbound, the callee outbound; an empty NUMBER means ``agi_callerid`` inbound and
``agi_extension`` outbound — is put on the do-not-call list (``optout_list``, default
``do-not-call``; created if missing as a global block list for both directions) as an
*active* entry with the reason ``opt-out request (campaign C, TIME)``, source
``opt-out``. A removed entry comes back; a pending one becomes active; a permanent one
is frozen and left as it is (answered ``BLOCKED`` with the reason ``opt-out request
(already on LIST: permanent, unchanged)``). Every later call to or from the number is
blocked, in every campaign.

The answer is one ``EXEC MSet`` like ``screen``'s: ``CALLSCREEN_RESULT=BLOCKED`` with
the list, the entry (``CALLSCREEN_MATCH``), the number and the reason when the opt-out
is recorded; ``UNSCREENED`` with a reason saying why when it is not (no valid number,
Redis unavailable or slower than the deadline, a bad DIRECTION) — or when it was
recorded on a list that is not a block list (an admin changed its action), since the
number is then not blocked. The dialplan's ``[callscreen-optout]`` routine tells the
caller which it was.

Writes go through the call path's Redis client within the deadline (three round trips:
``optout.lua`` finds or creates the list and records the batch; ``entries.lua``, the
only writer of entry records, writes the entry; the audit trail gets its record).
Then, off the call path, queued calls to the number are cancelled
(:class:`callscreen.asterisk.cascade.SpoolCanceller`: one bounded queue, one thread,
requests merged, one spool scan for every number queued): never live calls — the
caller is on one, pressing 9. What that did for a number (call files cancelled with
their numbers, files left in place, or why the spool could not be checked) is an event
``cascade`` in the list's trail, by the opt-out's actor
(:func:`callscreen.services.cascading.cascade_event`); a scan that found nothing for
it adds nothing. A number the list already enforces (active, or permanent) is
answered ``BLOCKED`` at the cost of one round trip that writes nothing: no batch, no
audit record, no cascade — repeating an opt-out cannot grow Redis.

Who may opt out: this route writes to a block list on behalf of whoever reaches the
FastAGI port, so it is held to more than ``screen`` is. A request is answered
``UNSCREENED`` (``opt-out not recorded: …``), with nothing written, when it comes from
an address outside ``optout_clients`` (default: loopback only — set it to the
Asterisk hosts), when its peer address has used up its rate (``optout_rate`` a
second, ``optout_burst`` at once: a token bucket per address), or while the server is
overloaded (past ``max_connections``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from callscreen.asterisk import cascade
from callscreen.callpath.decision import Decision, ScreenRequest
from callscreen.callpath.leanredis import LeanRedis
from callscreen.callpath.protocol import AgiEnv, bad_request_decision, printable, screen_request
from callscreen.callpath.server import Answer, CallInfo, address_in
from callscreen.core.config import Settings
from callscreen.core.errors import CallscreenError, InvalidInput
from callscreen.core.model import Action, EntryRecord, Result, Status
from callscreen.core.numbers import parse_entry
from callscreen.core.times import iso
from callscreen.schema import scripts
from callscreen.schema.keys import DEFAULT_BUCKETS, SCHEMA_VERSION, Keys, bucket_of
from callscreen.services.audit import trim_args, trim_floor
from callscreen.services.cascading import cascade_event, host_name, worth_recording
from callscreen.services.entries import PERMANENT_UNCHANGED
from callscreen.services.table import Batch

if TYPE_CHECKING:
    from callscreen.callpath.server import AgiServer

log = logging.getLogger("callscreen.optout")

OPTOUT = scripts.OPTOUT
ENTRIES = scripts.ENTRIES

REASON = "opt-out request"
SOURCE = "opt-out"
LIST_DESCRIPTION = "opt-out requests (created by the first one)"
#: Peer addresses whose rate is tracked at once; past it the longest unused is dropped
#: (a dropped address starts again with a full burst).
MAX_RATE_PEERS = 10_000

LogFields = tuple[tuple[str, str], ...]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _failed(reason: str, number: str = "") -> Decision:
    return Decision(Result.UNSCREENED, number=number, reason=reason, failed=True)


async def opt_out(
    settings: Settings,
    client: LeanRedis,
    request: ScreenRequest,
    *,
    deadline: float | None = None,
    recorded: Callable[[Settings, str], None] | None = None,
    by: str = "",
    source: str = SOURCE,
    note: str = "",
) -> Decision:
    """Record ``request``'s number on the do-not-call list within ``deadline`` seconds
    (``settings.deadline_ms`` by default); the :class:`Decision` to answer with. Never
    raises but for cancellation. ``recorded(settings, digits)`` is called once the
    number is on the list (the route cancels its queued calls from there).

    ``by`` names who records it (default: the call, by direction and uniqueid — the
    HTTP API gives its key); ``source`` and ``note`` (added to the reason) say where
    the request came from."""
    budget = settings.deadline_ms / 1000 if deadline is None else deadline
    try:
        key = parse_entry(request.number, settings.default_region)
    except InvalidInput as exc:
        return _failed(f"opt-out not recorded: {exc}")
    if key.is_prefix:
        return _failed("opt-out not recorded: a prefix is not a number")
    number = key.display
    try:
        async with asyncio.timeout(budget):
            decision, changed = await _record(
                settings, client, request, key.digits, by, source, note
            )
    except TimeoutError:
        return _failed("opt-out not recorded: Redis did not answer in time", number)
    except CallscreenError as exc:
        return _failed(f"opt-out not recorded: {exc}", number)
    except Exception:
        log.exception("uniqueid=%s: opt-out failed", printable(request.uniqueid) or "-")
        return _failed("opt-out not recorded: internal error", number)
    if recorded is not None and changed and not decision.failed:
        recorded(settings, key.digits)
    return decision


async def _record(
    settings: Settings,
    client: LeanRedis,
    request: ScreenRequest,
    digits: str,
    by: str = "",
    source: str = SOURCE,
    note: str = "",
) -> tuple[Decision, bool]:
    """The decision, and whether anything was written (False: already on the list)."""
    keys = Keys(settings.key_tag)
    now = time.time()
    stamp = iso(now) or ""
    details = f"campaign {request.campaign}, {stamp}" if request.campaign else stamp
    reason = f"{REASON} ({details})" + (f": {note}" if note else "")
    by = by or default_actor(request)
    batch = Batch(0, "add", reason, source or SOURCE, by, now).encode()
    list_name = settings.optout_list
    list_id, action, buckets, batch_id, created, record_kept = await client.evalsha(
        OPTOUT,
        [keys.meta],
        [
            keys.base,
            list_name,
            LIST_DESCRIPTION,
            repr(now),
            by,
            batch,
            trim_floor(settings, now) or "",
            str(DEFAULT_BUCKETS),
            SCHEMA_VERSION,
            digits,
        ],
    )
    list_id, buckets, batch_id = int(list_id), int(buckets), int(batch_id)
    number = "+" + digits
    kind = _text(action)
    if batch_id == 0:  # already enforced: nothing written
        frozen = _text(record_kept).startswith("P")
        log.info(
            "uniqueid=%s: opt-out of %s: already on %r%s",
            printable(request.uniqueid) or "-",
            number,
            list_name,
            " (permanent, unchanged)" if frozen else "",
        )
        return _answer(kind, number, list_name, _already(list_name, frozen)), False
    if created:
        log.info("created the do-not-call list %r (global, block, both)", list_name)
    bucket, hfield = bucket_of(int(digits), buckets)
    record = EntryRecord(Status.ACTIVE, batch_id).encode()
    reply = await client.evalsha(
        ENTRIES,
        [keys.counts(list_id), keys.expiring(list_id)],
        [
            "upsert",
            keys.base,
            "",
            "rm",  # restore a removed entry; never demote a permanent one
            keys.exact(list_id, bucket),
            str(hfield),
            f"{bucket}:{hfield}",
            record,
        ],
    )
    outcome = _text(reply[1]) if len(reply) > 1 else "?"
    if outcome == PERMANENT_UNCHANGED:  # made permanent since optout.lua looked: frozen
        log.info(
            "uniqueid=%s: opt-out of %s: already on %r (permanent, unchanged)",
            printable(request.uniqueid) or "-",
            number,
            list_name,
        )
        return _answer(kind, number, list_name, _already(list_name, True)), False
    if outcome not in ("unchanged", "skipped"):
        await client.call(
            "XADD",
            keys.history(list_id),
            *trim_args(settings, now),
            "*",
            "op",
            "add",
            "by",
            by,
            "list",
            list_name,
            "r",
            reason,
            "n",
            1,
            "e",
            number,
            "b",
            batch_id,
        )
    log.info(
        "uniqueid=%s: opt-out of %s recorded on %r (%s)",
        printable(request.uniqueid) or "-",
        number,
        list_name,
        outcome,
    )
    return _answer(kind, number, list_name, reason), outcome not in ("unchanged", "skipped")


def _already(list_name: str, permanent: bool) -> str:
    """The reason answered for a number the list already enforces: a permanent entry
    is frozen, and the answer says that nothing of it changed."""
    if permanent:
        return f"{REASON} (already on {list_name}: permanent, unchanged)"
    return f"{REASON} (already on {list_name})"


def default_actor(request: ScreenRequest) -> str:
    """Who records an opt-out made from the dialplan: the call, by its direction and
    unique id."""
    return f"opt-out {request.direction.value} call {request.uniqueid or '-'}"


def _answer(kind: str, number: str, list_name: str, reason: str) -> Decision:
    if kind != Action.BLOCK.value:
        return Decision(
            Result.UNSCREENED,
            number=number,
            list_name=list_name,
            match=number,
            reason=f"opt-out recorded on {list_name}, a {kind} list: not blocked",
            failed=True,
        )
    return Decision(Result.BLOCKED, number=number, list_name=list_name, match=number, reason=reason)


class RateLimiter:
    """A token bucket per peer address: ``rate`` a second, ``burst`` at once. Holds at
    most :data:`MAX_RATE_PEERS` addresses (the longest unused goes first). ``clock``:
    seconds, monotonic."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, peer: str, rate: float, burst: int) -> bool:
        """Take one token of ``peer``'s bucket; False if it has none left."""
        now = self.clock()
        tokens, at = self._buckets.pop(peer, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        allowed = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_RATE_PEERS:
            self._buckets.popitem(last=False)
        return allowed


class OptoutRoute:
    """The ``optout`` AGI route. The gateway registers it on the FastAGI server with
    the call path's Redis client (``server.routes["optout"] = OptoutRoute(server,
    client)``); settings are the server's at each call (a reload applies). Queued
    calls to a recorded number are cancelled by ``canceller`` (one of its own by
    default); :meth:`drain` waits for it at shutdown."""

    def __init__(
        self,
        server: AgiServer,
        client: LeanRedis,
        clock: Callable[[], float] = time.monotonic,
        canceller: cascade.SpoolCanceller | None = None,
    ) -> None:
        self.server = server
        self.client = client
        self.limiter = RateLimiter(clock)
        self.canceller = canceller or cascade.SpoolCanceller(lambda: self.server.settings)
        if self.canceller.on_scan is None:
            self.canceller.on_scan = self._scanned
        # who opted each number out, until its scan is recorded (bounded as the queue is)
        self._actors: OrderedDict[str, str] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._records: set[concurrent.futures.Future[None]] = set()

    async def __call__(self, env: AgiEnv, call: CallInfo) -> Answer:
        refusal = self.refusal(call)
        if refusal:
            cause, reason = refusal
            self.server.notice(f"optout_{cause}", "%s: opt-out refused: %s", call.peer, reason)
            decision = _failed(f"opt-out not recorded: {reason}")
            fields: LogFields = (("direction", env.arg(1)), *decision.log_fields())
            return Answer(decision.variables(), fields, decision, "", cause)
        decision, fields = await self.answer(env, self.server.budget(call))
        direction = dict(fields).get("direction", "")
        return Answer(decision.variables(), fields, decision, direction)

    def refusal(self, call: CallInfo) -> tuple[str, str] | None:
        """``(cause, reason)`` when ``call`` may not opt out: its address is not one of
        ``optout_clients``, it is past its rate, or the server is overloaded."""
        settings = self.server.settings
        host = call.host or call.peer.rpartition(":")[0]
        if not address_in(host, settings.optout_networks()):
            return "not_allowed", "not accepted from this address (optout_clients)"
        if call.overloaded:
            return "overloaded", "gateway overloaded"
        if not self.limiter.allow(host, settings.optout_rate, settings.optout_burst):
            return "rate_limited", "too many requests from this address"
        return None

    async def answer(
        self, env: AgiEnv, deadline: float | None = None
    ) -> tuple[Decision, LogFields]:
        """The decision and the fields of the call's log line, within ``deadline``
        seconds (``deadline_ms`` by default). Never raises but for cancellation."""
        settings = self.server.settings
        try:
            request = screen_request(env)
        except InvalidInput as exc:
            log.error("uniqueid=%s: %s; answering UNSCREENED", printable(env.uniqueid) or "-", exc)
            decision = bad_request_decision(f"bad request: {exc}")
            return decision, (("direction", env.arg(1)), *decision.log_fields())
        decision = await opt_out(
            settings,
            self.client,
            request,
            deadline=deadline,
            recorded=lambda now, digits: self._cancel_queued_later(
                now, digits, default_actor(request)
            ),
        )
        number = decision.number or request.number
        fields: LogFields = (
            ("direction", request.direction.value),
            ("number", number),
            *decision.log_fields(),
        )
        return decision, fields

    def _cancel_queued_later(self, settings: Settings, digits: str, by: str = "") -> None:
        """Queue the number's queued calls for cancelling, never delaying the answer."""
        if settings.cascade_enabled and settings.spool_dir:
            self._loop = asyncio.get_running_loop()
            self._actors.pop(digits, None)
            self._actors[digits] = by or "opt-out"
            while len(self._actors) > self.canceller.max_pending:
                self._actors.popitem(last=False)
            self.canceller.submit((digits,))

    def _scanned(self, numbers: list[str], scan: cascade.SpoolScan) -> None:
        """In the canceller's thread: hand each number's part of the scan to the event
        loop, which writes it to the trail."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for digits in numbers:
            number = "+" + digits
            report = cascade.CascadeReport(
                entries=1,
                spool_dir=self.server.settings.spool_dir,
                spool_checked=scan.checked,
                cancelled=tuple(c for c in scan.cancelled if c.number == number),
                left_due=tuple(c for c in scan.due if c.number == number),
                notes=tuple(scan.notes),
            )
            by = self._actors.pop(digits, "opt-out")
            if not worth_recording(report):
                continue
            future = asyncio.run_coroutine_threadsafe(self._record(by, report), loop)
            self._records.add(future)
            future.add_done_callback(self._records.discard)

    async def _record(self, by: str, report: cascade.CascadeReport) -> None:
        """The cascade of an opt-out, as an event in the opt-out list's trail. A
        failure is logged: the calls were cancelled all the same."""
        settings = self.server.settings
        keys = Keys(settings.key_tag)
        host = host_name(settings)
        hit, count, detail = cascade_event(report, f"cascade of opt-out by {by} on {host}")
        try:
            list_id = await self.client.call("HGET", keys.lists, settings.optout_list)
            if list_id is None:
                return
            fields = ["op", "cascade", "by", by, "via", f"gateway:optout@{host}"]
            fields += ["list", settings.optout_list, "n", str(count), "d", detail]
            if hit:
                fields += ["e", " ".join(hit)]
            await self.client.call(
                "XADD",
                keys.history(int(_text(list_id))),
                *trim_args(settings, time.time()),
                "*",
                *fields,
            )
        except Exception:
            log.exception("the cascade of an opt-out was not written to the trail")

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the cancellations queued (at shutdown),
        and for their records in the trail."""
        await self.canceller.drain(timeout)
        pending = [asyncio.wrap_future(f) for f in list(self._records)]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        """Stop the cancelling thread (after the scan under way)."""
        self.canceller.close()
