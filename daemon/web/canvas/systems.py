"""The systems view's queries: each downstream system online or offline, its steps queued
and in flight, its recent error rate; and the Salesforce API budget as ``orderflow status``
reports it (:func:`daemon.cycle.org_state.salesforce_status`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.cycle.org_state import salesforce_status
from daemon.store.models import SystemState, Task, TaskEvent
from orchestration.states import StepState

#: Step outcomes an error rate is taken over: the most recent ones, across systems.
OUTCOME_WINDOW = 2000
_QUEUED = (StepState.READY.value, StepState.ON_HOLD.value, StepState.FAILED.value)
_OPEN = (*_QUEUED, StepState.IN_PROGRESS.value, StepState.FATALLY_FAILED.value)
_OUTCOMES = (StepState.COMPLETED.value, StepState.FAILED.value, StepState.FATALLY_FAILED.value)


@dataclass
class SystemRow:
    name: str
    offline: bool
    mode: str
    reason: str
    since: datetime | None
    next_probe_at: datetime | None
    queued: int
    in_flight: int
    fallout: int
    outcomes: int
    failures: int

    @property
    def error_rate(self) -> float | None:
        return None if not self.outcomes else self.failures / self.outcomes


@dataclass
class SystemsView:
    systems: list[SystemRow]
    outcomes_since: datetime | None
    salesforce: dict[str, Any]


def systems_view(session: Session, configured: Iterable[str]) -> SystemsView:
    """Every configured or recorded system, with its queue and error rate."""
    states = {r.name: r for r in session.scalars(select(SystemState))}
    by_state: dict[str, dict[str, int]] = {}
    for system, state, n in session.execute(
        select(Task.system, Task.state, func.count())
        .where(Task.state.in_(_OPEN), Task.system.is_not(None))
        .group_by(Task.system, Task.state)
    ):
        by_state.setdefault(str(system), {})[state] = int(n)
    recent = (
        select(TaskEvent.task_id, TaskEvent.to_state, TaskEvent.at)
        .where(TaskEvent.from_state == StepState.IN_PROGRESS.value)
        .where(TaskEvent.to_state.in_(_OUTCOMES))
        .order_by(TaskEvent.id.desc())
        .limit(OUTCOME_WINDOW)
        .subquery()
    )
    outcomes: dict[str, dict[str, int]] = {}
    for system, state, n in session.execute(
        select(Task.system, recent.c.to_state, func.count())
        .join(recent, recent.c.task_id == Task.id)
        .where(Task.system.is_not(None))
        .group_by(Task.system, recent.c.to_state)
    ):
        outcomes.setdefault(str(system), {})[state] = int(n)
    since = session.scalar(select(func.min(recent.c.at)))
    names = sorted(set(configured) | set(states) | set(by_state))
    rows = []
    for name in names:
        row, counts, seen = states.get(name), by_state.get(name, {}), outcomes.get(name, {})
        rows.append(
            SystemRow(
                name=name,
                offline=bool(row and row.offline),
                mode=row.mode if row else "",
                reason=row.reason if row else "",
                since=row.since if row else None,
                next_probe_at=row.next_probe_at if row else None,
                queued=sum(counts.get(s, 0) for s in _QUEUED),
                in_flight=counts.get(StepState.IN_PROGRESS.value, 0),
                fallout=counts.get(StepState.FATALLY_FAILED.value, 0),
                outcomes=sum(seen.values()),
                failures=seen.get(StepState.FAILED.value, 0)
                + seen.get(StepState.FATALLY_FAILED.value, 0),
            )
        )
    return SystemsView(rows, since, salesforce_status(session))
