"""Claiming callouts: a short transaction that leases a batch of due tasks to one instance.

A claim takes the dispatches a crash interrupted, then the Ready callouts, lowest id first,
and writes on each its intent (In Progress, ``dispatch_started_at``) and its lease (this
instance's id, ``lease_expires_at``), then commits: the calls go out after, outside any
transaction, and each result is committed on its own (daemon.cycle.dispatch).

It is four Core statements whatever the batch, no ORM object loaded: two SELECTs of the ids
(the interrupted, then the Ready, each stopped at the batch on ``ix_tasks_system_state``),
one ``UPDATE ... WHERE id IN (...) RETURNING`` of what the calls need (each row updated
once: see :func:`claim`), one INSERT of the audit rows.

On PostgreSQL the rows are read ``FOR UPDATE SKIP LOCKED`` in id order: two instances
claiming at the same moment each get other tasks, none waits for the other, and the rows
are always locked in the same order. A claim locks tasks only, never a plan, so it cannot
join the plans-then-tasks order of the recorders and the advance pass in a circle. An
interrupted dispatch is resent by whoever claims it once its lease has no holder (the
reaper took it back from a dead instance, daemon.cluster.instances), or by its own holder (its
result could not be committed). On SQLite one instance runs
(daemon.store.db.hold_single_instance), so every interrupted dispatch is its own to resend, and
the same statements need no row locks.

A dispatch that keeps being interrupted (an answer that stops the process, a call that
hangs until the watchdog kills it) is not resent for ever: each resend is counted on the
task (``resends``, cleared by an answer), and past ``max_resends`` the claim makes the task
fall out with "no answer after N resends" instead of sending it again. That changes its
plan, so it is done plan first, and only if the plan is not locked by another transaction
(else a later claim does it): a claim never waits.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select, update
from sqlalchemy.orm import Session

from daemon import store
from daemon.cluster import wakeup
from daemon.store.models import Plan, Task, TaskEvent
from downstream.signing import new_correlation_token
from orchestration.states import StepState

log = logging.getLogger(__name__)

IN_PROGRESS, READY = StepState.IN_PROGRESS.value, StepState.READY.value


@dataclass(frozen=True)
class Claim:
    """What a claimed dispatch needs to be sent: its task's columns as the claim left them."""

    id: int
    plan_id: int
    step_id: str
    revision: int
    rule: str
    key: str
    system: str | None
    action: str | None
    payload: dict[str, Any]
    idempotency_key: str
    correlation_token: str
    attempts: int
    resends: int


#: The columns a claim returns (the fields of :class:`Claim`, the token filled in after).
_RETURNED = (
    Task.id,
    Task.plan_id,
    Task.step_id,
    Task.revision,
    Task.rule,
    Task.key,
    Task.system,
    Task.action,
    Task.payload,
    Task.idempotency_key,
    Task.correlation_token,
    Task.attempts,
    Task.resends,
)


def interrupted(owner: str, *, shared: bool) -> ColumnElement[bool]:
    """The condition of a dispatch a crash interrupted that ``owner`` may resend."""
    cut = (Task.state == IN_PROGRESS) & Task.dispatch_started_at.is_not(None)
    if shared:
        cut &= Task.lease_owner.is_(None) | (Task.lease_owner == owner)
    return cut


def due_callouts(owner: str, *, shared: bool) -> ColumnElement[bool]:
    """The condition of a claimable callout for ``owner``."""
    return Task.system.is_not(None) & ((Task.state == READY) | interrupted(owner, shared=shared))


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
) -> list[Claim]:
    """Lease up to ``limit`` due callouts to ``owner``, interrupted ones first, then the
    Ready ones, each lowest id first; intent and lease written.

    The caller commits (one short transaction) before sending anything. An interrupted
    dispatch already resent ``max_resends`` times falls out here and is not returned.
    ``system``: only its callouts (the pipeline's lanes claim per system); ``busy``: the
    caller's own dispatches still out or being recorded, which are not interrupted ones.
    """
    mine = Task.system.is_not(None) if system is None else Task.system == system
    if busy:
        mine &= Task.id.not_in(sorted(busy))
    # Interrupted dispatches first (few: at most what was out), then the Ready ones, each
    # read in id order on ix_tasks_system_state and stopped at the batch: one read of both
    # (an OR) read and sorted every Ready task of every system, for each claim.
    rows = _due(session, mine & interrupted(owner, shared=shared), limit, shared=shared)
    if len(rows) < limit:
        rows += _due(session, mine & (Task.state == READY), limit - len(rows), shared=shared)
    spent = {
        r.id
        for r in rows
        if r.state != READY and max_resends is not None and r.resends >= max_resends
    }
    for row in rows:
        if row.id in spent:
            _give_up(session, row.id, row.plan_id, max_resends or 0, now)
    ids = [r.id for r in rows if r.id not in spent]
    if not ids:
        return []
    ready, due = Task.state == READY, due_callouts(owner, shared=shared)
    # Tokens for those without one, made here and written by the one UPDATE: a second
    # UPDATE of a row this transaction changed re-checks its plan's foreign key on
    # PostgreSQL (FOR KEY SHARE of the plan), a wait on a plan a recorder holds while it
    # waits on these tasks: the deadlock seen. A resend keeps the token it was sent with.
    tokens = {i: new_correlation_token() for i in ids}
    claimed = session.execute(
        update(Task)
        .where(Task.id.in_(ids) & due)  # still due (SQLite's rows are not locked by the read)
        .values(
            state=IN_PROGRESS,
            updated_at=case((ready, now), else_=Task.updated_at),
            started_at=func.coalesce(Task.started_at, now),
            next_attempt_at=None,
            resends=Task.resends + case((ready, 0), else_=1),
            attempts=Task.attempts + 1,
            dispatch_started_at=now,
            lease_owner=owner,
            lease_expires_at=now + lease,
            correlation_token=func.coalesce(Task.correlation_token, case(tokens, value=Task.id)),
        )
        .returning(*_RETURNED)
        .execution_options(synchronize_session=False)
    ).all()
    started = {r.id for r in rows if r.state == READY} & {r.id for r in claimed}
    if started:
        session.execute(
            insert(TaskEvent),
            [
                dict(
                    task_id=i, at=now, from_state=READY, to_state=IN_PROGRESS, reason="dispatching"
                )
                for i in sorted(started)
            ],
        )
        wakeup.moved(session)
    result = []
    for row in sorted(claimed, key=lambda r: r.id):
        if row.id not in started:
            log.info(
                "resending %s, interrupted",
                row.step_id,
                extra={"task_id": row.id, "step_id": row.step_id, "instance": owner},
            )
        result.append(Claim(**row._asdict()))
    return result


def _due(session: Session, where: ColumnElement[bool], limit: int, *, shared: bool) -> list[Any]:
    """Up to ``limit`` rows (id, state, resends, plan_id) of ``where``, lowest id first;
    on PostgreSQL locked, skipping rows another claim holds."""
    query = select(Task.id, Task.state, Task.resends, Task.plan_id).where(where)
    query = query.order_by(Task.id).limit(limit)
    if shared:
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query).all())


def _give_up(session: Session, task_id: int, plan_id: int, resends: int, now: datetime) -> None:
    """The task falls out, its plan locked first (if another holds it: a later claim)."""
    plans = select(Plan).where(Plan.id == plan_id).with_for_update(skip_locked=True)
    plan = session.scalars(plans).first()
    if plan is None:
        return
    task = session.get(Task, task_id)
    if task is None:
        return
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
    store.refresh_rollup(plan, now)
    session.flush()


def release(task: Task) -> None:
    """The dispatch's result is committed with this: the lease ends with the call."""
    task.lease_owner = task.lease_expires_at = None
