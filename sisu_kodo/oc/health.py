"""OpenCode server health: `GET /global/health` on OC_BASE_URL, and the worker's start check.

In strict mode (OC_STRICT_MODE=1, with OC_MODE live or record) a worker refuses to start,
with one ConfigError line, when the provider key is missing, when the server is
unreachable or unhealthy, or when the server is not configured with OC_PROVIDER.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sisu_kodo.config import ConfigError, OcMode, Settings
from sisu_kodo.deadlines import WaitTimeout, wait_until
from sisu_kodo.oc import providers
from sisu_kodo.oc.client import OpenCodeClient
from sisu_kodo.oc.daemon import server_password
from sisu_kodo.oc.port import PlannerError

log = logging.getLogger(__name__)

HEALTH_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class DaemonHealth:
    required: bool
    reachable: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.reachable or not self.required


def client_for(settings: Settings) -> OpenCodeClient:
    return OpenCodeClient(
        settings.planner.opencode_url,
        password=server_password(settings),
        prompt_timeout=settings.planner.oc_request_timeout_seconds,
    )


def check_daemon(settings: Settings, *, timeout: float = 3.0) -> DaemonHealth:
    required = settings.planner.oc_mode is not OcMode.REPLAY
    url = f"{settings.planner.opencode_url.rstrip('/')}/global/health"
    with client_for(settings) as client:
        try:
            body = client.health(timeout=timeout)
            healthy = bool(body.get("healthy"))
            detail = f"{url}: " + (
                f"healthy, version {body.get('version', '?')}" if healthy else "not healthy"
            )
        except PlannerError as exc:
            healthy, detail = False, f"{url}: {exc.message}"
    if not required:
        detail += f"; not needed with OC_MODE={settings.planner.oc_mode.value}"
    return DaemonHealth(required=required, reachable=healthy, detail=detail)


def check_credentials(settings: Settings) -> None:
    """Settings-only checks, before any I/O: the provider is well-formed and, in strict
    live/record mode, has a key."""
    if settings.planner.oc_mode is OcMode.REPLAY:
        return
    providers.validate_provider(settings.planner)
    if settings.planner.oc_strict_mode and providers.api_key(settings.planner) is None:
        raise ConfigError(
            f"OC_STRICT_MODE=1: no API key for OpenCode provider {settings.planner.oc_provider!r}"
            f" (set {providers.key_variable(settings.planner)})"
        )


def await_opencode(settings: Settings) -> DaemonHealth:
    """Wait (up to OC_STARTUP_TIMEOUT_SECONDS) for the server in live/record mode.

    Strict mode turns every problem into a ConfigError; otherwise the worker starts anyway
    and each failed call falls back to the built-in planner, marked on the run.
    """
    check_credentials(settings)
    if settings.planner.oc_mode is OcMode.REPLAY:
        return check_daemon(settings, timeout=1.0)
    try:
        health = wait_until(
            lambda: check_daemon(settings, timeout=2.0),
            until=lambda checked: checked.reachable,
            timeout=settings.planner.oc_startup_timeout_seconds,
            interval=HEALTH_POLL_SECONDS,
            what="OpenCode health",
        )
    except WaitTimeout as exc:
        health = exc.last
    if not health.reachable:
        if settings.planner.oc_strict_mode:
            raise ConfigError(
                f"OC_STRICT_MODE=1: OpenCode is not healthy after"
                f" {settings.planner.oc_startup_timeout_seconds:g}s ({health.detail})"
            )
        log.warning("OpenCode not healthy (%s); plans will fall back to built-in", health.detail)
        return health
    if settings.planner.oc_strict_mode:
        with client_for(settings) as client:
            try:
                configured = client.provider_ids()
            except PlannerError as exc:
                raise ConfigError(f"OC_STRICT_MODE=1: {exc.message}") from exc
        if settings.planner.oc_provider not in configured:
            raise ConfigError(
                f"OC_STRICT_MODE=1: OpenCode at {settings.planner.opencode_url} has no provider"
                f" {settings.planner.oc_provider!r} (it has: {', '.join(configured) or 'none'})"
            )
    return health
