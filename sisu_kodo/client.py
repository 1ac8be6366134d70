"""A typed HTTP client for the Sisu-Kodo API, raising the server's own error classes."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.runs import (
    Accepted,
    RetryAccepted,
    RunEventView,
    RunStart,
    RunStarted,
    RunView,
    Workload,
)
from sisu_kodo.contracts.workspaces import RunDiff, TaskDiff, WorkspaceView
from sisu_kodo.deadlines import wait_until
from sisu_kodo.errors import AppError, error_class_for


class SisuClient:
    def __init__(
        self, base_url: str, *, timeout: float = 30.0, api_key: str | SecretStr | None = None
    ) -> None:
        """`api_key` (e.g. settings.api.api_key, from SISU_API_KEY) goes as a bearer token."""
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> SisuClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise _error_from(response)
        return response

    def healthz(self) -> dict[str, Any]:
        body: dict[str, Any] = self._call("GET", "/healthz").json()
        return body

    def create_intent(self, intent: IntentCreate) -> str:
        response = self._call("POST", "/intents", json=intent.model_dump())
        return str(response.json()["intentId"])

    def start_run(self, intent_id: str, start: RunStart) -> RunStarted:
        response = self._call(
            "POST", f"/intents/{intent_id}/run", json=start.model_dump(exclude_none=True)
        )
        return RunStarted.model_validate(response.json())

    def submit(
        self,
        goal: str,
        *,
        partition: str,
        steps: int,
        concurrency: int,
        constraints: dict[str, Any] | None = None,
        recipe: str = "sandbox-default",
    ) -> RunStarted:
        """Post an intent and start its run (the manual's L01) in one call."""
        intent_id = self.create_intent(IntentCreate(goal=goal, constraints=constraints or {}))
        return self.start_run(
            intent_id,
            RunStart(
                recipeName=recipe,
                queuePartitionKey=partition,
                workload=Workload(concurrency=concurrency, steps=steps),
            ),
        )

    def get_run(self, run_id: str) -> RunView:
        return RunView.model_validate(self._call("GET", f"/runs/{run_id}").json())

    def wait(
        self,
        run_id: str,
        done: Callable[[RunView], bool],
        *,
        timeout: float,
        poll: float = 0.2,
    ) -> RunView:
        """Poll the RunView until `done(run)`; WaitTimeout, a TimeoutError with the run's hint,
        otherwise."""
        return wait_until(
            lambda: self.get_run(run_id),
            until=done,
            timeout=timeout,
            interval=poll,
            what=lambda run: (
                f"run {run_id} still {run.status.value} after {timeout:.0f}s"
                + (f": {run.hint}" if run.hint else "")
            ),
        )

    def approve_plan(self, run_id: str, approved_by: str, notes: str | None = None) -> Accepted:
        body = {"approvedBy": approved_by, **({"notes": notes} if notes else {})}
        response = self._call("POST", f"/runs/{run_id}/approve-plan", json=body)
        return Accepted.model_validate(response.json())

    def retry(self, run_id: str) -> RetryAccepted:
        return RetryAccepted.model_validate(self._call("POST", f"/runs/{run_id}/retry").json())

    def cancel(self, run_id: str) -> Accepted:
        return Accepted.model_validate(self._call("POST", f"/runs/{run_id}/cancel").json())

    def events(self, run_id: str) -> list[RunEventView]:
        response = self._call("GET", f"/runs/{run_id}/events")
        return [RunEventView.model_validate(item) for item in response.json()]

    def artifact(self, uri: str) -> bytes:
        return self._call("GET", f"/artifacts/{quote(uri, safe='')}").content

    def upload_workspace(
        self, archive: bytes, media_type: str = "application/x-tar"
    ) -> WorkspaceView:
        """Upload a tar, tar.gz or zip; use the answer's id as `inputs.workspace.upload`."""
        response = self._call(
            "POST", "/workspaces", content=archive, headers={"Content-Type": media_type}
        )
        return WorkspaceView.model_validate(response.json())

    def run_diff(self, run_id: str) -> RunDiff:
        return RunDiff.model_validate(self._call("GET", f"/runs/{run_id}/diff").json())

    def task_diff(self, run_id: str, task_key: str) -> TaskDiff:
        response = self._call("GET", f"/runs/{run_id}/tasks/{task_key}/diff")
        return TaskDiff.model_validate(response.json())


def _error_from(response: httpx.Response) -> AppError:
    try:
        body = response.json()
        cls = error_class_for(str(body.get("code", "")))
        return cls(str(body.get("message", response.text)), body.get("details"))
    except ValueError:
        return AppError(f"HTTP {response.status_code}: {response.text[:200]}")
