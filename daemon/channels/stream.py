"""The change event stream as the daemon holds it: what is pending, what was taken, the pace.

The subscriber (salesforce.pubsub.subscriber) fills it from threads of its own; the cycle
takes it in (:mod:`daemon.cycle.events`); ``orderflow status`` shows its
:meth:`~EventStream.snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from salesforce.pubsub.subscriber import Delivery, Subscriber


@dataclass
class EventStream:
    """The daemon's side of the subscription: what is pending, what was taken, the pace."""

    subscriber: Subscriber
    mode: str
    #: Seconds between safety polls while every stream is open.
    safety_interval: float = 600.0
    #: The integration user's id (commitUser of Orderflow's own writes), when known.
    user_id: str | None = None
    #: Fields Orderflow writes, by object: a change of only these is an echo.
    written: dict[str, frozenset[str]] = field(default_factory=dict)
    pending: list[Delivery] = field(default_factory=list)
    taken: int = 0
    skipped: int = 0
    gaps: int = 0
    last_event_at: datetime | None = None
    saved: dict[str, Any] | None = None
    #: Records an event named wait for a poll due at this pacer time (None: none waits).
    behind_until: float | None = None
    #: Since when writeback has waited for queued events (:func:`writeback_waits`).
    writeback_waiting_since: datetime | None = None
    #: A first subscription opened at this moment and the poll's watermarks are not past it
    #: yet: what committed just before it is read by no event and by no poll so far.
    unpolled_from: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.subscriber.healthy and self.behind_until is None and self.unpolled_from is None

    def snapshot(self) -> dict[str, Any]:
        """The ``events`` part of ``orderflow status``."""
        topics = {t: s.as_dict() for t, s in self.subscriber.states.items()}
        return {
            "mode": self.mode,
            "connected": self.healthy,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "events_taken": self.taken,
            "events_without_query": self.skipped,
            "gaps_polled": self.gaps,
            "topics": topics,
        }
