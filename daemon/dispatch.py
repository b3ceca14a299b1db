"""Dispatching callouts: intent committed before the call, result after it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.models import Plan, Task
from downstream.protocol import Outcome, SubmitResult, TaskRequest
from orchestration.errors import RecordError, RetriableError
from orchestration.plan import retry_delay
from orchestration.states import StepKind, StepState

log = logging.getLogger(__name__)


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
