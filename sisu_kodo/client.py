"""A typed HTTP client for the Sisu-Kodo API, raising the server's own error classes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from sisu_kodo.contracts.intents import IntentCreate
from sisu_kodo.contracts.ops import (
    BulkRequest,
    BulkResult,
    QueueBoard,
    RunCounts,
    RunPage,
    RunQuery,
    RunSteps,
    TaskStatus,
    WorkerBoard,
)
from sisu_kodo.contracts.runs import (
    Accepted,
    RetryAccepted,
    RunEventView,
    RunStart,
    RunStarted,
    RunView,
    TaskPage,
    Workload,
)
from sisu_kodo.contracts.webhooks import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookView,
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
        partition: str | None,
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

    def add_webhook(self, body: WebhookCreate) -> WebhookCreated:
        response = self._call("POST", "/webhooks", json=body.model_dump(mode="json"))
        return WebhookCreated.model_validate(response.json())

    def webhooks(self) -> WebhookList:
        return WebhookList.model_validate(self._call("GET", "/webhooks").json())

    def delete_webhook(self, webhook_id: str) -> WebhookView:
        return WebhookView.model_validate(self._call("DELETE", f"/webhooks/{webhook_id}").json())

    def deliveries(self, run_id: str) -> DeliveryList:
        return DeliveryList.model_validate(self._call("GET", f"/runs/{run_id}/deliveries").json())

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

    def reject_plan(self, run_id: str, rejected_by: str, reason: str | None = None) -> Accepted:
        payload = {"rejectedBy": rejected_by, **({"reason": reason} if reason else {})}
        body = {"type": "reject-plan", "payload": payload}
        response = self._call("POST", f"/runs/{run_id}/events", json=body)
        return Accepted.model_validate(response.json())

    def follow_events(self, run_id: str, after: int = 0) -> Iterator[RunEventView]:
        """The run's events as they happen (SSE), from after seq `after` until it ends."""
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        with self._http.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
            if response.is_error:
                response.read()
                raise _error_from(response)
            for line in response.iter_lines():
                if line.startswith("data:"):
                    yield RunEventView.model_validate(json.loads(line[5:]))

    def tasks(
        self,
        run_id: str,
        *,
        status: TaskStatus | None = None,
        offset: int = 0,
        limit: int = 500,
    ) -> TaskPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status
        response = self._call("GET", f"/runs/{run_id}/tasks", params=params)
        return TaskPage.model_validate(response.json())

    def steps(self, run_id: str) -> RunSteps:
        return RunSteps.model_validate(self._call("GET", f"/runs/{run_id}/steps").json())

    def list_runs(self, query: RunQuery | None = None) -> RunPage:
        params = _query_params(query or RunQuery())
        return RunPage.model_validate(self._call("GET", "/runs", params=params).json())

    def count_runs(self, query: RunQuery | None = None) -> RunCounts:
        params = _query_params(query or RunQuery())
        return RunCounts.model_validate(self._call("GET", "/runs/counts", params=params).json())

    def queues(self) -> QueueBoard:
        return QueueBoard.model_validate(self._call("GET", "/queues").json())

    def workers(self) -> WorkerBoard:
        return WorkerBoard.model_validate(self._call("GET", "/workers").json())

    def bulk_cancel(self, request: BulkRequest) -> BulkResult:
        return self._bulk("cancel", request)

    def bulk_retry(self, request: BulkRequest) -> BulkResult:
        return self._bulk("retry", request)

    def _bulk(self, action: str, request: BulkRequest) -> BulkResult:
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        response = self._call("POST", f"/runs/bulk/{action}", json=body)
        return BulkResult.model_validate(response.json())


def _query_params(query: RunQuery) -> dict[str, Any]:
    """GET /runs's query string for `query`: camelCase, `order` for the direction."""
    params = query.model_dump(mode="json", by_alias=True, exclude_none=True)
    params["order"] = "oldest" if params.pop("oldestFirst") else "newest"
    return params


def _error_from(response: httpx.Response) -> AppError:
    try:
        body = response.json()
        cls = error_class_for(str(body.get("code", "")))
        return cls(str(body.get("message", response.text)), body.get("details"))
    except ValueError:
        return AppError(f"HTTP {response.status_code}: {response.text[:200]}")
