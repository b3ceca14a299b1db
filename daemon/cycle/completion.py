"""Finishing a task a system accepted earlier: by its status, or by its callback."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from daemon import store
from daemon.store.models import Plan, Task
from downstream.protocol import Outcome, SubmitResult
from orchestration.states import StepState

log = logging.getLogger(__name__)


def finish(session: Session, task: Task, result: SubmitResult, now: datetime, *, actor: str) -> str:
    """Apply a late answer to an accepted task; what happened, in a few words.

    A task that is no longer In Progress (finished, resolved by an operator, discarded)
    is left as it is: a late or repeated answer changes nothing.
    """
    if task.state != StepState.IN_PROGRESS:
        return f"ignored: the step is already {task.state}"
    if result.outcome is Outcome.ACCEPTED:
        return "still running"
    if result.external_ref:
        task.external_ref = result.external_ref
    if result.outcome is Outcome.COMPLETED:
        task.message = ""
        store.transition(
            session, task, StepState.COMPLETED, f"{actor}: completed", now, actor=actor
        )
        outcome = "completed"
    else:
        task.message = (result.message or f"{task.system} failed the task")[:255]
        reason = f"{actor}: {task.message}"
        store.transition(session, task, StepState.FATALLY_FAILED, reason, now, actor=actor)
        outcome = "failed"
    task.dispatch_started_at = None
    plan = session.get(Plan, task.plan_id)
    if plan is not None:
        store.refresh_rollup(plan, now)
    log.info("%s %s by %s", task.step_id, outcome, actor)
    return outcome
