"""What a failed step does next, as its pinned fallout rules say: retry later or fall out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from daemon import store
from daemon.logs import redact
from daemon.store.models import Task
from orchestration.plan import retry_delay
from orchestration.rules import RETRIABLE, RetryPolicy, RuleSet
from orchestration.states import StepState


def fail(
    session: Session,
    task: Task,
    reason: str,
    now: datetime,
    *,
    code: str,
    retriable: bool,
    rules: RuleSet,
    rng: random.Random,
    retry_after: float | None = None,
) -> None:
    """Move an In Progress task to Failed (with its next attempt time) or Fatally Failed.

    The policy is the one pinned to the task when its plan was made; a task from before
    pinning falls back to the current rules.
    """
    policy = _policy(task, code, retriable, rules)
    reason = redact(reason)  # before trimming: a cut secret could no longer be found
    task.message = reason[:255]
    if policy is None:
        store.transition(session, task, StepState.FATALLY_FAILED, reason, now)
        return
    if task.attempts >= policy.max_attempts:
        why = f"retries used up ({task.attempts} of {policy.max_attempts}): {reason}"
        task.message = why[:255]
        store.transition(session, task, StepState.FATALLY_FAILED, why, now)
        return
    delay = retry_delay(policy, task.attempts, rng)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    task.next_attempt_at = now + delay
    why = f"{reason} (try {task.attempts} of {policy.max_attempts}, next in {delay})"
    store.transition(session, task, StepState.FAILED, why, now)


def _policy(task: Task, code: str, retriable: bool, rules: RuleSet) -> RetryPolicy | None:
    pinned = store.policy(task)
    if pinned is not None:
        return pinned.retry_for(code or RETRIABLE, retriable=retriable)
    step = rules.step(task.rule, task.key)
    if step is not None:
        return rules.policy_for(step).retry_for(code or RETRIABLE, retriable=retriable)
    return rules.retry if retriable else None
