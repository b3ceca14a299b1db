"""What Salesforce should show for a plan (pure over the store's rows): the Order, its lines
and one ``Fulfillment_Task__c`` per step, by field name (:class:`StatusFields`).

Everything comes from plan and task state: the status and progress the engine rolls up,
the jeopardy the sweep keeps (daemon.cycle.jeopardy), flags others set (a change refused past the
point of no return, an order deleted in flight) and the steps' own messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from daemon.cycle.jeopardy import describe_worst
from daemon.logs import redact
from daemon.store.flags import flag_text
from daemon.store.models import Plan, Task
from orchestration.amend import line_status
from orchestration.jeopardy import worst
from orchestration.states import FINAL_STATES, StepState
from salesforce.fields import ORDER, ORDER_ITEM, StatusFields
from salesforce.poller import soql_datetime

MESSAGE_LENGTH = 255
#: A Late order's message says how late by the hour ("late", "2 h late"): counted by the
#: minute, every Late Order would be written again each minute it stays late.
LATE_BY = timedelta(hours=1)
_DEFAULT = StatusFields()


def desired(
    plan: Plan, now: datetime, names: StatusFields = _DEFAULT
) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """What Salesforce should show for ``plan``: (object, id or key, parent) → fields."""
    live = [t for t in plan.tasks if t.revision == plan.revision]
    out: dict[tuple[str, str, str | None], dict[str, Any]] = {
        (ORDER, plan.order_id, None): {
            names.order_status: plan.status,
            names.order_progress: plan.progress,
            names.order_message: _masked(order_message(plan, live, now)),
            names.order_jeopardy: plan.jeopardy,
        }
    }
    # A superseded plan's lines are the plan that took over's to show (daemon.cycle.amend).
    for line_id, tasks in ({} if plan.superseded_by else _lines(live)).items():
        out[(ORDER_ITEM, line_id, plan.order_id)] = {
            names.line_status: line_status((t.step_id, StepState(t.state)) for t in tasks).value,
            names.line_jeopardy: _line_jeopardy(tasks),
        }
    for line_id in plan.line_flags or {}:  # a change refused past the point of no return
        out.setdefault((ORDER_ITEM, line_id, plan.order_id), {})[names.line_status] = "Fallout"
    for task, place in zip(plan.tasks, sequence(plan.tasks), strict=True):
        fields = _task_fields(plan, task, names)
        fields[names.task_sequence] = place
        out[(names.task_object, task_key(plan, task), plan.order_id)] = fields
    return out


def sequence(tasks: Sequence[Task]) -> list[int]:
    """Each task's place in its plan revision, in the order given: 1 when it waits for no
    step, else one more than the latest step it waits for. Salesforce keeps no dependency
    edges; this number lets a list sort steps so that none comes before one it waits for."""
    known = {(t.revision, t.step_id) for t in tasks}
    waiting = {
        i: (t.revision, t.step_id, [d for d in t.depends_on or () if (t.revision, d) in known])
        for i, t in enumerate(tasks)
    }
    placed: dict[tuple[int, str], int] = {}
    out = [0] * len(tasks)
    while waiting:
        ready = {
            i: 1 + max((placed[(rev, d)] for d in deps), default=0)
            for i, (rev, _, deps) in waiting.items()
            if all((rev, d) in placed for d in deps)
        }
        if not ready:  # a cycle (the rules check refuses them): the rest after the others
            ready = dict.fromkeys(waiting, max(placed.values(), default=0) + 1)
        for i, place in ready.items():
            rev, step, _ = waiting.pop(i)
            placed[(rev, step)] = out[i] = place
    return out


def task_key(plan: Plan, task: Task) -> str:
    """The task's ``Task_Key__c``: stable across restarts (order, step, plan revision)."""
    key = f"{plan.order_id}:{task.step_id}:{task.revision}"
    return key if len(key) <= 255 else task.idempotency_key


def order_message(plan: Plan, live: Sequence[Task], now: datetime) -> str | None:
    """A sentence for the Order: a flag for a person, else the step that fell out and why,
    else the step most at risk, else a step failing and retrying."""
    flagged = flag_text(plan)
    if flagged:
        return flagged[:MESSAGE_LENGTH]
    fatal = _first(live, StepState.FATALLY_FAILED)
    if fatal is not None:
        return f"{fatal.title} failed: {fatal.message}"[:MESSAGE_LENGTH]
    at_risk = describe_worst(live, now, LATE_BY)
    if at_risk:
        return at_risk
    failing = _first(live, StepState.FAILED)
    if failing is not None:
        return f"{failing.title} failed, will retry: {failing.message}"[:MESSAGE_LENGTH]
    return None


def _first(tasks: Iterable[Task], state: StepState) -> Task | None:
    return next((t for t in tasks if t.state == state and t.message), None)


def _lines(live: Iterable[Task]) -> dict[str, list[Task]]:
    lines: dict[str, list[Task]] = {}
    for task in live:
        if task.line_id:
            lines.setdefault(task.line_id, []).append(task)
    return lines


def _line_jeopardy(tasks: Sequence[Task]) -> str | None:
    level = worst(t.jeopardy for t in tasks)
    if level is not None:
        return level.value
    finished = all(StepState(t.state) in FINAL_STATES for t in tasks)
    return None if finished else "On Track"


def _task_fields(plan: Plan, task: Task, names: StatusFields) -> dict[str, Any]:
    return {
        names.task_order: plan.order_id,  # sent once: it never changes
        names.task_system: task.system,
        names.task_step: task.title[:255],
        names.task_state: task.state,
        names.task_jeopardy: task.jeopardy,
        names.task_planned_start: _stamp(task.not_before),
        names.task_actual_start: _stamp(task.started_at),
        names.task_actual_end: _stamp(task.completed_at),
        names.task_due: _stamp(task.due_at),
        names.task_attempts: task.attempts,
        names.task_external_ref: task.external_ref,
        names.task_message: _masked(task.message),
    }


def _masked(text: str | None) -> str | None:
    """A message as Salesforce may show it: secrets masked, at most 255 characters."""
    return redact(text)[:MESSAGE_LENGTH] if text else None


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else soql_datetime(value)
