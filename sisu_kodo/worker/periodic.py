"""A worker's background duty run once a period on its own daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `duty` every `period` seconds until stopped; a failing call is logged and the
    next period tries again, so a worker never dies of its background work."""

    def __init__(self, name: str, duty: Callable[[], object], *, period: float) -> None:
        self._name = name
        self._duty = duty
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._duty()
            except Exception:  # the process edge of a background thread
                log.warning(
                    "%s failed; trying again in %.1fs", self._name, self._period, exc_info=True
                )
