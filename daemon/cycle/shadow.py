"""Shadow mode (``ORDERFLOW_MODE=shadow``): a parallel run beside the legacy integrations.

- **Everything runs.** Polls, remaps, plans, advances, jeopardy: the daemon is the same.
- **Nothing is sent.** Each system's connector is replaced, under its guard, by
  :class:`ShadowConnector`: a submit records the request (payload as the system would get
  it, idempotency key, step) in ``shadow_sends`` as "would send" and answers completed,
  so the plan goes on as if the system had done it; status and cancel answer completed;
  a probe makes no call. Listing a system's documents (a read) still reaches the system:
  ``orderflow shadow report`` compares with it.
- **Nothing is written to Salesforce.** Writeback checks :func:`active` where it would
  write (daemon.cycle.writeback, daemon.cycle.invoices).

A resend of the same step (a crash, another instance) finds its key recorded: one row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from daemon.context import Context
from daemon.store.models import ShadowSend
from downstream.guard import GuardedSystem
from downstream.protocol import (
    Document,
    DocumentSource,
    DownstreamSystem,
    Outcome,
    SubmitResult,
    TaskRequest,
)

log = logging.getLogger(__name__)

SHADOW = "shadow"
WOULD_SEND = "would send (shadow mode)"


def active(ctx: Context) -> bool:
    """Whether this process runs in shadow mode: nothing sent, nothing written."""
    return ctx.mode == SHADOW


class ShadowConnector:
    """A downstream system in shadow mode: records what would be sent, sends nothing."""

    def __init__(
        self,
        inner: DownstreamSystem,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self._sessions = sessions
        self._clock = clock

    def __repr__(self) -> str:
        return f"ShadowConnector({self.inner!r})"

    def submit(self, request: TaskRequest) -> SubmitResult:
        record(self._sessions, request, self._clock())
        return SubmitResult(outcome=Outcome.COMPLETED, message=WOULD_SEND)

    def status(self, external_ref: str) -> SubmitResult:
        return SubmitResult(outcome=Outcome.COMPLETED, external_ref=external_ref)

    def cancel(self, external_ref: str) -> SubmitResult:
        return SubmitResult(outcome=Outcome.COMPLETED, external_ref=external_ref)

    def probe(self) -> bool:
        return True  # no call made: the system is never reached for a send anyway

    def documents(self, since: date, until: date) -> list[Document]:
        if not isinstance(self.inner, DocumentSource):
            raise TypeError(f"{self.name} cannot list documents")
        return self.inner.documents(since, until)


def record(sessions: sessionmaker[Session], request: TaskRequest, now: datetime) -> None:
    """Keep one "would send" row per idempotency key (a resend finds it there)."""
    row = ShadowSend(
        idempotency_key=request.idempotency_key,
        system=request.system,
        action=request.action,
        order_id=request.step_ref.partition("/")[0][:18],
        step_ref=request.step_ref[:255],
        payload=request.payload,
        recorded_at=now,
    )
    try:
        with sessions.begin() as session:
            known = select(ShadowSend.id).where(
                ShadowSend.idempotency_key == request.idempotency_key
            )
            if session.scalar(known) is None:
                session.add(row)
    except IntegrityError:
        pass  # another instance recorded the same key at the same moment
    log.debug("shadow: would send %s to %s", request.step_ref, request.system)


def attach(ctx: Context) -> None:
    """Put every system of ``ctx`` in shadow mode (under its guard, which stays)."""
    ctx.mode = SHADOW
    systems: dict[str, DownstreamSystem] = {}
    for name, system in ctx.systems.items():
        if isinstance(system, GuardedSystem):
            system.inner = ShadowConnector(system.inner, ctx.sessions, ctx.clock)
            systems[name] = system
        else:
            systems[name] = ShadowConnector(system, ctx.sessions, ctx.clock)
    ctx.systems = systems
    log.warning("shadow mode: nothing is sent downstream or written to Salesforce")
