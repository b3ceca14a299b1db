"""The store: every state that must survive a crash, behind a few intention-named calls.

The package holds the database beneath them: :mod:`.db` (engines, migrations run at
start, the single-instance lock on SQLite), :mod:`.models` (the tables), ``migrations/``
(Alembic), and the store's read models that several layers share: :mod:`.flags`,
:mod:`.accounts`, :mod:`.cutover`. Nothing here imports the cycle or anything above it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from daemon.store.models import Plan, RuleVersion, SourceRecord, Task, TaskEvent, Watermark
from orchestration.amend import fulfillment_status
from orchestration.decompose import PlannedStep, idempotency_key
from orchestration.errors import OperatorError
from orchestration.plan import StepView, rollup
from orchestration.records import Order
from orchestration.rules import RuleSet, StepPolicy
from orchestration.states import (
    PlanState,
    Resolution,
    StepKind,
    StepState,
    check_transition,
    resolution_target,
)

_TASKS = cast(Table, Task.__table__)
_EVENTS = cast(Table, TaskEvent.__table__)


def content_hash(
    record: dict[str, Any], ignore: Sequence[str] = ("SystemModstamp", "Account")
) -> str:
    """A stable hash of the fields that matter: Orderflow's own writes do not change it, nor
    does the Account's name read with an Order (display only; polled from this version on,
    so an order stored before is not seen as changed)."""
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


def hold_watermark(session: Session, sobject: str, value: datetime, now: datetime) -> None:
    """Set the watermark to ``value`` even if that is back: a record it had passed waits."""
    row = session.get(Watermark, sobject)
    if row is None:
        session.add(Watermark(sobject=sobject, value=value, updated_at=now))
    else:
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
    rules: RuleSet | str,
    now: datetime,
) -> Plan:
    """Persist a new plan (revision 1) and its tasks, each with its idempotency key.

    Given the rule set, the plan is pinned to it: its digest on the plan, its definition in
    ``rule_versions``, and on each task what the task needs at run time (retry policies,
    SLA, compensation), so a later rules change applies to new orders only.
    """
    version, digest = (rules, None) if isinstance(rules, str) else (rules.version, rules.digest)
    if not isinstance(rules, str):
        pin_rules(session, rules, now)
    plan = Plan(
        order_id=order.id,
        order_number=order.number,
        account_id=order.fields.get("AccountId"),
        revision=1,
        rules_version=version,
        rules_digest=digest or None,
        state=PlanState.NOT_STARTED,
        status="Not Started",
        progress=0,
        created_at=now,
        updated_at=now,
        wake_at=now,
    )
    session.add(plan)
    session.flush()  # the plan's id, for its tasks
    add_tasks(session, plan, steps, now)
    # Derived from the steps in hand rather than from the tasks (a query per plan).
    status, progress = rollup(step.state for step in steps)
    plan.status, plan.progress = status.value, progress
    plan.state = _plan_state(plan.state, status.value)
    return plan


def add_tasks(session: Session, plan: Plan, steps: Sequence[PlannedStep], now: datetime) -> None:
    """Insert ``steps`` as the tasks of the plan's current revision, each with its
    idempotency key and a "planned" audit row."""
    dumps: dict[int, dict[str, Any]] = {}
    rows = []
    for step in steps:
        definition = None
        if step.policy is not None:
            definition = dumps.get(id(step.policy))
            if definition is None:
                definition = dumps[id(step.policy)] = step.policy.model_dump(mode="json")
        rows.append(
            {
                "plan_id": plan.id,
                "revision": plan.revision,
                "step_id": step.step_id,
                "rule": step.rule,
                "key": step.key,
                "kind": step.kind.value,
                "system": step.system,
                "action": step.action,
                "title": step.title[:255],
                "line_id": step.line_id,
                "depends_on": list(step.depends_on),
                "payload": step.payload,
                "ponr": step.ponr,
                "line_action": step.line_action.value if step.line_action else None,
                "definition": definition,
                "state": step.state.value,
                "idempotency_key": idempotency_key(plan.order_id, step.step_id, plan.revision),
                "attempts": 0,
                "message": step.message[:255],
                "not_before": step.not_before,
                "delay_seconds": step.delay.total_seconds() if step.delay else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        # Bulk statements, not one ORM object per row: planning is the store's hot path.
        connection = session.connection()
        connection.execute(insert(_TASKS), rows)
        created = connection.execute(
            select(Task.id, Task.state)
            .where(Task.plan_id == plan.id)
            .where(Task.revision == plan.revision)
        )
        connection.execute(
            insert(_EVENTS),
            [
                {
                    "task_id": task_id,
                    "at": now,
                    "from_state": None,
                    "to_state": state,
                    "reason": "planned",
                    "actor": "orderflow",
                }
                for task_id, state in created
            ],
        )
        session.expire(plan, ["tasks"])


def pin_rules(session: Session, ruleset: RuleSet, now: datetime) -> None:
    """Keep the definition of a rules version plans are built from (once per digest)."""
    pinned: set[str] = session.info.setdefault("pinned_rules", set())
    if not ruleset.digest or ruleset.digest in pinned:
        return
    pinned.add(ruleset.digest)
    if session.get(RuleVersion, ruleset.digest) is not None:
        return
    session.add(
        RuleVersion(
            digest=ruleset.digest,
            version=ruleset.version,
            definition=ruleset.model_dump(mode="json", by_alias=True, exclude_none=True),
            first_used_at=now,
        )
    )
    session.flush()


def pinned_rules(session: Session, digest: str) -> RuleSet | None:
    """The rule set a plan was built from, as it was then."""
    row = session.get(RuleVersion, digest)
    return None if row is None else RuleSet.model_validate(row.definition)


def policy(task: Task) -> StepPolicy | None:
    """The run-time definition pinned to a task when its plan was made (None for fallout)."""
    return None if task.definition is None else StepPolicy.model_validate(task.definition)


def transition(
    session: Session,
    task: Task,
    to: StepState,
    reason: str,
    now: datetime,
    *,
    actor: str = "orderflow",
) -> None:
    """Move a task to another state, checked against the one table, with an audit row.

    The task's plan wakes (``wake_at``): what follows the step may move now. Not for a step
    going In Progress (nothing waits on that), so a dispatch claim touches tasks only.
    """
    old = StepState(task.state)
    check_transition(old, to)
    task.state = to.value
    task.updated_at = now
    if to is not StepState.IN_PROGRESS:
        task.plan.wake_at = now
    if to is StepState.IN_PROGRESS and task.started_at is None:
        task.started_at = now
    if to in (StepState.COMPLETED, StepState.SKIPPED, StepState.CANCELED):
        task.completed_at = now
    if to is not StepState.FAILED:
        task.next_attempt_at = None  # a retry time means something only while Failed
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


def resolve_task(
    session: Session,
    task_id: int,
    verb: Resolution,
    reason: str,
    actor: str,
    now: datetime,
) -> Task:
    """An operator's retry, complete or skip of a task, audited with who and why.

    Raises :class:`OperatorError` for an unknown task or a move its state does not allow.
    """
    task = session.get(Task, task_id)
    if task is None:
        raise OperatorError(f"no task with id {task_id}")
    plan = task.plan
    if task.revision != plan.revision:
        raise OperatorError(f"task {task_id} belongs to an earlier revision of its plan")
    target = resolution_target(verb, StepState(task.state), StepKind(task.kind))
    if verb is Resolution.RETRY:
        # A fresh budget of attempts: the operator fixed what made the tries fail.
        task.attempts, task.next_attempt_at, task.dispatch_started_at = 0, None, None
    task.message = f"{verb.value} by {actor}: {reason}"[:255]
    transition(session, task, target, f"operator {verb.value}: {reason}", now, actor=actor)
    refresh_rollup(plan, now)
    return task


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
    status = fulfillment_status(  # Superseded, or Cancelled once undone (daemon.cycle.amend)
        status,
        live_steps=len(live),
        superseded=plan.superseded_by is not None,
        cancelled=plan.cancelled_at is not None,
        refused=bool(plan.line_flags),
    )
    state = _plan_state(plan.state, status.value)
    # updated_at says "Salesforce may need to hear of this plan" (writeback's candidates), so
    # it moves only when the rollup or a task changed: bumping every open plan on every
    # pass made each cycle re-examine everything in flight.
    changed = (plan.status, plan.progress, plan.state) != (status.value, progress, state)
    touched = plan.updated_at is None or any(
        t.updated_at is not None and t.updated_at > plan.updated_at for t in live
    )
    plan.status, plan.progress, plan.state = status.value, progress, state
    if changed or touched:
        touch(plan, now)
        plan.wake_at = now  # and the next pass looks at what follows


def touch(plan: Plan, now: datetime) -> None:
    """Say that Salesforce may need to hear of ``plan`` (writeback's candidates): its
    ``updated_at`` moves and its change count goes up by one in the UPDATE itself, so
    changes two instances commit, or one clock stamps alike, each count."""
    plan.updated_at = now
    plan.change_seq = Plan.change_seq + 1


def _plan_state(current: str, status: str) -> str:
    if current == PlanState.FROZEN:
        return current
    return {
        "Not Started": PlanState.NOT_STARTED,
        "Completed": PlanState.COMPLETED,
        "Cancelled": PlanState.COMPLETED,
        "Superseded": PlanState.COMPLETED,
    }.get(status, PlanState.IN_PROGRESS)


def plans_to_wake(session: Session, now: datetime, limit: int, *, shared: bool) -> list[Plan]:
    """Up to ``limit`` plans due to be looked at (``wake_at`` passed), tasks loaded.

    Shared (several instances, PostgreSQL): the plans are locked ``FOR UPDATE SKIP
    LOCKED`` until the caller commits, so each is advanced by one instance at a time and
    instances take different plans. Whoever changes a plan's tasks locks the plan first
    (daemon.cycle.dispatch), so the two never wait on each other in a circle.
    """
    query = (
        select(Plan)
        .where(Plan.wake_at <= now)
        .order_by(Plan.wake_at, Plan.id)
        .limit(limit)
        .options(selectinload(Plan.tasks))
    )
    if shared:
        query = query.with_for_update(skip_locked=True, of=Plan)
    return list(session.scalars(query))


def wake_open_plans(session: Session, now: datetime) -> None:
    """Have the next pass look at every open plan (a system went offline or came back)."""
    session.execute(
        update(Plan)
        .where(Plan.state.in_([PlanState.NOT_STARTED, PlanState.IN_PROGRESS]))
        .values(wake_at=now)
    )


def unwritten_plans(session: Session, limit: int) -> list[Plan]:
    """Plans whose status Salesforce does not show yet."""
    differs = (Plan.written_status.is_(None)) | (Plan.written_status != Plan.status)
    return list(session.scalars(select(Plan).where(differs).order_by(Plan.id).limit(limit)))


def counts(session: Session) -> dict[str, Any]:
    """Orders and invoice transfers by status, apart, and tasks by (system, state)."""
    by_kind: dict[str, dict[str, int]] = {"order": {}, "invoice": {}}
    rows = session.execute(
        select(Plan.kind, Plan.status, func.count()).group_by(Plan.kind, Plan.status)
    )
    for kind, status, n in rows:
        by_kind.setdefault(kind, {})[status] = n
    tasks: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(Task.system, Task.state, func.count()).group_by(Task.system, Task.state)
    )
    for system, state, n in rows:
        tasks.setdefault(system or "internal", {})[state] = n
    return {
        "orders_by_status": by_kind["order"],
        "invoices_by_status": by_kind["invoice"],
        "tasks_by_system": tasks,
    }


def waiting_for_operator(session: Session, limit: int = 500) -> list[dict[str, Any]]:
    """Tasks a person must act on: fallout (Fatally Failed) and manual tasks In Progress."""
    rows = session.execute(
        select(Task, Plan.order_number)
        .join(Plan, Task.plan_id == Plan.id)
        .where(Task.revision == Plan.revision)
        .where(
            (Task.state == StepState.FATALLY_FAILED.value)
            | ((Task.state == StepState.IN_PROGRESS.value) & (Task.kind == StepKind.MANUAL.value))
        )
        .order_by(Task.id)
        .limit(limit)
    )
    return [
        {
            "id": task.id,
            "order": number,
            "step": task.step_id,
            "state": task.state,
            "title": task.title,
            "message": task.message,
        }
        for task, number in rows
    ]


def manual_tasks_waiting(session: Session, since: datetime) -> list[int]:
    """Ids of manual tasks waiting for an operator since ``since`` or earlier."""
    return list(
        session.scalars(
            select(Task.id)
            .join(Plan, Task.plan_id == Plan.id)
            .where(Task.revision == Plan.revision)
            .where(Task.kind == StepKind.MANUAL.value)
            .where(Task.state == StepState.IN_PROGRESS.value)
            .where(Task.started_at <= since)
            .order_by(Task.id)
        )
    )


#: Plan ids per ``IN (...)`` list.
IDS_PER_QUERY = 500


def plans_by_id(session: Session, query: Select[Any], ids: set[int], limit: int) -> list[Plan]:
    """The first ``limit`` plans of ``query`` among ``ids``, by id, looked up by primary key
    (a per-cycle pass that knows which plans changed reads those, not the whole table)."""
    found: list[Plan] = []
    ordered = sorted(ids)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        chunk = ordered[start : start + IDS_PER_QUERY]
        found += session.scalars(query.where(Plan.id.in_(chunk)).limit(limit - len(found)))
        if len(found) >= limit:
            break
    return found


#: The least a pass that reads "what changed since its last look" reaches back before that
#: look: a transaction commits after the time it stamps (a callback handler's, a pass of
#: several batches), and ``ORDERFLOW_SF_POLL_OVERLAP`` may be set lower than that takes.
MIN_LOOKBACK = timedelta(minutes=10)


def changed_since(last_look: datetime | None, overlap: timedelta) -> datetime | None:
    """Where such a pass starts reading: None (everything) before its first look."""
    return None if last_look is None else last_look - max(overlap, MIN_LOOKBACK)
