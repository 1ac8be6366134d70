"""Wake-ups for fan-outs waiting on their tasks, one event per waiting await step.

The worker's task listener (worker/task_listener.py) calls `wake(run_id)` for each
notice of a recorded attempt, and `wake_all()` whenever it (re)connects, since notices
sent while it was not listening are lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TaskWakeups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}

    @contextmanager
    def watch(self, run_id: str) -> Iterator[threading.Event]:
        """An event set by every wake-up of `run_id` while the block runs."""
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiting[run_id]
                events.discard(event)
                if not events:
                    del self._waiting[run_id]

    def wake(self, run_id: str) -> None:
        with self._lock:
            events = list(self._waiting.get(run_id, ()))
        for event in events:
            event.set()

    def wake_all(self) -> None:
        with self._lock:
            events = [event for waiting in self._waiting.values() for event in waiting]
        for event in events:
            event.set()
