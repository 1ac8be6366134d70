"""OpenCode daemon health: `GET /global/health` on OC_BASE_URL."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from sisu_kodo.config import OcMode, Settings


@dataclass(frozen=True)
class DaemonHealth:
    required: bool
    reachable: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.reachable or not self.required


def check_daemon(settings: Settings, *, timeout: float = 3.0) -> DaemonHealth:
    required = settings.oc_mode is not OcMode.REPLAY
    url = f"{settings.opencode_url.rstrip('/')}/global/health"
    try:
        response = httpx.get(url, timeout=timeout)
        body = response.json() if response.status_code == 200 else {}
        healthy = bool(body.get("healthy"))
        detail = f"{url}: HTTP {response.status_code}" + (
            f", healthy, version {body.get('version', '?')}" if healthy else ", not healthy"
        )
    except (httpx.HTTPError, ValueError) as exc:
        healthy, detail = False, f"{url}: unreachable ({type(exc).__name__})"
    if not required:
        detail += f"; not needed with OC_MODE={settings.oc_mode.value}"
    return DaemonHealth(required=required, reachable=healthy, detail=detail)
