"""Settings: the only module that reads the environment.

Every process builds one `Settings` in its entry point and passes it down. The
variable names are the ops manual's (section 0), bound by alias, so an operator
exports exactly what the manual says.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "sisu-kodo"


class OcMode(StrEnum):
    REPLAY = "replay"
    RECORD = "record"
    LIVE = "live"


class SandboxMode(StrEnum):
    MOCK = "mock"
    LIVE = "live"


class SandboxProviderName(StrEnum):
    E2B = "e2b"
    MICROSANDBOX = "microsandbox"
    LOCAL = "local"
    MOCK = "mock"


class Settings(BaseSettings):
    """Configuration of every Sisu-Kodo process (API shim, worker, CLI)."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    # --- core connectivity (manual section 0) ---
    oc_server_port: int = Field(
        4096, alias="OC_SERVER_PORT", ge=1, le=65535, description="Port of `opencode serve`."
    )
    oc_base_url: str | None = Field(
        None,
        alias="OC_BASE_URL",
        description="OpenCode server URL; defaults to http://127.0.0.1:$OC_SERVER_PORT.",
    )
    oc_mode: OcMode = Field(
        OcMode.REPLAY, alias="OC_MODE", description="replay (deterministic), record or live."
    )
    oc_strict_mode: bool = Field(
        False, alias="OC_STRICT_MODE", description="Fail closed instead of falling back."
    )
    sb_mode: SandboxMode = Field(
        SandboxMode.MOCK,
        validation_alias=AliasChoices("SB_MODE", "SBX_MODE"),
        description="mock (deterministic) or live sandboxes; SBX_MODE is accepted as an alias.",
    )
    sbx_provider: SandboxProviderName = Field(
        SandboxProviderName.E2B, alias="SBX_PROVIDER", description="Live sandbox provider."
    )

    # --- topology and identity ---
    host: str = Field("127.0.0.1", alias="SISU_HOST", description="Interface the servers bind.")
    port: int = Field(3001, alias="PORT", ge=1, le=65535, description="HTTP API port.")
    admin_port: int = Field(
        3002, alias="ADMIN_PORT", ge=1, le=65535, description="Worker admin port."
    )
    app_version: str = Field(
        "v1",
        alias="DBOS__APPVERSION",
        min_length=1,
        description="Workflow code version; must match between shim and worker.",
    )
    executor_id: str | None = Field(
        None,
        alias="SISU_EXECUTOR_ID",
        description="Stable, unique worker identity; default <hostname>-worker-<n>.",
    )

    # --- storage ---
    database_url: str | None = Field(
        None,
        alias="DATABASE_URL",
        description="PostgreSQL URL; unset means an embedded server under SISU_DATA_DIR.",
    )
    system_database_url: str | None = Field(
        None,
        alias="DBOS_SYSTEM_DATABASE_URL",
        description="Separate database for DBOS's system tables; default DATABASE_URL.",
    )
    data_dir: Path | None = Field(
        None,
        alias="SISU_DATA_DIR",
        description="Embedded PostgreSQL data and pid files; default the user data dir.",
    )

    # --- queues and execution ---
    intent_partition_concurrency: int = Field(
        4,
        alias="SISU_INTENT_PARTITION_CONCURRENCY",
        ge=1,
        description="Runs of one tenant (partition) executing at once on intentQ.",
    )
    sbx_partition_concurrency: int = Field(
        32,
        alias="SISU_SBX_PARTITION_CONCURRENCY",
        ge=1,
        description="Sandbox tasks of one tenant running at once on sbxQ.",
    )
    sbx_worker_concurrency: int = Field(
        64,
        alias="SISU_SBX_WORKER_CONCURRENCY",
        ge=1,
        description="Sandbox tasks one worker process runs at once.",
    )
    queue_poll_seconds: float = Field(
        0.1,
        alias="SISU_QUEUE_POLL_SECONDS",
        gt=0,
        le=10,
        description="How often a worker polls its queues.",
    )
    task_max_attempts: int = Field(
        3,
        alias="SISU_TASK_MAX_ATTEMPTS",
        ge=1,
        le=20,
        description="Attempts per sandbox task for infrastructure failures.",
    )
    task_retry_interval_seconds: float = Field(
        0.5,
        alias="SISU_TASK_RETRY_INTERVAL_SECONDS",
        ge=0,
        description="First back-off between attempts; doubles each attempt.",
    )
    task_timeout_ms: int = Field(
        300_000, alias="SBX_DEFAULT_TIMEOUT_MS", ge=1, description="Wall limit per task."
    )
    mock_latency_ms: int = Field(
        40,
        alias="SBX_MOCK_LATENCY_MS",
        ge=0,
        description="Simulated work per task in the mock provider.",
    )
    heartbeat_seconds: float = Field(
        2.0, alias="SISU_HEARTBEAT_SECONDS", gt=0, description="Worker heartbeat period."
    )
    heartbeat_ttl_seconds: float = Field(
        10.0,
        alias="SISU_HEARTBEAT_TTL_SECONDS",
        gt=0,
        description="A worker whose heartbeat is older than this is dead.",
    )
    artifact_max_bytes: int = Field(
        1_048_576,
        alias="SISU_ARTIFACT_MAX_BYTES",
        ge=1024,
        description="Cap per stored task artifact (stdout, stderr, file); longer is truncated"
        " and marked so in the task's artifact index.",
    )

    sweep_seconds: float = Field(
        2.0,
        alias="SISU_SWEEP_SECONDS",
        gt=0,
        description="How often a worker looks for dead workers whose workflows to take over.",
    )
    chaos_pause: dict[str, float] = Field(
        default_factory=dict,
        alias="SISU_CHAOS_PAUSE",
        description="Fault injection for crash drills: JSON {point: seconds} pauses a worker"
        " at compile, record_task_outcome or finish_execute.",
    )

    @field_validator("oc_base_url", "database_url", "system_database_url")
    @classmethod
    def _no_blank_urls(cls, value: str | None) -> str | None:
        return value.strip() if value else None

    @property
    def opencode_url(self) -> str:
        return self.oc_base_url or f"http://127.0.0.1:{self.oc_server_port}"

    @property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        import platformdirs

        return Path(platformdirs.user_data_dir(APP_NAME))

    @property
    def default_executor_prefix(self) -> str:
        return f"{socket.gethostname()}-worker"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with some fields replaced (used by entry points after resolving URLs)."""
        return self.model_copy(update=values)


class ConfigError(Exception):
    """The environment holds a value Sisu-Kodo cannot start with."""


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; an invalid value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = _variable_name(first.get("loc", ()))
        got = first.get("input")
        raise ConfigError(f"invalid {variable}={got!r}: {first.get('msg')}") from exc


def _variable_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "configuration"
    field_name = str(loc[0])
    field = Settings.model_fields.get(field_name)
    if field is None:
        return field_name
    if isinstance(field.validation_alias, AliasChoices):
        return " / ".join(str(choice) for choice in field.validation_alias.choices)
    return field.alias or field_name
