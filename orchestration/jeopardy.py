"""Jeopardy: where each step stands against its SLA at a given time (pure, the clock passed in).

A step's clock starts at its start: when it went In Progress, or for a step that has not
started yet but could (Ready, On Hold) when it became so, or for a scheduled step at its
planned start. From there it is **On Track**, then **At Risk** at ``start + estimate -
threshold``, then **Late** at ``start + estimate`` (its due time). Waiting does not stop the
clock: a step In Progress whose callout was never answered, Failed and waiting for a retry,
On Hold because its system is offline or Fatally Failed and waiting for a person goes At
Risk and Late like any other. A finished step has no jeopardy. Once a step's due time is
known it is kept (see :func:`assess`), so a step that waited On Hold before it started
stays late.

The order's jeopardy is the worst of its open steps; a line's, the worst of its steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from orchestration.rules import Sla
from orchestration.states import FINAL_STATES, StepState

S = StepState


class Jeopardy(StrEnum):
    """What Salesforce shows (``Jeopardy_Status__c``, ``Jeopardy__c``). ``Fallout`` is an
    order's alone, while it is in fallout: never a green On Track beside a failed order."""

    ON_TRACK = "On Track"
    AT_RISK = "At Risk"
    LATE = "Late"
    FALLOUT = "Fallout"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Jeopardy.ON_TRACK: 0, Jeopardy.AT_RISK: 1, Jeopardy.LATE: 2, Jeopardy.FALLOUT: 3}

#: Open states whose clock runs from the moment the step could start (its dependencies
#: done), though it has not started: it waits for dispatch or for its system.
WAITING_TO_START = frozenset({S.READY, S.ON_HOLD})


class SlaStep(BaseModel):
    """What jeopardy needs to know of a step."""

    model_config = ConfigDict(frozen=True)

    state: StepState
    sla: Sla | None = None
    started_at: datetime | None = None
    #: The planned start of a scheduled step (its ``not_before``).
    planned_start: datetime | None = None
    #: When the step became Ready or On Hold (its clock's start before it starts).
    waiting_since: datetime | None = None
    #: The due time already fixed for the step, if any: kept once known.
    due_at: datetime | None = None


class Assessment(BaseModel):
    """A step's jeopardy (None: finished, or no SLA) and its due time (None: not known)."""

    model_config = ConfigDict(frozen=True)

    jeopardy: Jeopardy | None
    due_at: datetime | None = None
    at_risk_at: datetime | None = None


def due_of(sla: Sla, start: datetime) -> datetime:
    """When a step started at ``start`` is Late."""
    return start + sla.estimate


def level_at(sla: Sla, due: datetime, now: datetime) -> Jeopardy:
    """The jeopardy at ``now`` of a step with ``sla`` due at ``due``."""
    if now >= due:
        return Jeopardy.LATE
    if now >= due - sla.jeopardy:
        return Jeopardy.AT_RISK
    return Jeopardy.ON_TRACK


def start_of(step: SlaStep) -> datetime | None:
    """Where the step's clock starts, when that is known yet."""
    if step.started_at is not None:
        return step.started_at
    if step.planned_start is not None and step.state in (S.SCHEDULED, *WAITING_TO_START):
        return step.planned_start
    if step.state in WAITING_TO_START:
        return step.waiting_since
    return None


def assess(step: SlaStep, now: datetime) -> Assessment:
    """The step's jeopardy and due time at ``now``."""
    sla = step.sla
    if sla is None:
        return Assessment(jeopardy=None, due_at=step.due_at)
    due = step.due_at
    if due is None:
        start = start_of(step)
        due = None if start is None else due_of(sla, start)
    if step.state in FINAL_STATES:
        return Assessment(jeopardy=None, due_at=due)
    if due is None:
        return Assessment(jeopardy=Jeopardy.ON_TRACK)
    return Assessment(jeopardy=level_at(sla, due, now), due_at=due, at_risk_at=due - sla.jeopardy)


def worst(levels: Iterable[Jeopardy | str | None]) -> Jeopardy | None:
    """The worst of ``levels`` (None ones ignored); None when there is none."""
    found = [Jeopardy(level) for level in levels if level]
    return max(found, key=lambda level: level.rank) if found else None


def sentence(
    title: str,
    level: Jeopardy,
    due: datetime,
    now: datetime,
    *,
    least: timedelta = timedelta(minutes=1),
) -> str:
    """What the Order says of its worst step, e.g. "Provisioning: activate 25 seats is 2 h
    late (due 14:00 UTC)" (at most 255 characters). Lateness under ``least`` is just
    "late": Salesforce's message counts by the hour, so it is not rewritten each minute."""
    when = _clock(due, now)
    if level is Jeopardy.LATE:
        late = now - due
        amount = f"{_amount(late)} late" if late >= max(least, timedelta(minutes=1)) else "late"
        text = f"{title} is {amount} (due {when})"
    elif level is Jeopardy.AT_RISK:
        text = f"{title} is at risk (due {when})"
    else:
        text = f"{title} is on track (due {when})"
    return text[:255]


def _amount(delta: timedelta) -> str:
    """Coarse on purpose: the sentence changes at most once a minute (an hour in Salesforce)."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d"


def _clock(due: datetime, now: datetime) -> str:
    due, now = due.astimezone(UTC), now.astimezone(UTC)
    if due.date() == now.date():
        return due.strftime("%H:%M UTC")
    return due.strftime("%d %b %H:%M UTC").lstrip("0")
