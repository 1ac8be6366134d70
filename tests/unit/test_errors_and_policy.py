from __future__ import annotations

import pickle

import pytest

from sisu_kodo.api.policy import check_run_policy
from sisu_kodo.canonical import canonical_json, content_hash
from sisu_kodo.contracts.runs import RunStart, Workload
from sisu_kodo.db.recipes import SEED
from sisu_kodo.errors import (
    AppError,
    IllegalStateError,
    QueuePolicyViolationError,
    RunIdentityConflictError,
    error_class_for,
)

RECIPE = SEED[0]


def test_errors_survive_pickling_with_details() -> None:
    error = RunIdentityConflictError("drift", {"fields": ["workload.steps"]})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RunIdentityConflictError
    assert (copy.message, copy.details) == ("drift", {"fields": ["workload.steps"]})


def test_codes_map_back_to_classes() -> None:
    assert error_class_for("illegal_state") is IllegalStateError
    assert error_class_for("queue_policy_violation") is QueuePolicyViolationError
    assert error_class_for("no-such-code") is AppError
    assert (IllegalStateError.http_status, QueuePolicyViolationError.http_status) == (409, 400)


def _start(**changes: object) -> RunStart:
    base: dict[str, object] = {
        "queuePartitionKey": "t",
        "workload": Workload(concurrency=1, steps=1),
    }
    base.update(changes)
    return RunStart.model_validate(base)


def test_policy_accepts_the_manual_body() -> None:
    assert check_run_policy(_start(workload=Workload(concurrency=5, steps=10)), RECIPE) == "intentQ"


@pytest.mark.parametrize(
    "start",
    [
        _start(queueName="sbxQ"),
        _start(queueName="otherQ"),
        _start(queuePartitionKey=" "),
        _start(queuePartitionKey=None),
        _start(workload=Workload(concurrency=RECIPE.max_concurrency + 1, steps=1)),
        _start(workload=Workload(concurrency=1, steps=1, sandboxMinutes=10_000)),
    ],
)
def test_policy_violations(start: RunStart) -> None:
    with pytest.raises(QueuePolicyViolationError):
        check_run_policy(start, RECIPE)


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
