"""One cycle of the daemon: poll, plan, advance, dispatch, write back.

Each phase commits what it learned before the next begins, so a crash at any line leaves a
state from which the next cycle finishes the work (ARCHITECTURE.md, rule 1).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon import store
from daemon.models import Plan, Task
from downstream.protocol import DownstreamSystem, Outcome, SubmitResult, TaskRequest
from orchestration.decompose import decompose, fallout_step
from orchestration.errors import RecordError, RetriableError
from orchestration.plan import advance, retry_delay
from orchestration.records import Order, parse_datetime
from orchestration.rules import RuleSet
from orchestration.states import StepKind, StepState
from salesforce.gateway import SalesforceGateway
from salesforce.poller import next_window, order_query

log = logging.getLogger(__name__)

ORDER = "Order"
AutoAction = Callable[[dict[str, Any]], None]


@dataclass
class Context:
    """Everything a cycle needs, built once by :mod:`daemon.app`."""

    sessions: sessionmaker[Session]
    gateway: SalesforceGateway
    systems: Mapping[str, DownstreamSystem]
    ruleset: RuleSet
    clock: Callable[[], datetime]
    statuses: list[str] = field(default_factory=lambda: ["Activated"])
    overlap: timedelta = timedelta(minutes=10)
    settle: timedelta = timedelta(seconds=2)
    auto_actions: Mapping[str, AutoAction] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class CycleReport:
    polled: int = 0
    planned: int = 0
    dispatched: int = 0
    written: int = 0

    @property
    def idle(self) -> bool:
        return not (self.planned or self.dispatched or self.written)


def run_cycle(ctx: Context) -> CycleReport:
    report = CycleReport()
    report.polled, report.planned = poll_orders(ctx)
    advance_plans(ctx)
    report.dispatched = dispatch(ctx)
    advance_plans(ctx)
    report.written = write_back(ctx)
    return report


def poll_orders(ctx: Context) -> tuple[int, int]:
    """Read the Orders changed since the watermark; plan new ones. Returns (seen, planned)."""
    now = ctx.clock()
    with ctx.sessions() as session:
        mark = store.watermark(session, ORDER)
    window = next_window(mark, now, overlap=ctx.overlap, settle=ctx.settle)
    seen = planned = 0
    for page in ctx.gateway.query_pages(order_query(window, statuses=ctx.statuses)):
        # One transaction per page: what a page holds is committed before the watermark moves.
        with ctx.sessions.begin() as session:
            for record in page:
                seen += 1
                planned += _ingest_order(ctx, session, record, now)
    with ctx.sessions.begin() as session:
        store.move_watermark(session, ORDER, window.until, now)
    if planned:
        log.info("polled %d orders, %d new plans", seen, planned)
    return seen, planned


def _ingest_order(ctx: Context, session: Session, record: dict[str, Any], now: datetime) -> int:
    modstamp = parse_datetime(record["SystemModstamp"])
    if not store.remember(session, ORDER, record, modstamp, now):
        return 0  # an echo of our own writeback, or a record seen before
    existing = store.plan_for(session, str(record["Id"]))
    if existing is not None:
        log.info("order %s changed after planning; plan kept", existing.order_number)
        return 0
    try:
        order = Order.from_record(record)
        steps = decompose(order, ctx.ruleset)
    except (ValidationError, KeyError, ValueError) as exc:
        # A record that cannot be read still gets a plan: one fallout step saying why.
        reason = f"malformed order record: {_first_line(exc)}"
        log.warning("order %s: %s", record.get("Id"), reason)
        order = Order(
            id=str(record["Id"]), number=str(record.get("OrderNumber")), fields={}, lines=()
        )
        steps = [fallout_step("malformed", "Fix the order record", reason)]
    store.create_plan(session, order, steps, ctx.ruleset.version, now)
    return 1


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def advance_plans(ctx: Context) -> None:
    """Apply the engine's moves to every open plan, and run what needs no outside call."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        for plan in store.open_plans(session):
            _advance_plan(ctx, session, plan, now)


def _advance_plan(ctx: Context, session: Session, plan: Plan, now: datetime) -> None:
    tasks = {t.step_id: t for t in plan.tasks if t.revision == plan.revision}
    for move in advance([store.view(t) for t in tasks.values()], now):
        task = tasks[move.step_id]
        if move.not_before is not None:
            task.not_before = move.not_before
        store.transition(session, task, move.to, move.reason, now)
    for task in tasks.values():
        if task.state != StepState.READY:
            continue
        if task.kind == StepKind.AUTO:
            _run_auto(ctx, session, task, now)
        elif task.kind == StepKind.MANUAL:
            store.transition(session, task, StepState.IN_PROGRESS, "waiting for an operator", now)
        elif task.kind == StepKind.PAUSE:
            store.transition(session, task, StepState.COMPLETED, "pause over", now)
    store.refresh_rollup(plan, now)


def _run_auto(ctx: Context, session: Session, task: Task, now: datetime) -> None:
    action = ctx.auto_actions.get(task.action or "")
    store.transition(session, task, StepState.IN_PROGRESS, "auto task started", now)
    if action is None and task.action:
        task.message = f"no auto action named {task.action!r}"
        store.transition(session, task, StepState.FATALLY_FAILED, task.message, now)
        return
    try:
        if action is not None:
            action(task.payload)
    except RecordError as exc:
        task.message = str(exc)[:255]
        store.transition(session, task, StepState.FATALLY_FAILED, task.message, now)
        return
    store.transition(session, task, StepState.COMPLETED, "auto task done", now)


def dispatch(ctx: Context) -> int:
    """Send every Ready callout, and resend dispatches a crash interrupted. Returns the count.

    The intent (In Progress, ``dispatch_started_at``) is committed before the call and the
    result after it; the idempotency key makes a resend after a crash harmless.
    """
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        due = session.scalars(
            select(Task)
            .where(Task.kind == StepKind.CALLOUT.value)
            .where(
                (Task.state == StepState.READY.value)
                | (
                    (Task.state == StepState.IN_PROGRESS.value)
                    & Task.dispatch_started_at.is_not(None)
                )
            )
            .order_by(Task.id)
        ).all()
        requests = []
        for task in due:
            if task.state == StepState.READY:
                store.transition(session, task, StepState.IN_PROGRESS, "dispatching", now)
            task.attempts += 1
            task.dispatch_started_at = now
            requests.append((task.id, _request(task, session)))
    for task_id, request in requests:
        system = ctx.systems.get(request.system)
        try:
            if system is None:
                raise RecordError(f"no system named {request.system!r} is configured")
            result = system.submit(request)
        except RetriableError as exc:
            _record(ctx, task_id, None, exc)
        except RecordError as exc:
            failed = SubmitResult(outcome=Outcome.FAILED, message=str(exc)[:255], code="config")
            _record(ctx, task_id, failed, None)
        else:
            _record(ctx, task_id, result, None)
    return len(requests)


def _request(task: Task, session: Session) -> TaskRequest:
    plan = session.get(Plan, task.plan_id)
    assert plan is not None
    return TaskRequest(
        system=task.system or "",
        action=task.action or "",
        idempotency_key=task.idempotency_key,
        step_ref=f"{plan.order_id}/{task.step_id}/r{task.revision}",
        payload=task.payload,
    )


def _record(
    ctx: Context, task_id: int, result: SubmitResult | None, error: RetriableError | None
) -> None:
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.dispatch_started_at = None
        if result is not None and result.outcome is Outcome.COMPLETED:
            task.external_ref = result.external_ref
            task.message = ""
            store.transition(session, task, StepState.COMPLETED, "system answered completed", now)
        elif result is not None and result.outcome is Outcome.ACCEPTED:
            task.external_ref = result.external_ref
            task.message = f"accepted by {task.system}, waiting for completion"
        elif result is not None:
            task.message = result.message[:255]
            store.transition(session, task, StepState.FATALLY_FAILED, task.message, now)
        else:
            _retry_later(ctx, session, task, str(error), now)
        plan = session.get(Plan, task.plan_id)
        assert plan is not None
        store.refresh_rollup(plan, now)


def _retry_later(ctx: Context, session: Session, task: Task, reason: str, now: datetime) -> None:
    step_def = ctx.ruleset.step(task.rule, task.key)
    policy = ctx.ruleset.retry_for(step_def, "retriable") if step_def else ctx.ruleset.retry
    task.message = reason[:255]
    if task.attempts >= policy.max_attempts:
        store.transition(session, task, StepState.FATALLY_FAILED, f"retries used up: {reason}", now)
        return
    task.next_attempt_at = now + retry_delay(policy, task.attempts, ctx.rng)
    store.transition(session, task, StepState.FAILED, reason, now)


def write_back(ctx: Context, batch: int = 2000) -> int:
    """Write each order's fulfillment status where Salesforce shows another. Returns the count."""
    with ctx.sessions() as session:
        plans = store.unwritten_plans(session, batch)
        sent = {p.order_id: p.status for p in plans}
    if not sent:
        return 0
    updates = [{"Id": order_id, "Fulfillment_Status__c": s} for order_id, s in sent.items()]
    results = ctx.gateway.update(ORDER, updates)
    written = 0
    with ctx.sessions.begin() as session:
        for update, result in zip(updates, results, strict=True):
            plan = store.plan_for(session, update["Id"])
            if plan is None:
                continue
            if result.success:
                plan.written_status, plan.writeback_error = sent[update["Id"]], None
                written += 1
            elif not result.transient:
                # Recorded and shown, never retried in a loop: a person must fix the record.
                plan.written_status = sent[update["Id"]]
                plan.writeback_error = f"{result.code}: {result.message}"[:255]
                log.warning("writeback of order %s refused: %s", plan.order_number, result.code)
    return written
