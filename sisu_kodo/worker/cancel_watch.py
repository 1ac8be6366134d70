"""The worker's cancel watcher: stops the sandbox attempts of runs that ended under them.

`POST /runs/{id}/cancel` is served by the API shim, which has no sandbox provider, and a
canceled DBOS workflow does not interrupt the step waiting for a command. So each worker
looks, once a period (one query, not one per task), for runs that ended (canceled, or
failed for any reason) while attempts it waits for still have no outcome, and calls the
provider's `cancel_run`: those waits return CANCELED and record it. An attempt no step
of this process waits for (a worker with this executor id died under it, and a canceled
workflow is never recovered) is collected and recorded here, so every started attempt
gets exactly one outcome.
"""

from __future__ import annotations

import itertools
import logging

from sisu_kodo.contracts.runs import StepId
from sisu_kodo.contracts.sandbox import SandboxRequest
from sisu_kodo.db import sandbox_attempts
from sisu_kodo.db.sandbox_attempts import StartedAttempt
from sisu_kodo.worker.periodic import Periodic
from sisu_kodo.workflows import runtime
from sisu_kodo.workflows.steps.attempts import collect_attempt

log = logging.getLogger(__name__)

CANCEL_WATCH_SECONDS = 1.0


class CancelWatcher:
    def __init__(
        self, rt: runtime.Runtime, *, executor_id: str, period: float = CANCEL_WATCH_SECONDS
    ) -> None:
        self._rt = rt
        self._executor_id = executor_id
        self._thread = Periodic("sisu-cancel-watch", self.check, period=period)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def check(self) -> list[str]:
        """Stop the attempts of ended runs once; returns the runs it acted on."""
        with self._rt.engine.connect() as conn:
            left = sandbox_attempts.unrecorded_in_ended_runs(
                conn, step_id=StepId.EXECUTE, executor_id=self._executor_id
            )
        runs = []
        for run_id, group in itertools.groupby(left, key=lambda attempt: attempt.run_id):
            attempts = list(group)
            killed = self._rt.sandbox.cancel_run(run_id)
            log.info(
                "run %s ended with %d attempt(s) in flight; killed %s",
                run_id,
                len(attempts),
                ", ".join(killed) or "none",
            )
            for attempt in attempts:
                if (run_id, attempt.task_key) not in self._rt.task_steps:
                    self._collect_orphan(attempt)
            runs.append(run_id)
        return runs

    def _collect_orphan(self, attempt: StartedAttempt) -> None:
        """Collect (after the kill, the wait ends at once) and record an attempt no step
        here waits for; the run has ended, so its outcome is recorded CANCELED."""
        request = SandboxRequest.model_validate(attempt.request)
        code = collect_attempt(
            self._rt,
            request,
            attempt.sandbox_ref,
            attempt_offset=attempt.attempt_offset,
            executor_id=self._executor_id,
        )
        log.info(
            "attempt %d of task %s (run %s), left by a dead worker: %s",
            attempt.attempt,
            attempt.task_key[:12],
            attempt.run_id,
            code.value,
        )
