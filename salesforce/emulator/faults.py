"""Fault injection: each counted API call draws once against the configured rates."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["503", "lock", "limit", "invalid_session"]


@dataclass(frozen=True)
class Fault:
    """Probabilities (0..1, summing to at most 1) of each injected failure per API call."""

    rate_503: float = 0.0
    rate_lock: float = 0.0
    rate_limit_exceeded: float = 0.0
    rate_invalid_session: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_503, self.rate_lock, self.rate_limit_exceeded, self.rate_invalid_session)
        if any(rate < 0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")


class FaultDice:
    """Draws faults from a seeded generator; thread-safe."""

    def __init__(self, fault: Fault | None = None) -> None:
        self._lock = threading.Lock()
        self.fault = fault or Fault()
        self._rng = random.Random(self.fault.seed)

    def configure(self, fault: Fault) -> None:
        """Replace the configuration (and reseed)."""
        with self._lock:
            self.fault = fault
            self._rng = random.Random(fault.seed)

    def draw(self) -> FaultKind | None:
        """The fault for one API call, or None."""
        with self._lock:
            fault = self.fault
            total = (
                fault.rate_503
                + fault.rate_lock
                + fault.rate_limit_exceeded
                + fault.rate_invalid_session
            )
            if total <= 0:
                return None
            roll = self._rng.random()
        for kind, rate in (
            ("503", fault.rate_503),
            ("lock", fault.rate_lock),
            ("limit", fault.rate_limit_exceeded),
            ("invalid_session", fault.rate_invalid_session),
        ):
            if roll < rate:
                return kind  # type: ignore[return-value]
            roll -= rate
        return None

    def pick_locked(self, n: int) -> set[int]:
        """Which of ``n`` records of a collections call fail with UNABLE_TO_LOCK_ROW (>= 1)."""
        with self._lock:
            chosen = {i for i in range(n) if self._rng.random() < 0.5}
            if n and not chosen:
                chosen.add(self._rng.randrange(n))
            return chosen
