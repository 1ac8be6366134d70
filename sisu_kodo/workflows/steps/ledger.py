"""Ledger plumbing shared by both phases: exactly-once transactions, step attempts, failure."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from sisu_kodo.contracts.runs import STEP_PHASES, NextAction, RunStatus, StepId
from sisu_kodo.db import runs
from sisu_kodo.workflows import runtime

P = ParamSpec("P")
R = TypeVar("R")


def transaction(
    name: str,
) -> Callable[[Callable[Concatenate[sa.Connection, P], R]], Callable[P, R]]:
    """Make `body(conn, *args)` a DBOS datasource transaction step named `name`.

    Like DBOS's `@ds.transaction()`, but the datasource is looked up at call time from
    `runtime.current()`: it only exists once the worker has built it. The write and
    DBOS's checkpoint commit together, so the body takes effect exactly once. `name` is
    the checkpoint name; renaming one breaks the replay of workflows in flight.
    """

    def decorate(body: Callable[Concatenate[sa.Connection, P], R]) -> Callable[P, R]:
        @functools.wraps(body)
        def step(*args: P.args, **kwargs: P.kwargs) -> R:
            datasource = runtime.current().datasource

            def in_transaction(*call_args: P.args, **call_kwargs: P.kwargs) -> R:
                runtime.chaos_pause(name)
                connection = datasource.sql_session().connection()
                return body(connection, *call_args, **call_kwargs)

            return datasource.run_tx_step(
                {"name": name, "isolation_level": "READ COMMITTED"},
                in_transaction,
                *args,
                **kwargs,
            )

        return step

    return decorate


def start_step(conn: sa.Connection, run_id: str, step_id: StepId) -> int:
    """Open the step's next attempt and say so in the run's events; returns its number."""
    attempt = runs.start_step(conn, run_id=run_id, step_id=step_id, phase=STEP_PHASES[step_id])
    runs.append_event(
        conn,
        run_id=run_id,
        type="step.started",
        status=RunStatus.RUNNING,
        step_id=step_id,
        detail={"attempt": attempt},
    )
    return attempt


@transaction("fail_run")
def fail_run(conn: sa.Connection, run_id: str, error: str) -> None:
    """Record an unexpected error on the run (failed, REPAIR), unless it already ended."""
    run = runs.require_run(conn, run_id=run_id, for_update=True)
    if run.status.terminal:
        return
    runs.transition(
        conn,
        run_id=run_id,
        status=RunStatus.FAILED,
        event="run.failed",
        detail={"error": error},
        next_action=NextAction.REPAIR,
        error=error,
    )
