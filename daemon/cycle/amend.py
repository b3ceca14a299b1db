"""Changes to orders in flight, applied in the store (the diff itself: orchestration.amend).

The poll hands over every order that changes a planned one:

- :func:`change_order`: a new Order that points to an earlier one (a change order). The
  earlier order's plan is reconciled with it, and the change order takes the plan over: a
  plan of its own (the next revision) holds the live tasks from then on, and the earlier
  Order shows Superseded;
- :func:`order_changed`: a planned order seen changed in place, or cancelled (its status
  set to one of ``Context.cancelled_statuses``).

A change is applied in one transaction with the plan's tasks locked: the plan is Frozen,
old tasks move (Amended, Discarded, Canceled), the tasks kept move to the new revision
with their idempotency keys, new steps get keys of the new revision and name the task they
replace. Lines past their point of no return are left as they are and flagged with the
reason (``Plan.line_flags``, shown on the Order and the line). The same change seen again
(a re-poll, a resync) finds nothing to change and changes nothing.

:func:`cancel_in_flight` (a cycle phase) asks a system to cancel a running task that a
change made unnecessary; if the system does, its compensation is not needed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.store.models import Plan, SourceRecord, Task, TaskEvent
from orchestration import changes
from orchestration.amend import (
    FOLLOW_UP,
    Orders,
    Reconciliation,
    TaskView,
    base_of,
    desired_steps,
    reconcile,
    refusals,
)
from orchestration.decompose import PlannedStep, fallout_step, idempotency_key
from orchestration.errors import OrderflowError, RecordError
from orchestration.records import Order
from orchestration.rules import RuleSet
from orchestration.states import FINAL_STATES, PlanState, StepKind, StepState
from salesforce.poller import ORDER_ITEM

log = logging.getLogger(__name__)

#: Said on a compensation whose running step the system would not cancel.
NOT_CANCELED = "the system did not cancel the running step: undone once it finishes"
#: How far a chain of change orders is followed (each supersedes the one before).
MAX_CHAIN = 100


def remember_order(plan: Plan, order: Order) -> None:
    """Keep the order a plan's revision was decomposed from: what the next change is
    compared with."""
    plan.snapshot = changes.live(order).model_dump(mode="json")


def snapshot(plan: Plan) -> Order | None:
    return None if plan.snapshot is None else Order.model_validate(plan.snapshot)


def live_plan(session: Session, plan: Plan) -> Plan:
    """The plan that carries an order now: the end of its chain of change orders."""
    for _ in range(MAX_CHAIN):
        if plan.superseded_by is None:
            return plan
        nxt = store.plan_for(session, plan.superseded_by)
        if nxt is None:
            return plan
        plan = nxt
    return plan


def change_order(
    ctx: Context,
    session: Session,
    order: Order,
    now: datetime,
    *,
    held: bool = False,
    history: bool = False,
) -> bool:
    """Apply ``order`` if it is a change order (True); False for an order of its own.

    ``held``: the change order has a plan already, held at planning (daemon.cycle.held); one
    whose original Orderflow has not planned stays held (RecordError). ``history``: a
    change made before the cut-over (daemon.cycle.adoption): it happened, past any point of no
    return, and is applied whole."""
    known = _known_lines(session, order)
    if not changes.is_change_order(order, known):
        return False
    original = changes.original_order(order) or next(
        (known[ref] for line in order.lines if (ref := changes.original_line(line, known))),
        None,
    )
    plan = store.plan_for(session, original) if original else None
    base = snapshot(live_plan(session, plan)) if plan is not None else None
    if plan is None or base is None:
        reason = f"change order for order {original or '?'}, which Orderflow has not planned"
        if held:
            raise RecordError(reason)
        step = fallout_step("change", "Resolve the change order", reason)
        store.create_plan(session, order, [step], ctx.ruleset, now)
        log.warning("order %s: %s", order.number, reason, extra={"order_id": order.id})
        return True
    target = live_plan(session, plan)
    desired = changes.merge_in_place(base, changes.live(changes.merge_change_order(base, order)))
    cancel = not changes.live(desired).lines and bool(base.lines)
    apply(ctx, session, target, desired, now, takeover=order, cancel=cancel, history=history)
    return True


def order_changed(
    ctx: Context, session: Session, plan: Plan, record: dict[str, Any], now: datetime
) -> bool:
    """A planned order seen again with other content: reconcile its plan. True if changed."""
    if plan.kind != "order":
        return False
    cancelled = str(record.get("Status")) in ctx.cancelled_statuses
    target = live_plan(session, plan)
    base = snapshot(target)
    if base is None or (target is not plan and not cancelled):
        log.info(
            "order %s changed after planning; plan kept",
            plan.order_number,
            extra={"order_id": plan.order_id, "order_number": plan.order_number},
        )
        return False
    if cancelled:
        if target.cancelled_at is not None:
            return False  # seen cancelled before
        return apply(ctx, session, target, changes.cancel_all(base), now, cancel=True)
    try:
        order = ctx.inbound(session, Order.from_record(record))
    except (RecordError, ValidationError, KeyError, ValueError) as exc:
        log.warning(
            "order %s changed but cannot be read (%s); plan kept",
            plan.order_number,
            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
            extra={"order_id": plan.order_id, "order_number": plan.order_number},
        )
        return False
    if target.supersedes is not None:
        previous = store.plan_for(session, target.supersedes)
        prev = snapshot(previous) if previous is not None else None
        if prev is not None:
            order = changes.live(changes.merge_change_order(prev, order))
    return apply(ctx, session, target, changes.merge_in_place(base, order), now)


def apply(
    ctx: Context,
    session: Session,
    plan: Plan,
    desired: Order,
    now: datetime,
    *,
    takeover: Order | None = None,
    cancel: bool = False,
    history: bool = False,
) -> bool:
    """Reconcile ``plan`` with the ``desired`` order; True when a new revision was made."""
    old = snapshot(plan)
    assert old is not None
    ruleset = rules_of(ctx, session, plan)
    tasks = _lock_live(session, plan)
    views = [_view(t) for t in tasks]
    refused = {} if history else refusals(views, desired)
    effective = changes.keep_lines(desired, old, refused) if refused else desired
    revision = plan.revision + 1
    diff = reconcile(
        desired_steps(old, ruleset),
        desired_steps(effective, ruleset),
        views,
        Orders(old, effective, ruleset.tables),
        revision,
    )
    flags = {**(plan.line_flags or {}), **refused, **_change_lines(takeover, refused)}
    if not diff.changes_anything and takeover is None:
        _settle_flags(plan, flags, cancel, now)
        return False
    label = f"change order {takeover.number}" if takeover else "order changed in Salesforce"
    if cancel:
        label = "order cancelled" if takeover is None else f"cancel order {takeover.number}"
    plan.state = PlanState.FROZEN  # while the change is applied (one transaction)
    target = _take_over(session, plan, takeover, revision, now) if takeover else plan
    if takeover is None:
        plan.revision = revision
    _write(session, plan, target, tasks, diff, revision, label, now)
    remember_order(target, effective)
    _settle_flags(target, flags, cancel, now)
    target.state = PlanState.IN_PROGRESS
    target.wake_at = now  # its new steps may start
    store.refresh_rollup(target, now)
    log.info(
        "order %s: %s applied as revision %d (%d steps kept, %d replaced or dropped, %d new)",
        target.order_number,
        label,
        revision,
        len(diff.carried),
        len(diff.moves),
        len(diff.new),
        extra={"order_id": target.order_id, "revision": revision, "refused": len(refused)},
    )
    return True


def rules_of(ctx: Context, session: Session, plan: Plan) -> RuleSet:
    """The rules the plan is pinned to (a change is decomposed with them too)."""
    if plan.rules_digest and plan.rules_digest != ctx.ruleset.digest:
        pinned = store.pinned_rules(session, plan.rules_digest)
        if pinned is not None:
            return pinned
    return ctx.ruleset


def _known_lines(session: Session, order: Order) -> dict[str, str]:
    """Lines the change order may point to that Orderflow has seen: line id → order id."""
    refs = {
        str(value)
        for line in order.lines
        for name in (changes.ORIGINAL_LINE, *changes.LEGACY_REFERENCES)
        if (value := line.fields.get(name))
    }
    if not refs:
        return {}
    rows = session.scalars(
        select(SourceRecord).where(SourceRecord.sobject == ORDER_ITEM, SourceRecord.sf_id.in_(refs))
    )
    return {row.sf_id: str(row.data.get("OrderId")) for row in rows if row.data.get("OrderId")}


def _lock_live(session: Session, plan: Plan) -> list[Task]:
    # Locked: another instance may be claiming one of these tasks right now (daemon.cycle.claims).
    return list(
        session.scalars(
            select(Task)
            .where(Task.plan_id == plan.id, Task.revision == plan.revision)
            .order_by(Task.id)
            .with_for_update()
        )
    )


def _view(task: Task) -> TaskView:
    return TaskView(
        id=task.id,
        step_id=task.step_id,
        rule=task.rule,
        key=task.key,
        kind=StepKind(task.kind),
        state=StepState(task.state),
        started=task.started_at is not None,
        title=task.title,
        system=task.system,
        line_id=task.line_id,
        depends_on=tuple(task.depends_on),
        ponr=task.ponr,
        policy=store.policy(task),
    )


def _change_lines(takeover: Order | None, refused: dict[str, str]) -> dict[str, str]:
    """The change order's own lines that asked for a refused change carry the flag too."""
    if takeover is None or not refused:
        return {}
    out = {}
    for line in takeover.lines:
        target = changes.original_line(line, refused)
        if target in refused:
            out[line.id] = refused[target]
    return out


def _settle_flags(plan: Plan, flags: dict[str, str], cancel: bool, now: datetime) -> None:
    # Assigned only when different: an unchanged plan is not written back again.
    if flags != (plan.line_flags or {}):
        plan.line_flags = dict(flags) or None
        store.touch(plan, now)
    if cancel and plan.cancelled_at is None:
        plan.cancelled_at = now
        store.touch(plan, now)
        store.refresh_rollup(plan, now)


def _take_over(session: Session, plan: Plan, change: Order, revision: int, now: datetime) -> Plan:
    """The change order's plan, which carries the work from now on; the old one Superseded.

    A change order held at planning (daemon.cycle.held) has a plan already: its held steps are
    Discarded and it takes over in place."""
    new = store.plan_for(session, change.id)
    if new is None:
        new = Plan(order_id=change.id, kind=plan.kind, created_at=now)
        session.add(new)
    else:
        for task in new.tasks:
            if task.revision == new.revision and StepState(task.state) not in FINAL_STATES:
                store.transition(session, task, StepState.DISCARDED, "released", now)
    new.order_number = change.number
    new.account_id = change.fields.get("AccountId") or plan.account_id
    new.revision = revision
    new.rules_version, new.rules_digest = plan.rules_version, plan.rules_digest
    new.state, new.status, new.progress = PlanState.IN_PROGRESS, plan.status, plan.progress
    new.supersedes, new.line_flags = plan.order_id, plan.line_flags
    new.updated_at = new.wake_at = now
    session.flush()
    plan.superseded_by = change.id
    plan.state = PlanState.COMPLETED
    store.touch(plan, now)
    return new


def _write(
    session: Session,
    plan: Plan,
    target: Plan,
    tasks: list[Task],
    diff: Reconciliation,
    revision: int,
    label: str,
    now: datetime,
) -> None:
    by_id = {t.id: t for t in tasks}
    for move in diff.moves:
        store.transition(session, by_id[move.task_id], move.to, f"{move.reason} ({label})", now)
    for task_id in diff.carried:
        task = by_id[task_id]
        task.revision, task.updated_at = revision, now
        if target is not plan:
            task.plan = target
    created = [_task(target, revision, step, replaces, now) for step, replaces in _steps(diff)]
    session.add_all(created)
    session.flush()
    for task in created:
        replaces = task.replaces_task_id
        reason = f"planned: {label}" + (f", replaces task {replaces}" if replaces else "")
        session.add(
            TaskEvent(task_id=task.id, at=now, from_state=None, to_state=task.state, reason=reason)
        )
    session.expire(plan, ["tasks"])
    if target is not plan:
        store.refresh_rollup(plan, now)  # Superseded
        session.expire(target, ["tasks"])


def _steps(diff: Reconciliation) -> list[tuple[PlannedStep, int | None]]:
    return [(n.step, n.replaces) for n in diff.new]


def _task(
    plan: Plan, revision: int, step: PlannedStep, replaces: int | None, now: datetime
) -> Task:
    return Task(
        plan=plan,
        revision=revision,
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
        line_action=step.line_action.value if step.line_action else None,
        definition=step.policy.model_dump(mode="json") if step.policy else None,
        state=step.state.value,
        idempotency_key=idempotency_key(plan.order_id, step.step_id, revision),
        attempts=0,
        message=step.message[:255],
        not_before=step.not_before,
        delay_seconds=step.delay.total_seconds() if step.delay else None,
        replaces_task_id=replaces,
        created_at=now,
        updated_at=now,
    )


def cancel_in_flight(ctx: Context) -> int:
    """Ask systems to cancel running tasks a change made unnecessary. Returns how many did.

    A compensation waiting for a running task is the sign; when the system cancels the task
    (Canceled), the compensation is not needed (Skipped). A system that refuses or cannot
    be reached is not asked again: the task finishes and is then compensated.
    """
    with ctx.sessions() as session:
        asks = _cancellable(ctx, session)
    done = 0
    for undo_id, task_id, system, ref in asks:
        try:
            result = ctx.systems[system].cancel(ref)
            ok = result.outcome.value == "completed"
        except OrderflowError as exc:
            ok = False
            log.info("cancel of %s at %s failed: %s", ref, system, exc)
        done += _record_cancel(ctx, undo_id, task_id, system, ok)
    return done


def _cancellable(ctx: Context, session: Session) -> list[tuple[int, int, str, str]]:
    undos = session.scalars(
        select(Task)
        .where(Task.state == StepState.PENDING.value)
        .where(Task.step_id.like(f"%{FOLLOW_UP}undo.r%"))
        .where(Task.message != NOT_CANCELED)
    ).all()
    out = []
    for undo in undos:
        running = session.scalars(
            select(Task).where(
                Task.plan_id == undo.plan_id,
                Task.revision == undo.revision,
                Task.step_id == base_of(undo.step_id),
            )
        ).one_or_none()
        if (
            running is not None
            and running.state == StepState.IN_PROGRESS
            and running.external_ref
            and running.dispatch_started_at is None
            and running.system is not None
            and running.system in ctx.systems
        ):
            out.append((undo.id, running.id, running.system, running.external_ref))
    return out


def _record_cancel(ctx: Context, undo_id: int, task_id: int, system: str, ok: bool) -> int:
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id, with_for_update=True, populate_existing=True)
        undo = session.get(Task, undo_id, with_for_update=True, populate_existing=True)
        assert task is not None and undo is not None
        if undo.state != StepState.PENDING:
            return 0
        if not ok or task.state != StepState.IN_PROGRESS:
            undo.message = NOT_CANCELED
            return 0
        store.transition(session, task, StepState.CANCELED, f"canceled at {system}", now)
        task.message = f"canceled at {system} after the change"
        skipped = "not needed: canceled at the system"
        store.transition(session, undo, StepState.SKIPPED, skipped, now)
        store.refresh_rollup(task.plan, now)
    return 1
