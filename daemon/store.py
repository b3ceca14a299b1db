"""The store: every state that must survive a crash, behind a few intention-named calls."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from daemon.models import Plan, SourceRecord, Task, TaskEvent, Watermark
from orchestration.decompose import PlannedStep, idempotency_key
from orchestration.plan import StepView, rollup
from orchestration.records import Order
from orchestration.states import PlanState, StepKind, StepState, check_transition


def content_hash(record: dict[str, Any], ignore: Sequence[str] = ("SystemModstamp",)) -> str:
    """A stable hash of the fields that matter: Orderflow's own writes do not change it."""
    cleaned = _strip(record, set(ignore))
    return hashlib.sha256(json.dumps(cleaned, sort_keys=True, default=str).encode()).hexdigest()


def _strip(value: Any, ignore: set[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v, ignore) for k, v in value.items() if k not in ignore and k != "attributes"
        }
    if isinstance(value, list):
        return [_strip(v, ignore) for v in value]
    return value


def watermark(session: Session, sobject: str) -> datetime | None:
    row = session.get(Watermark, sobject)
    return row.value if row else None


def move_watermark(session: Session, sobject: str, value: datetime, now: datetime) -> None:
    row = session.get(Watermark, sobject)
    if row is None:
        session.add(Watermark(sobject=sobject, value=value, updated_at=now))
    elif value > row.value:
        row.value, row.updated_at = value, now


def remember(
    session: Session, sobject: str, record: dict[str, Any], modstamp: datetime, now: datetime
) -> bool:
    """Record a polled row; True when its content is new or changed (not an echo)."""
    digest = content_hash(record)
    sf_id = str(record["Id"])
    row = session.get(SourceRecord, (sobject, sf_id))
    if row is not None and row.content_hash == digest:
        if modstamp > row.system_modstamp:
            row.system_modstamp = modstamp
        return False
    data = _strip(record, set())
    if row is None:
        session.add(
            SourceRecord(
                sobject=sobject,
                sf_id=sf_id,
                system_modstamp=modstamp,
                content_hash=digest,
                seen_at=now,
                data=data,
            )
        )
    else:
        row.system_modstamp, row.content_hash, row.seen_at, row.data = modstamp, digest, now, data
    return True


def plan_for(session: Session, order_id: str) -> Plan | None:
    return session.scalars(select(Plan).where(Plan.order_id == order_id)).one_or_none()


def create_plan(
    session: Session,
    order: Order,
    steps: Sequence[PlannedStep],
    rules_version: str,
    now: datetime,
) -> Plan:
    """Persist a new plan (revision 1) and its tasks, each with its idempotency key."""
    plan = Plan(
        order_id=order.id,
        order_number=order.number,
        account_id=order.fields.get("AccountId"),
        revision=1,
        rules_version=rules_version,
        state=PlanState.NOT_STARTED,
        status="Not Started",
        progress=0,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    for step in steps:
        task = Task(
            plan=plan,
            revision=plan.revision,
            step_id=step.step_id,
            rule=step.rule,
            key=step.key,
            kind=step.kind.value,
            system=step.system,
            action=step.action,
            title=step.title[:255],
            line_id=step.line_id,
            depends_on=list(step.depends_on),
            payload=step.payload,
            ponr=step.ponr,
            state=step.state.value,
            idempotency_key=idempotency_key(order.id, step.step_id, plan.revision),
            message=step.message[:255],
            not_before=step.not_before,
            delay_seconds=step.delay.total_seconds() if step.delay else None,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.add(
            TaskEvent(task=task, at=now, from_state=None, to_state=task.state, reason="planned")
        )
    session.flush()
    refresh_rollup(plan, now)
    return plan


def transition(
    session: Session,
    task: Task,
    to: StepState,
    reason: str,
    now: datetime,
    *,
    actor: str = "orderflow",
) -> None:
    """Move a task to another state, checked against the one table, with an audit row."""
    old = StepState(task.state)
    check_transition(old, to)
    task.state = to.value
    task.updated_at = now
    if to is StepState.IN_PROGRESS and task.started_at is None:
        task.started_at = now
    if to in (StepState.COMPLETED, StepState.SKIPPED, StepState.CANCELED):
        task.completed_at = now
    session.add(
        TaskEvent(
            task_id=task.id,
            at=now,
            from_state=old.value,
            to_state=to.value,
            reason=reason,
            actor=actor,
        )
    )


def view(task: Task) -> StepView:
    return StepView(
        step_id=task.step_id,
        kind=StepKind(task.kind),
        state=StepState(task.state),
        depends_on=tuple(task.depends_on),
        system=task.system,
        not_before=task.not_before,
        delay=None if task.delay_seconds is None else timedelta(seconds=task.delay_seconds),
        next_attempt_at=task.next_attempt_at,
    )


def refresh_rollup(plan: Plan, now: datetime) -> None:
    """Derive the plan's state, fulfillment status and progress from its tasks."""
    live = [t for t in plan.tasks if t.revision == plan.revision]
    status, progress = rollup(StepState(t.state) for t in live)
    plan.status, plan.progress = status.value, progress
    if plan.state != PlanState.FROZEN:
        plan.state = {
            "Not Started": PlanState.NOT_STARTED,
            "Completed": PlanState.COMPLETED,
            "Cancelled": PlanState.COMPLETED,
        }.get(status.value, PlanState.IN_PROGRESS)
    plan.updated_at = now


def open_plans(session: Session) -> list[Plan]:
    """Plans with work left, tasks loaded."""
    return list(
        session.scalars(
            select(Plan)
            .where(Plan.state.in_([PlanState.NOT_STARTED, PlanState.IN_PROGRESS]))
            .options(selectinload(Plan.tasks))
            .order_by(Plan.id)
        )
    )


def unwritten_plans(session: Session, limit: int) -> list[Plan]:
    """Plans whose status Salesforce does not show yet."""
    differs = (Plan.written_status.is_(None)) | (Plan.written_status != Plan.status)
    return list(session.scalars(select(Plan).where(differs).order_by(Plan.id).limit(limit)))


def counts(session: Session) -> dict[str, Any]:
    """Orders by status and tasks by (system, state), for summaries and status."""
    orders = dict(session.execute(select(Plan.status, func.count()).group_by(Plan.status)).all())
    tasks: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(Task.system, Task.state, func.count()).group_by(Task.system, Task.state)
    )
    for system, state, n in rows:
        tasks.setdefault(system or "internal", {})[state] = n
    return {"orders_by_status": orders, "tasks_by_system": tasks}
