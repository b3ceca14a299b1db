"""A downstream system with its operating state: online or offline, and how it is watched.

:class:`GuardedSystem` wraps any :class:`~downstream.protocol.DownstreamSystem`. It counts
consecutive connection failures; at ``offline_after`` of them it trips (the daemon then
records the system offline and probes it until it answers). While it is offline, calls
raise :class:`~downstream.protocol.SystemOffline` without reaching the network, so the
dispatcher puts the step On Hold instead of spending one of its retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from downstream.protocol import (
    Document,
    DocumentSource,
    DownstreamSystem,
    SubmitResult,
    SystemOffline,
    TaskRequest,
    Unreachable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class GuardedSystem:
    """A system plus its per-system cadences and its connection-health state."""

    def __init__(
        self,
        inner: DownstreamSystem,
        *,
        offline_after: int = 5,
        probe_interval: float = 30.0,
        status_poll_interval: float = 30.0,
        callback_secret: str | None = None,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.offline_after = offline_after
        self.probe_interval = probe_interval
        self.status_poll_interval = status_poll_interval
        self.callback_secret = callback_secret
        self._lock = threading.Lock()
        self._failures = 0
        self._offline = False
        self._tripped = False

    def __repr__(self) -> str:
        return f"GuardedSystem({self.inner!r})"

    # -- state -----------------------------------------------------------------------------
    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def failures(self) -> int:
        return self._failures

    def set_offline(self, offline: bool) -> None:
        """Follow the recorded state (an operator's command, or the daemon's own decision)."""
        with self._lock:
            if not offline:
                self._failures, self._tripped = 0, False
            self._offline = offline

    @property
    def trip_pending(self) -> bool:
        """Tripped by itself and not yet recorded (see :meth:`take_trip`)."""
        return self._tripped

    def take_trip(self) -> bool:
        """True once after the system went offline by itself (connection failures)."""
        with self._lock:
            tripped, self._tripped = self._tripped, False
            return tripped

    def probe(self) -> bool:
        """Whether the system answers again (a system without a probe is assumed back)."""
        probe = getattr(self.inner, "probe", None)
        return bool(probe()) if callable(probe) else True

    # -- the protocol ----------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> SubmitResult:
        return self._guarded(lambda: self.inner.submit(request))

    def status(self, external_ref: str) -> SubmitResult:
        return self._guarded(lambda: self.inner.status(external_ref))

    def cancel(self, external_ref: str) -> SubmitResult:
        return self._guarded(lambda: self.inner.cancel(external_ref))

    def documents(self, since: date, until: date) -> list[Document]:
        if not isinstance(self.inner, DocumentSource):
            raise TypeError(f"{self.name} cannot list documents")
        inner = self.inner
        return self._guarded(lambda: inner.documents(since, until))

    @property
    def lists_documents(self) -> bool:
        return isinstance(self.inner, DocumentSource)

    def _guarded(self, call: Callable[[], T]) -> T:
        if self._offline:
            raise SystemOffline(f"{self.name} is offline", code="offline")
        try:
            result = call()
        except Unreachable:
            with self._lock:
                self._failures += 1
                if self.offline_after and self._failures >= self.offline_after:
                    if not self._offline:
                        log.warning(
                            "%s: %d connection failures in a row, taking it offline",
                            self.name,
                            self._failures,
                        )
                        self._tripped = True
                    self._offline = True
            raise
        with self._lock:
            self._failures = 0
        return result
