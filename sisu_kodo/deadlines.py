"""Waiting for a condition with a deadline: the one polling loop of the package."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")

DEFAULT_INTERVAL_SECONDS = 0.05


class WaitTimeout(TimeoutError, Generic[T]):
    """The condition did not hold by the deadline; `last` is the last value probed."""

    def __init__(self, message: str, last: T) -> None:
        super().__init__(message)
        self.last = last

    def __reduce__(self) -> tuple[type[WaitTimeout[T]], tuple[str, T]]:
        return type(self), (str(self), self.last)


@overload
def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = ...,
    max_interval: float | None = ...,
    what: str | Callable[[T | None], str] = ...,
) -> T: ...


@overload
def wait_until(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object],
    timeout: float,
    interval: float = ...,
    max_interval: float | None = ...,
    what: str | Callable[[T], str] = ...,
) -> T: ...


def wait_until(
    probe: Callable[[], Any],
    *,
    until: Callable[[Any], object] = bool,
    timeout: float,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    max_interval: float | None = None,
    what: str | Callable[[Any], str] = "the condition",
) -> Any:
    """Call `probe` until `until(value)` holds (by default: until the value is truthy).

    Args:
        probe: what to call each round; its value is returned once it satisfies `until`.
        timeout: seconds from now to the deadline; the probe runs once more at the deadline.
        interval: the pause between probes; with `max_interval` it doubles each round up
            to that bound (tight at first for fast conditions, then gentle).
        what: the awaited condition, for the timeout message; a callable gets the last
            value and makes the whole message instead.

    Raises:
        WaitTimeout: the deadline passed first; it carries the last value probed.
    """
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        value = probe()
        if until(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(_timeout_message(what, value, timeout), value)
        time.sleep(min(pause, remaining))
        if max_interval is not None:
            pause = min(pause * 2, max_interval)


def _timeout_message(what: str | Callable[[Any], str], last: object, timeout: float) -> str:
    if callable(what):
        return what(last)
    return f"timed out after {timeout:g}s waiting for {what} (last: {last!r})"
