"""wait_until: the first satisfying value, the deadline, the message, the growing pause."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator

import pytest

from sisu_kodo.deadlines import WaitTimeout, wait_until


def counter() -> Callable[[], int]:
    calls: Iterator[int] = iter(range(1, 1000))
    return lambda: next(calls)


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(values), timeout=30, interval=0) == "ready"


def test_until_decides_instead_of_truthiness() -> None:
    assert wait_until(counter(), until=lambda n: n >= 3, timeout=30, interval=0) == 3


def test_past_the_deadline_it_probes_once_and_raises_with_the_last_value() -> None:
    probe = counter()
    with pytest.raises(WaitTimeout) as caught:
        wait_until(probe, until=lambda n: n > 5, timeout=0, what="five calls")
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.last == 1
    assert "five calls" in str(caught.value) and "last: 1" in str(caught.value)


def test_a_callable_what_writes_the_whole_message() -> None:
    with pytest.raises(WaitTimeout, match=r"^still 1, wanted 9$"):
        wait_until(
            counter(), until=lambda n: n == 9, timeout=0, what=lambda n: f"still {n}, wanted 9"
        )


def test_an_exception_of_the_probe_propagates() -> None:
    def broken() -> bool:
        raise LookupError("gone")

    with pytest.raises(LookupError, match="gone"):
        wait_until(broken, timeout=30)


def test_the_pause_doubles_up_to_max_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    wait_until(counter(), until=lambda n: n >= 6, timeout=3600, interval=0.01, max_interval=0.05)
    assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])


def test_a_fixed_interval_stays_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    wait_until(counter(), until=lambda n: n >= 4, timeout=3600, interval=0.2)
    assert pauses == pytest.approx([0.2, 0.2, 0.2])


def test_the_timeout_survives_pickling() -> None:
    revived = pickle.loads(pickle.dumps(WaitTimeout("late", {"status": "running"})))
    assert (str(revived), revived.last) == ("late", {"status": "running"})
