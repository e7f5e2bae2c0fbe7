"""The one settings object, built once (from ``CALLSCREEN_*`` variables and ``.env``)
and passed down. No other module reads the environment."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from callscreen.core.model import Action


class FailPolicy(StrEnum):
    """What a call gets when screening cannot be done (Redis down or slow)."""

    OPEN = "open"  # UNSCREENED, the call proceeds
    CLOSED = "closed"  # BLOCKED with a reason saying screening was unavailable


class ReadFrom(StrEnum):
    """Where the gateway's lookups go (writes always go to the primary)."""

    PRIMARY = "primary"
    REPLICA = "replica"


class AnonymousPolicy(StrEnum):
    """What a call with no usable number (anonymous, withheld, not a number) gets."""

    ALLOW = "allow"
    LABEL = "label"
    BLOCK = "block"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every tunable of callscreen. Environment variables carry the ``CALLSCREEN_``
    prefix (``CALLSCREEN_REDIS_URL``, ``CALLSCREEN_FAIL_POLICY``, ...); lists are
    comma-separated."""

    model_config = SettingsConfigDict(
        env_prefix="CALLSCREEN_", env_file=".env", extra="ignore", frozen=True
    )

    # Redis
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://, rediss:// or unix:// URL (ignored for the address when "
        "sentinels are set; its password and db still apply)",
    )
    redis_password: SecretStr | None = None
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host:port of each Sentinel"
    )
    redis_sentinel_service: str = "callscreen"
    redis_sentinel_password: SecretStr | None = None
    redis_connect_timeout_ms: int = Field(500, ge=1)
    redis_read_url: str = Field(
        "",
        description="a replica for the lookups (Redis >= 7, EVALSHA_RO); writes stay on the "
        "primary. Empty: lookups go to the primary",
    )
    redis_read_from: ReadFrom = Field(
        ReadFrom.PRIMARY,
        description="replica: the lookups go to a replica the Sentinels name (one on this "
        "host first); needs redis_sentinels. Ignored when redis_read_url is set",
    )
    replica_max_lag_ms: int = Field(
        1000, ge=1, description="a replica further behind than this is bypassed"
    )
    key_tag: str = Field("cs", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    local_redis_dir: str = Field(
        "var/redis", description="data directory of the private Redis `serve --local-redis` starts"
    )

    # FastAGI server
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(4573, ge=0, le=65535)
    allowed_clients: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="addresses or networks allowed to connect; empty = any"
    )
    max_connections: int = Field(2000, ge=1)
    env_timeout_ms: int = Field(2000, ge=1, description="time allowed to read the AGI env block")
    idle_close_ms: int = Field(
        200,
        ge=1,
        description="above 80 % of max_connections, a connection whose AGI env has not "
        "ended this long after its accept is closed",
    )
    reply_timeout_ms: int = Field(2000, ge=1, description="time allowed for Asterisk's reply")
    max_line_bytes: int = Field(4096, ge=256)
    max_env_lines: int = Field(128, ge=8)
    shutdown_grace_s: float = Field(10.0, ge=0)

    # Screening
    default_region: str = Field("US", pattern=r"^[A-Z]{2}$")
    deadline_ms: int = Field(200, ge=1, description="answer every call within this")
    fail_policy: FailPolicy = FailPolicy.OPEN
    anonymous_policy: AnonymousPolicy = AnonymousPolicy.ALLOW
    node_name: str = ""

    log_level: str = "INFO"
    log_calls: bool = Field(True, description="one INFO log line per call")

    # Metrics (Prometheus)
    metrics_host: str = Field("127.0.0.1", description="address of the metrics endpoint")
    metrics_port: int = Field(
        9573, ge=0, le=65535, description="port of the metrics endpoint; 0 = no endpoint"
    )

    four_eyes: bool = Field(
        False,
        description="a permanent approval needs another actor than the one who added the entry",
    )

    # Cascade on blacklisting: queued call files and live calls
    cascade_enabled: bool = Field(True, description="cancel queued/live work for new blocks")
    spool_dir: str = Field(
        "/var/spool/asterisk/outgoing", description="Asterisk's outgoing spool; '' = never touch"
    )
    cascade_hangup_live: bool = Field(False, description="hang up live calls too")
    cascade_wait_s: float = Field(
        30.0, ge=0, description="how long a command waits for the gateway's cascade report"
    )
    cascade_settle_s: float = Field(
        3.0, ge=0, description="after a hang-up, wait this long for Asterisk to reschedule"
    )

    # AMI (Asterisk Manager Interface)
    ami_host: str = Field("", description="'' = AMI not configured")
    ami_port: int = Field(5038, ge=1, le=65535)
    ami_username: str = ""
    ami_secret: SecretStr | None = None
    ami_timeout_s: float = Field(5.0, gt=0, description="connect + login, and each action")
    ami_reconnect_s: float = Field(2.0, gt=0)

    # Outcome watcher: numbers the network says do not exist
    outcome_watch: bool = Field(True, description="run it when AMI is configured")
    outcome_causes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1, 22, 28], description="hangup causes meaning no such number"
    )
    outcome_threshold: int = Field(3, ge=1)
    outcome_window_s: int = Field(7 * 86400, ge=1)
    outcome_list: str = "unreachable-numbers"
    outcome_action: Action = Action.LABEL
    outcome_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="fnmatch patterns of outbound channels; empty = all"
    )

    # Opt-out requests (AGI optout route)
    optout_list: str = "do-not-call"
    optout_clients: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1"],
        description="the Asterisk hosts: addresses or networks whose optout requests "
        "are accepted (default: loopback only)",
    )
    optout_rate: float = Field(20.0, gt=0, description="optout requests a second, per peer")
    optout_burst: int = Field(100, ge=1, description="optout requests at once, per peer")

    # HTTP API (`callscreen api`)
    api_host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    api_port: int = Field(8573, ge=0, le=65535)
    api_forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="proxies trusted for X-Forwarded-For/-Proto (addresses or networks); "
        "empty: client addresses are the peers'",
    )
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed by CORS; empty: no CORS headers"
    )
    api_ssl_certfile: str = Field("", description="TLS certificate (PEM); '' = plain HTTP")
    api_ssl_keyfile: str = ""
    api_data_dir: str = Field("var/api", description="where uploaded imports are written")
    api_auth_failures_per_s: int = Field(
        10, ge=1, description="failed authentications a second per client address, then 429"
    )
    api_max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest JSON body accepted (413 past it)"
    )
    api_max_upload_bytes: int = Field(
        4 * 1024**3, ge=1024, description="largest CSV upload to an import (413 past it)"
    )

    # Audit trail: trimmed by age only, never by count (0: kept for ever)
    history_retention_days: int = Field(
        1830, ge=0, description="keep audit records this many days (0: for ever)"
    )

    # Attempt log (every screening decision, for reports)
    calllog_enabled: bool = True
    calllog_allowed: bool = Field(True, description="keep allowed calls in the log too")
    calllog_max_records: int = Field(1_000_000, ge=0, description="0: no count bound")
    calllog_max_age_days: float = Field(0.0, ge=0, description="0: no age bound")
    calllog_timezone: str = Field("UTC", description="days of the per-day counters")
    calllog_counter_days: int = Field(0, ge=0, description="0: keep counters for ever")
    calllog_blocked_days: int = Field(
        1830,
        ge=0,
        description="how long the records of blocked and labeled calls (and the days' "
        "blocked/labeled numbers) are kept, never trimmed by count; 0: for ever",
    )
    calllog_queue_max: int = Field(100_000, ge=1)
    calllog_batch_max: int = Field(256, ge=1)
    calllog_flush_interval_ms: int = Field(50, ge=1)

    @field_validator(
        "redis_sentinels",
        "allowed_clients",
        "optout_clients",
        "outcome_causes",
        "outcome_channels",
        "api_forwarded_allow_ips",
        "api_cors_origins",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("default_region", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("outcome_action")
    @classmethod
    def _no_allow(cls, value: Action) -> Action:
        if value is Action.ALLOW:
            raise ValueError("outcome_action must be label or block")
        return value

    @field_validator("calllog_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("allowed_clients", "optout_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    def client_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The allowed client addresses as networks (empty: everyone)."""
        return [ipaddress.ip_network(item, strict=False) for item in self.allowed_clients]

    def optout_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The addresses whose ``optout`` requests are accepted (empty: none)."""
        return [ipaddress.ip_network(item, strict=False) for item in self.optout_clients]

    def safe_dump(self) -> dict[str, object]:
        """The settings with every secret masked, for logs and ``--json`` output."""
        data = self.model_dump(mode="json")
        for key in ("redis_password", "redis_sentinel_password", "ami_secret"):
            if data.get(key):
                data[key] = "***"
        data["redis_url"] = mask_url(self.redis_url)
        return data


#: The settings a running gateway takes on when it reloads (SIGHUP); every other one
#: (Redis, listening address, metrics endpoint, key tag, ...) needs a restart.
LIVE_SETTINGS = frozenset(
    {
        "allowed_clients",
        "max_connections",
        "env_timeout_ms",
        "idle_close_ms",
        "reply_timeout_ms",
        "max_line_bytes",
        "max_env_lines",
        "shutdown_grace_s",
        "default_region",
        "deadline_ms",
        "fail_policy",
        "anonymous_policy",
        "log_level",
        "log_calls",
        "optout_clients",
        "optout_rate",
        "optout_burst",
    }
)


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``(scheme, user-info or None, the rest)`` of a URL. The user-info runs to the
    **last** ``@`` (a password may hold ``/ ? # @ :`` unencoded; an ``@`` in the query
    must then be written ``%40``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, url
    if "@" not in rest:
        return scheme, None, rest
    userinfo, _, host = rest.rpartition("@")
    return scheme, userinfo, host


def mask_url(url: str) -> str:
    """A URL for messages: its whole user-info hidden (``redis://u:secret@h/0`` ->
    ``redis://***@h/0``). No part of a user name or password is ever shown."""
    scheme, userinfo, rest = split_userinfo(url)
    if userinfo is None:
        return url
    return f"{scheme}://***@{rest}"
