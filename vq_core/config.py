"""Configuration: environment variables (``VQ_…``) over an optional ``vq.toml`` over defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vq_core.video_service import url_origin


class ConfigError(Exception):
    """Configuration that cannot be used; the message says which setting and why."""


def default_data_dir() -> Path:
    """Where the embedded database and rendered media live when nothing else is set."""
    # As root, pgserver opens every parent of its data folder to other users;
    # /var/lib/vq keeps that away from /root.
    if os.geteuid() == 0:
        return Path("/var/lib/vq")
    return Path(platformdirs.user_data_dir("vq", appauthor=False))


def parse_origins(value: list[str]) -> list[str]:
    """Origins as ``url_origin`` writes them (the port always written), from a setting's
    ``scheme://host:port`` entries; ``ValueError`` names an entry that is not one."""
    origins = []
    for entry in value:
        try:
            origin = url_origin(entry)
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not an origin like http://127.0.0.1:8080 ({exc})"
            ) from None
        # Scheme, host and port only: a path would suggest a check that is not made.
        import httpx  # here, not at the top: see vq_core.video_service.url_origin

        url = httpx.URL(entry)
        if url.path not in ("", "/") or url.query or url.fragment or url.userinfo:
            raise ValueError(f"{entry!r}: give only scheme, host and port, as in {origin}")
        origins.append(origin)
    return origins


class AlertSettings(BaseModel):
    """Alert rules' thresholds and delivery (``[alerts]`` in vq.toml, ``VQ_ALERTS__KEY``)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    enabled: bool = True
    interval: float = Field(default=10.0, gt=0, description="seconds between rule checks")
    cooldown: float = Field(default=900.0, ge=0, description="seconds before a repeat")
    queue_depth: int = Field(default=20, ge=0, description="ready jobs of one type")
    depth_thresholds: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="job type -> its own queue_depth"
    )
    worker_failures: int = Field(default=3, ge=1, description="failed attempts in a row")
    oldest_queued_s: float = Field(default=900.0, gt=0, description="wait of a ready job")
    failure_rate: float = Field(default=0.5, ge=0, le=1, description="failed / finished")
    failure_window_s: float = Field(default=900.0, gt=0)
    failure_min_jobs: int = Field(default=10, ge=1, description="finished jobs to judge a rate")
    sink_timeout: float = Field(default=5.0, gt=0, description="seconds per delivery attempt")
    sink_attempts: int = Field(default=3, ge=1)
    sink_retry_delay: float = Field(default=0.5, ge=0)
    keep_resolved_days: float = Field(default=30.0, gt=0)


class CallbackSettings(BaseModel):
    """Completion callbacks (``[callbacks]`` in vq.toml, ``VQ_CALLBACKS__KEY``):
    docs/platform.md, "Completion callbacks"."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    secret: str | None = Field(
        default=None,
        repr=False,
        description="the HMAC-SHA256 key of X-VQ-Signature; unset: callbacks are not sent",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="origins (scheme://host:port) a callback URL may point to; empty: none",
    )
    max_attempts: int = Field(default=10, ge=1, le=100, description="attempts per delivery")
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per attempt")
    backoff: float = Field(
        default=2.0, ge=0, description="seconds before the 2nd attempt, doubling after"
    )
    max_backoff: float = Field(default=600.0, ge=0, description="the longest wait between attempts")
    interval: float = Field(
        default=5.0, gt=0, description="seconds between looks for due deliveries (the fallback)"
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return parse_origins(value)


class Settings(BaseSettings):
    """Every setting of vq. See docs/configuration.md for the reference."""

    model_config = SettingsConfigDict(
        env_prefix="VQ_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        defer_build=True,
    )

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN; unset means the embedded server"
    )
    listen_database_url: str | None = Field(
        default=None,
        description="a direct PostgreSQL DSN for LISTEN and migrations, past the pooler that "
        "database_url names; unset: database_url",
    )
    database_pooler: Literal["none", "pgbouncer"] = Field(
        default="none",
        description="pgbouncer: database_url is PgBouncer in transaction mode, so no "
        "prepared statement is kept across transactions",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout: float = Field(
        default=10.0, gt=0, description="seconds to open a database connection"
    )
    db_statement_timeout: float = Field(
        default=60.0, gt=0, description="seconds a statement may take before it is cancelled"
    )
    # The kernel's limits on TCP_KEEPIDLE/TCP_KEEPINTVL (32767) and TCP_KEEPCNT (127).
    db_keepalives_idle: int = Field(
        default=30, ge=1, le=32767, description="idle seconds before TCP keepalive probes"
    )
    db_keepalives_interval: int = Field(
        default=10, ge=1, le=32767, description="seconds between TCP keepalive probes"
    )
    db_keepalives_count: int = Field(
        default=3, ge=1, le=127, description="unanswered probes before the connection is dropped"
    )

    concurrency: int = Field(default=10, ge=1, le=10_000)
    prefetch: int = Field(
        default=2000,
        ge=0,
        le=100_000,
        description="jobs a worker may hold beyond its concurrency, waiting for a slot, "
        "when they run fast enough to start within prefetch_wait (0: never)",
    )
    prefetch_wait: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="seconds a prefetched job may expect to wait for a slot, at the "
        "measured mean run time",
    )
    lease_seconds: float = Field(default=30.0, gt=1)
    claim_oldest_every: int = Field(
        default=10,
        ge=0,
        description="every Nth claim takes the oldest ready jobs whatever their priority "
        "(0: strict priority)",
    )
    poll_interval: float = Field(default=2.0, gt=0)
    lease_recovery_interval: float = Field(default=5.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)
    shutdown_db_timeout: float = Field(
        default=10.0, gt=0, description="seconds the shutdown may spend on the database"
    )
    default_timeout: float = Field(default=600.0, gt=0)
    default_max_retries: int = Field(default=3, ge=0)
    retry_base_delay: float = Field(default=2.0, ge=0)
    retry_max_delay: float = Field(default=600.0, ge=0)
    verify_timeout: float = Field(default=10.0, gt=0)
    video_origins: list[str] = Field(
        default_factory=list,
        description="origins a video URL may point to; empty: the services' and public_url's",
    )
    verify_max_redirects: int = Field(
        default=5, ge=0, description="redirects the video check follows"
    )
    health_check_interval: float = Field(default=15.0, gt=0)
    health_check_timeout: float = Field(default=5.0, gt=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=30.0, gt=0)
    forget_workers_after: float = Field(
        default=3600.0, gt=0, description="seconds of silence before a worker row is deleted"
    )
    prune_after_days: float = Field(default=30.0, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL clients use to reach this server's /media"
    )
    media_dir: Path | None = None

    plugins: list[str] = Field(default_factory=list, description="extra plugin modules")
    disabled_plugins: list[str] = Field(default_factory=list)
    services: dict[str, str] = Field(
        default_factory=dict, description="job type -> service name overrides"
    )
    plugin_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="auto: uvloop for vq run and vq worker when installed (vq[all]), "
        "else asyncio; one-shot commands run on asyncio",
    )
    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _dsn_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value or None

    @model_validator(mode="after")
    def _pooler_needs_direct_url(self) -> Settings:
        # LISTEN through a transaction pooler succeeds and then hears nothing, and the
        # migrations' session lock would be taken and released on different server
        # connections: both need the direct URL, and a silent fallback would hide it.
        if self.listen_database_url and not self.database_url:
            raise ValueError("listen_database_url: set database_url too")
        if self.database_pooler != "none" and not (self.database_url and self.listen_database_url):
            raise ValueError(
                "database_pooler: set database_url (the pooler) and listen_database_url "
                "(a direct connection, for LISTEN and migrations)"
            )
        return self

    @field_validator("video_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return parse_origins(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("VQ_CONFIG", "vq.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def resolved_media_dir(self) -> Path:
        """Folder of rendered videos, served under ``/media``."""
        return self.media_dir or self.data_dir / "media"

    @property
    def resolved_public_url(self) -> str:
        """Base URL of this server as clients reach it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """The ``[plugin_config.NAME]`` table (or ``VQ_PLUGIN_CONFIG__NAME__KEY``) for a plugin."""
        return dict(self.plugin_config.get(name, {}))


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's error into a ``ConfigError`` naming each bad field."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
