"""The OpenCode HTTP client (`opencode serve` v1 routes), plain httpx.

The PyPI `opencode-ai` SDK is stale (wrong routes and bodies), so the few calls planning
needs live here. Every failure leaves this module as a `PlannerError` with a
`PlannerFailure` code; no httpx exception escapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from sisu_kodo.oc.port import PlannerError, PlannerFailure

log = logging.getLogger(__name__)

SERVER_USERNAME = "opencode"
CONNECT_TIMEOUT_SECONDS = 3.0
CONTROL_TIMEOUT_SECONDS = 10.0

# Deny every tool, then re-allow only the one structured output travels through: the
# `plan` agent alone still allows bash and webfetch, and any `ask` rule would block a
# headless session forever.
PLAN_ONLY_PERMISSIONS: list[dict[str, str]] = [
    {"permission": "*", "pattern": "*", "action": "deny"},
    {"permission": "StructuredOutput", "pattern": "*", "action": "allow"},
]


@dataclass(frozen=True)
class StructuredReply:
    structured: Any
    message_id: str
    provider_id: str
    model_id: str
    tokens: dict[str, Any] = field(default_factory=dict)


class OpenCodeClient:
    """One OpenCode server. Thread-safe: each prompt gets a session of its own, so no session
    ever sees two prompts at once (a second prompt to a busy session gets crossed replies)."""

    def __init__(
        self,
        base_url: str,
        *,
        password: str | None = None,
        prompt_timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._prompt_timeout = prompt_timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=(SERVER_USERNAME, password) if password else None,
            timeout=httpx.Timeout(CONTROL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenCodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """`GET /global/health`: {"healthy": true, "version": "..."} when up."""
        body = self._json("GET", "/global/health", timeout=timeout)
        if not isinstance(body, dict):
            raise PlannerError.of(PlannerFailure.SERVER_ERROR, "health answered no JSON object")
        return body

    def provider_ids(self) -> list[str]:
        """The providers the server is configured with (`GET /config/providers`)."""
        body = self._json("GET", "/config/providers")
        providers = body.get("providers", []) if isinstance(body, dict) else []
        return [str(p.get("id")) for p in providers if isinstance(p, dict)]

    def structured(
        self,
        *,
        agent: str,
        provider_id: str,
        model_id: str,
        schema: dict[str, Any],
        text: str,
        title: str,
    ) -> StructuredReply:
        """Ask once for a JSON answer under `schema`; a stalled prompt is aborted and asked
        again once in a fresh session, then fails with PlannerFailure.TIMEOUT."""
        body = {
            "agent": agent,
            "model": {"providerID": provider_id, "modelID": model_id},
            "format": {"type": "json_schema", "schema": schema},
            "parts": [{"type": "text", "text": text}],
        }
        for attempt in (1, 2):
            session_id = self._new_session(title)
            try:
                return self._prompt(session_id, body)
            except httpx.TimeoutException:
                self._abort(session_id)
                log.warning(
                    "OpenCode prompt stalled for %.0fs (attempt %d of 2); aborted",
                    self._prompt_timeout,
                    attempt,
                )
            finally:
                self._delete_session(session_id)
        raise PlannerError.of(
            PlannerFailure.TIMEOUT,
            f"no answer within {self._prompt_timeout:g}s, twice (prompt aborted both times)",
        )

    def _prompt(self, session_id: str, body: dict[str, Any]) -> StructuredReply:
        """The sync prompt; raises httpx.TimeoutException for the caller's abort-and-retry."""
        try:
            response = self._http.post(
                f"/session/{session_id}/message", json=body, timeout=self._read_timeout()
            )
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise PlannerError.of(
                PlannerFailure.UNREACHABLE, f"{self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        sent = self._checked(response)
        message_id = str(sent.get("info", {}).get("id", "")) if isinstance(sent, dict) else ""
        if not message_id:
            raise PlannerError.of(PlannerFailure.SERVER_ERROR, "the prompt returned no message")
        # Listing messages 400s after a `format` prompt (upstream #26929): read by id only.
        reply = self._json("GET", f"/session/{session_id}/message/{message_id}")
        info = reply.get("info", {}) if isinstance(reply, dict) else {}
        _raise_for_message_error(info.get("error"))
        if "structured" not in info or info["structured"] is None:
            raise PlannerError.of(
                PlannerFailure.NO_STRUCTURED_OUTPUT, "the model answered without the plan tool"
            )
        return StructuredReply(
            structured=info["structured"],
            message_id=message_id,
            provider_id=str(info.get("providerID", "")),
            model_id=str(info.get("modelID", "")),
            tokens=info.get("tokens") or {},
        )

    def _read_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self._prompt_timeout, connect=CONNECT_TIMEOUT_SECONDS)

    def _new_session(self, title: str) -> str:
        body = self._json(
            "POST", "/session", json={"title": title, "permission": PLAN_ONLY_PERMISSIONS}
        )
        session_id = body.get("id") if isinstance(body, dict) else None
        if not session_id:
            raise PlannerError.of(PlannerFailure.SERVER_ERROR, "POST /session returned no id")
        return str(session_id)

    def _abort(self, session_id: str) -> None:
        # Best effort: a client timeout does not stop the server's work, the abort does.
        try:
            self._http.post(f"/session/{session_id}/abort")
        except httpx.HTTPError as exc:
            log.warning("could not abort OpenCode session %s: %s", session_id, exc)

    def _delete_session(self, session_id: str) -> None:
        try:
            self._http.delete(f"/session/{session_id}")
        except httpx.HTTPError as exc:
            log.warning("could not delete OpenCode session %s: %s", session_id, exc)

    def _json(
        self, method: str, path: str, *, json: Any = None, timeout: float | None = None
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise PlannerError.of(
                PlannerFailure.TIMEOUT, f"{method} {self.base_url}{path} timed out"
            ) from exc
        except httpx.HTTPError as exc:
            raise PlannerError.of(
                PlannerFailure.UNREACHABLE, f"{self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        return self._checked(response)

    def _checked(self, response: httpx.Response) -> Any:
        where = f"{response.request.method} {response.request.url.path}"
        if response.status_code in (401, 403):
            raise PlannerError.of(
                PlannerFailure.AUTH, f"{where}: HTTP {response.status_code} (server password?)"
            )
        if response.status_code >= 400:
            raise PlannerError.of(
                PlannerFailure.SERVER_ERROR,
                f"{where}: HTTP {response.status_code}: {response.text[:300]}",
            )
        # Unknown routes fall through to the web UI and answer 200 text/html.
        if "json" not in response.headers.get("content-type", ""):
            raise PlannerError.of(PlannerFailure.SERVER_ERROR, f"{where}: answered no JSON")
        try:
            return response.json()
        except ValueError as exc:
            raise PlannerError.of(PlannerFailure.SERVER_ERROR, f"{where}: bad JSON") from exc


def _raise_for_message_error(error: Any) -> None:
    """Failed prompts come back as HTTP 200 with `info.error`; turn that into our error."""
    if not error:
        return
    name = str(error.get("name", "Error")) if isinstance(error, dict) else "Error"
    data = error.get("data", {}) if isinstance(error, dict) else {}
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    status = data.get("statusCode") if isinstance(data, dict) else None
    if status in (401, 403):
        failure = PlannerFailure.AUTH
    elif name == "StructuredOutputError":
        failure = PlannerFailure.NO_STRUCTURED_OUTPUT
    elif name == "MessageAbortedError":
        failure = PlannerFailure.TIMEOUT
    else:
        failure = PlannerFailure.MODEL_ERROR
    raise PlannerError.of(failure, f"{name}: {message}" + (f" (HTTP {status})" if status else ""))
