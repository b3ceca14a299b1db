"""Jeopardy: every open step checked against its SLA at the injected clock's time.

Time alone makes a step At Risk or Late, so each plan wakes (``plans.wake_at``) at its
next SLA threshold as well as when a step changes: :func:`daemon.cycle.advance.advance_plans`
assesses the plans due with :func:`refresh_plan`, persisting per task ``jeopardy`` and
``due_at`` and per plan ``jeopardy`` (the worst of its open steps), and moves the plan's
``updated_at`` when any of it changed so that writeback carries it to Salesforce.

The sweep runs on its own cadence too (``ORDERFLOW_JEOPARDY_INTERVAL``, scheduled by
:mod:`daemon.service.loop`): the same pass, then writeback (Late orders' "N h late" refreshed; left
to the next cycle's pass while cycles write back, daemon.cycle.writeback) and
the webhook told of orders that went At Risk, Late or Fallout (once per change: what was
told is kept in ``plans.notified``). Writeback refreshes the plans it writes as well, so a
step that finishes clears its flag in the same cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from daemon.store.models import Plan, Task
from orchestration.jeopardy import Assessment, Jeopardy, SlaStep, assess, sentence, worst
from orchestration.rules import Sla
from orchestration.states import FINAL_STATES, FulfillmentStatus, StepState

log = logging.getLogger(__name__)

#: Plan statuses with no jeopardy: the work is over.
SETTLED = frozenset(
    {
        FulfillmentStatus.COMPLETED.value,
        FulfillmentStatus.CANCELLED.value,
        FulfillmentStatus.SUPERSEDED.value,
    }
)
#: What the webhook is told about, by how bad it is.
NOTIFIED = ("At Risk", "Late", "Fallout")


class SlaCache:
    """Parsed SLAs by their stored form: tasks of one rules version share a handful."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], Sla] = {}

    def of(self, task: Task) -> Sla | None:
        stored = (task.definition or {}).get("sla")
        if not stored:
            return None
        key = (str(stored.get("estimate")), str(stored.get("jeopardy")))
        sla = self._parsed.get(key)
        if sla is None:
            sla = self._parsed[key] = Sla.model_validate(stored)
        return sla


def step_of(task: Task, sla: Sla | None) -> SlaStep:
    return SlaStep(
        state=StepState(task.state),
        sla=sla,
        started_at=task.started_at,
        planned_start=task.not_before,
        # A Ready or On Hold step's last change is when it became so (see SlaStep).
        waiting_since=task.updated_at,
        due_at=task.due_at,
    )


def refresh_plan(plan: Plan, now: datetime, slas: SlaCache | None = None) -> bool:
    """Assess every step of ``plan`` at ``now`` and store the result; True when it changed."""
    slas = slas or SlaCache()
    changed = False
    for task in plan.tasks:
        found = assess(step_of(task, slas.of(task)), now)
        level = None if found.jeopardy is None else found.jeopardy.value
        if task.jeopardy != level or task.due_at != found.due_at:
            task.jeopardy, task.due_at = level, found.due_at
            changed = True
    plan_level = None
    if plan.status == FulfillmentStatus.FALLOUT.value:
        plan_level = Jeopardy.FALLOUT.value
    elif plan.status not in SETTLED:
        plan_level = (worst(t.jeopardy for t in plan.tasks) or Jeopardy.ON_TRACK).value
    if plan.jeopardy != plan_level:
        plan.jeopardy = plan_level
        changed = True
    return changed


def next_threshold(plan: Plan, now: datetime, slas: SlaCache) -> datetime | None:
    """The first time after ``now`` at which one of the plan's open steps goes At Risk or
    Late (their due times as :func:`refresh_plan` stored them)."""
    times = []
    for task in plan.tasks:
        sla = slas.of(task)
        if task.due_at is None or sla is None or StepState(task.state) in FINAL_STATES:
            continue
        times += [at for at in (task.due_at - sla.jeopardy, task.due_at) if at > now]
    return min(times, default=None)


def plans_to_sweep(session: Session) -> list[Plan]:
    """Plans whose work is not over, and settled ones still showing a jeopardy."""
    query = (
        select(Plan)
        .where(or_(Plan.status.not_in(SETTLED), Plan.jeopardy.is_not(None)))
        .options(selectinload(Plan.tasks))
        .order_by(Plan.id)
    )
    return list(session.scalars(query))


def flagged_steps() -> Select[str | None, int]:
    """Steps At Risk and Late in the store, by level."""
    return (
        select(Task.jeopardy, func.count())
        .where(Task.jeopardy.in_(("At Risk", "Late")))
        .group_by(Task.jeopardy)
    )


def condition(plan: Plan) -> str | None:
    """What the webhook should know of ``plan`` now: Fallout, Late, At Risk or nothing."""
    if plan.status == FulfillmentStatus.FALLOUT.value:
        return "Fallout"
    if plan.jeopardy in ("At Risk", "Late") and plan.status not in SETTLED:
        return plan.jeopardy
    return None


def worst_step(tasks: Iterable[Task]) -> Task | None:
    """The open step that is the most at risk: worst level, then earliest due."""
    flagged = [t for t in tasks if t.jeopardy in ("At Risk", "Late") and t.due_at is not None]
    if not flagged:
        return None
    return min(flagged, key=lambda t: (-Jeopardy(str(t.jeopardy)).rank, t.due_at, t.id))


def describe_worst(
    tasks: Iterable[Task], now: datetime, least: timedelta = timedelta(minutes=1)
) -> str | None:
    """The sentence for the worst step at risk or late, e.g. "... is 2 h late (due ...)"
    (lateness under ``least``: just "late")."""
    task = worst_step(tasks)
    if task is None or task.due_at is None:
        return None
    return sentence(task.title, Jeopardy(str(task.jeopardy)), task.due_at, now, least=least)


def at_risk_now(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Steps At Risk or Late at ``now`` (assessed afresh, nothing written), worst first:
    Late before At Risk, then by due time."""
    slas = SlaCache()
    found: list[tuple[Assessment, Plan, Task]] = []
    for plan in plans_to_sweep(session):
        if plan.status in SETTLED:
            continue
        for task in plan.tasks:
            assessed = assess(step_of(task, slas.of(task)), now)
            if assessed.jeopardy in (Jeopardy.AT_RISK, Jeopardy.LATE):
                found.append((assessed, plan, task))
    found.sort(key=lambda f: (-_rank(f[0]), f[0].due_at or now, f[2].id))
    return [
        {
            "order": plan.order_number,
            "order_id": plan.order_id,
            "task_id": task.id,
            "step": task.step_id,
            "title": task.title,
            "system": task.system,
            "state": task.state,
            "jeopardy": str(assessed.jeopardy),
            "due_at": assessed.due_at.isoformat() if assessed.due_at else None,
            "seconds_late": _seconds_late(assessed, now),
        }
        for assessed, plan, task in found
    ]


def _rank(assessed: Assessment) -> int:
    return assessed.jeopardy.rank if assessed.jeopardy else -1


def _seconds_late(assessed: Assessment, now: datetime) -> int:
    """Seconds past the due time; negative: seconds left before it."""
    return 0 if assessed.due_at is None else round((now - assessed.due_at).total_seconds())
