"""Liveness: when the daemon's loop last showed progress, for ``/healthz`` and the watchdog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: A loop silent this long is stale, at the least: a long first poll must not look dead.
MIN_STALE_AFTER = 60.0


def stale_after(poll_interval: float) -> float:
    """Seconds of silence after which the loop counts as hung: 3 poll intervals, 60 s at least.

    The loop beats at every cycle's start and end, at every store commit inside a cycle and
    at least once a poll interval while it waits, so only a stuck loop stays silent this long.
    """
    return max(MIN_STALE_AFTER, 3 * poll_interval)


class Heartbeat:
    """The loop's signs of life; read by another thread (the HTTP listener)."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._cycles = 0
        self._in_cycle = False

    def beat(self) -> None:
        with self._lock:
            self._last = self._clock()

    def cycle_started(self) -> None:
        with self._lock:
            self._last = self._clock()
            self._cycles += 1
            self._in_cycle = True

    def cycle_ended(self) -> None:
        with self._lock:
            self._last = self._clock()
            self._in_cycle = False

    @property
    def cycles(self) -> int:
        with self._lock:
            return self._cycles

    def snapshot(self) -> dict[str, Any]:
        """``healthy``, ``status`` (ok, stale, starting), ``cycles``, ``in_cycle``,
        ``seconds_since_beat`` and ``stale_after``."""
        with self._lock:
            since = None if self._last is None else round(self._clock() - self._last, 3)
            cycles, in_cycle = self._cycles, self._in_cycle
        if cycles == 0 or since is None:
            status = "starting"
        elif since > self.stale_after:
            status = "stale"
        else:
            status = "ok"
        return {
            "healthy": status == "ok",
            "status": status,
            "cycles": cycles,
            "in_cycle": in_cycle,
            "seconds_since_beat": since,
            "stale_after": self.stale_after,
        }
