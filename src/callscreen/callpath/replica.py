"""Lookups from a replica beside the gateway, while it is linked and close enough.

With ``redis_read_url`` (a replica's URL), or ``redis_read_from=replica`` with Sentinels
(a replica the Sentinels name, one on this host first), the screener sends its lookups
(``EVALSHA_RO`` of the read-only lookup script) to the replica; everything that writes
(the attempt log, opt-outs) stays on the primary.

A replica is used only while it is **linked and its lag is under**
``replica_max_lag_ms`` (default 1,000). That is checked in the background every
:data:`CHECK_S`, never per call, by comparing the primary's replication offset with the
replica's: the lag is how long ago the primary first passed the offset the replica has
reached (0 when the replica has everything the primary had at the last check; unknown,
so too much, when the primary had passed it before the oldest sample). When the
replica is not usable, lookups go to the primary; if that fails too, the call gets the
fail policy, as without a replica. A lookup that fails on the replica (it went away
between two checks) is sent to the primary within the same deadline, and the replica is
left until the next check finds it well.

When the **primary** is down, a replica that was linked and within the lag at the last
check stays in use: no write can reach it meanwhile (writes need the primary), so its
answers are the real ones; calls keep their decisions while the writes of the attempt
log queue as they do without a replica. It is dropped once a primary is back and the
replica is not linked to it (a Sentinel failover re-points it; with Sentinels the
replicas are asked for again at each check).

Replica reads need Redis 7.0 or later (``EVALSHA_RO``, script flags): an older replica is
refused at start with a clear error (:meth:`ReadRouter.start`), or never used if it was
unreachable then and found old later.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import time
from collections import deque
from typing import Any

from callscreen.callpath.leanredis import LeanRedis, RedisTarget, parse_host_port
from callscreen.core.config import ReadFrom, Settings
from callscreen.core.errors import InvalidInput, StoreError

log = logging.getLogger("callscreen.replica")

CHECK_S = 0.1  # how often the replica's link and lag are checked
CHECK_TIMEOUT_S = 0.5
OFFSET_HISTORY_S = 30.0
MIN_VERSION = (7, 0)


def parse_info(reply: Any) -> dict[str, str]:
    """An ``INFO`` reply as a dict."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def version_of(info: dict[str, str]) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in info.get("redis_version", "0").split(".")[:2])
    except ValueError:
        return (0,)


def replica_lag(history: deque[tuple[float, int]], offset: int, now: float) -> float:
    """Seconds the replica is behind: how long ago the primary first passed ``offset``
    (the samples are ``(time, primary offset)``, oldest first); 0 when it has the last.
    Infinite when the primary was past ``offset`` already at the oldest sample: how
    long ago is unknown (a replica far behind when the gateway starts is not used
    until it reaches a sampled offset)."""
    if not history or offset >= history[-1][1]:
        return 0.0
    if offset < history[0][1]:
        return math.inf
    for at, primary in history:
        if primary > offset:
            return now - at
    return 0.0


def local_addresses() -> set[str]:
    """This host's addresses, to prefer a replica on it."""
    found = {"127.0.0.1", "::1", "localhost"}
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return found


class ReadRouter:
    """Which client a lookup uses: the replica while it is usable, else the primary.

    ``ReadRouter(settings, primary)`` with the screener's primary client; ``start()`` in the
    running loop (refuses an old replica), ``close()`` at the end. :meth:`client` is
    the call path's one question, a field read.
    """

    def __init__(self, settings: Settings, primary: LeanRedis) -> None:
        self.settings = settings
        self.primary = primary
        self.max_lag = settings.replica_max_lag_ms / 1000
        self.replica: LeanRedis | None = None
        self.usable = False
        self.lag = 0.0  # seconds, at the last check
        self.linked = False
        self.reason = "not checked yet"
        self.replica_reads = 0
        self.primary_reads = 0
        self.fallbacks = 0  # lookups the replica failed, sent to the primary
        self.checks = 0  # background checks done
        self._sentinels = [parse_host_port(s) for s in settings.redis_sentinels]
        self._history: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._verified = False
        self._check_primary = LeanRedis.from_settings(
            settings, command_timeout=CHECK_TIMEOUT_S, connect_timeout=CHECK_TIMEOUT_S
        )
        self._check_replica: LeanRedis | None = None
        if settings.redis_read_url:
            self._set_replica(
                RedisTarget.from_url(settings.redis_read_url, password=self._password())
            )
        elif settings.redis_read_from is ReadFrom.REPLICA and not self._sentinels:
            raise InvalidInput("redis_read_from=replica needs redis_sentinels")

    @classmethod
    def wanted(cls, settings: Settings) -> bool:
        """Whether the settings ask for replica reads."""
        return bool(settings.redis_read_url) or settings.redis_read_from is ReadFrom.REPLICA

    def _password(self) -> str | None:
        secret = self.settings.redis_password
        return secret.get_secret_value() if secret is not None else None

    def _set_replica(self, target: RedisTarget) -> None:
        options: dict[str, Any] = {"connect_timeout": self.settings.redis_connect_timeout_ms / 1000}
        self.replica = LeanRedis(target, follow_moved=False, **options)
        self._check_replica = LeanRedis(
            target,
            follow_moved=False,
            command_timeout=CHECK_TIMEOUT_S,
            connect_timeout=CHECK_TIMEOUT_S,
        )
        self._verified = False
        self.usable = False

    # -- the call path

    def client(self) -> LeanRedis:
        """The client for the next lookup."""
        if self.usable and self.replica is not None:
            self.replica_reads += 1
            return self.replica
        self.primary_reads += 1
        return self.primary

    def failed(self, client: LeanRedis) -> bool:
        """A lookup failed on ``client``: True when it was the replica (then bypassed
        until the next check finds it well; the lookup may go to the primary)."""
        if client is self.replica and client is not self.primary:
            self.usable = False
            self.reason = "a lookup failed on it"
            self.fallbacks += 1
            return True
        return False

    # -- lifecycle

    async def start(self) -> None:
        """Check the replica once (an old Redis is refused: :class:`InvalidInput`), then
        keep checking in the background."""
        if self._sentinels and self.replica is None:
            await self._discover()
        if self._check_replica is not None:
            try:
                info = parse_info(await self._check_replica.call("INFO", "server"))
            except StoreError as exc:
                log.warning("replica reads: the replica cannot be reached yet: %s", exc)
            else:
                try:
                    self._verify(info)
                except InvalidInput:
                    await self.close()
                    raise
        await self.check()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="replica-check")

    def _verify(self, info: dict[str, str]) -> None:
        version = version_of(info)
        if version < MIN_VERSION:
            assert self.replica is not None
            raise InvalidInput(
                f"replica reads need Redis 7.0 or later (EVALSHA_RO, read-only scripts); "
                f"the replica at {self.replica.target.describe()} runs "
                f"{info.get('redis_version', '?')}: unset CALLSCREEN_REDIS_READ_URL / "
                "CALLSCREEN_REDIS_READ_FROM or upgrade it"
            )
        self._verified = True

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait((task,))
        for client in (self.replica, self._check_replica, self._check_primary):
            if client is not None:
                await client.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            try:
                await self.check()
            except Exception:  # a bug: never let it end the checks
                log.exception("replica check failed")

    # -- the check

    async def check(self) -> None:
        """Look at the primary's offset and the replica's link and offset once."""
        self.checks += 1
        now = time.monotonic()
        primary_up = True
        try:
            pinfo = parse_info(await self._check_primary.call("INFO", "replication"))
            self._history.append((now, int(pinfo.get("master_repl_offset", "0"))))
            while self._history and self._history[0][0] < now - OFFSET_HISTORY_S:
                self._history.popleft()
        except (StoreError, ValueError):
            primary_up = False
        if self._sentinels and (self.replica is None or not self.usable):
            await self._discover()
        if self._check_replica is None:
            self._set_usable(False, "no replica known")
            return
        try:
            if not self._verified:
                self._verify(parse_info(await self._check_replica.call("INFO", "server")))
            rinfo = parse_info(await self._check_replica.call("INFO", "replication"))
        except InvalidInput as exc:
            self._set_usable(False, str(exc))
            return
        except StoreError as exc:
            self._set_usable(False, f"unreachable: {exc}")
            return
        role = rinfo.get("role", "")
        self.linked = role == "slave" and rinfo.get("master_link_status") == "up"
        if not self.linked:
            if not primary_up and self.usable:
                return  # the primary is down: what the replica has is all there is
            self._set_usable(False, f"not linked to the primary (role {role or '?'})")
            return
        try:
            offset = int(rinfo.get("slave_repl_offset", "0"))
        except ValueError:
            offset = 0
        self.lag = replica_lag(self._history, offset, now) if primary_up else self.lag
        if self.lag > self.max_lag:
            behind = (
                "behind the oldest offset sampled"
                if math.isinf(self.lag)
                else f"{self.lag * 1000:.0f} ms behind"
            )
            self._set_usable(False, f"{behind} the primary")
            return
        self._set_usable(True, "linked")

    def _set_usable(self, usable: bool, reason: str) -> None:
        if usable != self.usable:
            where = self.replica.target.describe() if self.replica is not None else "?"
            if usable:
                log.info("replica reads: using %s (%s)", where, reason)
            else:
                log.warning("replica reads: not using %s: %s", where, reason)
        self.usable = usable
        self.reason = reason

    async def _discover(self) -> None:
        """Ask the Sentinels for the service's replicas; take one on this host first."""
        here = local_addresses()
        for host, port in self._sentinels:
            probe = LeanRedis(
                RedisTarget(host=host, port=port),
                command_timeout=CHECK_TIMEOUT_S,
                connect_timeout=CHECK_TIMEOUT_S,
            )
            try:
                secret = self.settings.redis_sentinel_password
                if secret is not None:
                    await probe.call("AUTH", secret.get_secret_value())
                reply = await probe.call(
                    "SENTINEL", "replicas", self.settings.redis_sentinel_service
                )
            except StoreError:
                continue
            finally:
                await probe.close()
            candidates = []
            for item in reply or ():
                fields = dict(zip(item[::2], item[1::2], strict=False))
                flags = fields.get(b"flags", b"").decode()
                if any(bad in flags for bad in ("s_down", "o_down", "disconnected")):
                    continue
                ip, rport = fields.get(b"ip", b"").decode(), int(fields.get(b"port", b"0"))
                candidates.append((ip not in here, ip, rport))
            if not candidates:
                return
            _, ip, rport = min(candidates)
            if self.replica is None or (self.replica.target.host, self.replica.target.port) != (
                ip,
                rport,
            ):
                old = (self.replica, self._check_replica)
                base = RedisTarget.from_url(self.settings.redis_url, password=self._password())
                self._set_replica(dataclasses.replace(base, host=ip, port=rport, path=None))
                for client in old:
                    if client is not None:
                        await client.close()
                log.info("replica reads: the Sentinels name %s:%d", ip, rport)
            return
