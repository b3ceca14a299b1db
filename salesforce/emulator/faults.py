"""Fault injection: each counted API call draws once against the configured rates, after
any faults queued with :meth:`FaultDice.force` (one per call, in order).

``limit`` is the spent daily allowance ("TotalRequests Limit exceeded."); ``concurrent``
the refusal of a call while too many long-running ones are open
("ConcurrentPerOrgLongTxn Limit exceeded"), which clears in seconds."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["503", "lock", "limit", "concurrent", "invalid_session"]


@dataclass(frozen=True)
class Fault:
    """Probabilities (0..1, summing to at most 1) of each injected failure per API call."""

    rate_503: float = 0.0
    rate_lock: float = 0.0
    rate_limit_exceeded: float = 0.0
    rate_invalid_session: float = 0.0
    rate_concurrent_limit: float = 0.0
    seed: int | None = None

    def rates(self) -> tuple[tuple[FaultKind, float], ...]:
        """Each kind with its rate, in draw order."""
        return (
            ("503", self.rate_503),
            ("lock", self.rate_lock),
            ("limit", self.rate_limit_exceeded),
            ("invalid_session", self.rate_invalid_session),
            ("concurrent", self.rate_concurrent_limit),
        )

    def __post_init__(self) -> None:
        rates = [rate for _kind, rate in self.rates()]
        if any(rate < 0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")


class FaultDice:
    """Draws faults from a seeded generator; thread-safe."""

    def __init__(self, fault: Fault | None = None) -> None:
        self._lock = threading.Lock()
        self.fault = fault or Fault()
        self._rng = random.Random(self.fault.seed)
        self._forced: deque[FaultKind] = deque()

    def force(self, kind: FaultKind, times: int = 1) -> None:
        """The next ``times`` calls fail with ``kind``, whatever the rates say."""
        with self._lock:
            self._forced.extend([kind] * times)

    def configure(self, fault: Fault) -> None:
        """Replace the configuration (and reseed)."""
        with self._lock:
            self.fault = fault
            self._rng = random.Random(fault.seed)

    def draw(self) -> FaultKind | None:
        """The fault for one API call, or None."""
        with self._lock:
            if self._forced:
                return self._forced.popleft()
            rates = self.fault.rates()
            if sum(rate for _kind, rate in rates) <= 0:
                return None
            roll = self._rng.random()
        for kind, rate in rates:
            if roll < rate:
                return kind
            roll -= rate
        return None

    def pick_locked(self, n: int) -> set[int]:
        """Which of ``n`` records of a collections call fail with UNABLE_TO_LOCK_ROW (>= 1)."""
        with self._lock:
            chosen = {i for i in range(n) if self._rng.random() < 0.5}
            if n and not chosen:
                chosen.add(self._rng.randrange(n))
            return chosen
