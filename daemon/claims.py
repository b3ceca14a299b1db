"""Claiming callouts: a short transaction that leases a batch of due tasks to one instance.

A claim takes the Ready callouts, and the dispatches a crash interrupted, lowest id first,
and writes on each its intent (In Progress, ``dispatch_started_at``) and its lease (this
instance's id, ``lease_expires_at``), then commits: the calls go out after, outside any
transaction, and each result is committed on its own (daemon.dispatch).

On PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED``: two instances claiming at the
same moment each get other tasks, and none waits for the other. An interrupted dispatch is
resent by whoever claims it once its lease has no holder (the reaper took it back from a
dead instance, daemon.instances), or by its own holder (its result could not be
committed). On SQLite one instance runs (daemon.db.hold_single_instance), so every
interrupted dispatch is its own to resend, and the same statement needs no row locks.

A dispatch that keeps being interrupted (an answer that stops the process, a call that
hangs until the watchdog kills it) is not resent for ever: each resend is counted on the
task (``resends``, cleared by an answer), and past ``max_resends`` the claim makes the task
fall out with "no answer after N resends" instead of sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from daemon import store
from daemon.models import Task
from orchestration.states import StepState

log = logging.getLogger(__name__)


def due_callouts(owner: str, *, shared: bool) -> ColumnElement[bool]:
    """The condition of a claimable callout for ``owner``."""
    interrupted = (Task.state == StepState.IN_PROGRESS.value) & Task.dispatch_started_at.is_not(
        None
    )
    if shared:
        interrupted &= Task.lease_owner.is_(None) | (Task.lease_owner == owner)
    return Task.system.is_not(None) & ((Task.state == StepState.READY.value) | interrupted)


def claim(
    session: Session,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    *,
    shared: bool,
    max_resends: int | None = None,
    system: str | None = None,
    busy: Collection[int] = (),
) -> list[Task]:
    """Lease up to ``limit`` due callouts to ``owner``; the tasks, intent and lease written.

    The caller commits (one short transaction) before sending anything. An interrupted
    dispatch already resent ``max_resends`` times falls out here and is not returned.
    ``system``: only its callouts (the pipeline's workers claim per system); ``busy``: the
    caller's own dispatches still out or being recorded, which are not interrupted ones.
    """
    due = due_callouts(owner, shared=shared)
    if system is not None:
        due &= Task.system == system
    if busy:
        due &= Task.id.not_in(list(busy))
    query = select(Task).where(due).order_by(Task.id).limit(limit)
    if shared:
        query = query.with_for_update(skip_locked=True)
    tasks: list[Task] = []
    for task in session.scalars(query).all():
        if task.state == StepState.READY:
            store.transition(session, task, StepState.IN_PROGRESS, "dispatching", now)
        elif max_resends is not None and task.resends >= max_resends:
            _give_up(session, task, max_resends, now)
            continue
        else:
            task.resends += 1
            log.info(
                "resending %s interrupted at %s",
                task.step_id,
                task.dispatch_started_at,
                extra={"task_id": task.id, "step_id": task.step_id, "instance": owner},
            )
        task.attempts += 1
        task.dispatch_started_at = now
        task.lease_owner, task.lease_expires_at = owner, now + lease
        tasks.append(task)
    return tasks


def _give_up(session: Session, task: Task, resends: int, now: datetime) -> None:
    reason = f"no answer after {resends} resends"
    log.warning(
        "%s: %s, falling out",
        task.step_id,
        reason,
        extra={"task_id": task.id, "step_id": task.step_id},
    )
    task.dispatch_started_at = None
    release(task)
    task.message = reason
    store.transition(session, task, StepState.FATALLY_FAILED, reason, now)
    store.refresh_rollup(task.plan, now)


def release(task: Task) -> None:
    """The dispatch's result is committed with this: the lease ends with the call."""
    task.lease_owner = task.lease_expires_at = None
