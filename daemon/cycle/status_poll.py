"""Status polling: ask each system, on its own cadence, where its accepted tasks stand.

A task a system accepted (In Progress, its dispatch recorded, an external reference kept)
is asked about every ``ORDERFLOW_{NAME}_STATUS_POLL_INTERVAL`` seconds (0: never; the
system calls back instead). Completed and failed answers finish the task; a passing error
leaves it for the next round.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from daemon.context import Context
from daemon.cycle.completion import finish
from daemon.cycle.systems import offline_systems, state_of
from daemon.store.models import Task
from downstream.guard import GuardedSystem
from downstream.protocol import Outcome, SubmitResult
from orchestration.errors import RetriableError
from orchestration.states import StepState

log = logging.getLogger(__name__)


def poll_statuses(ctx: Context) -> int:
    """Ask the systems whose turn it is about their accepted tasks; the number finished."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        offline = offline_systems(ctx, session)
        due: list[str] = []
        for name, system in ctx.systems.items():
            interval = _interval(system)
            if not interval or name in offline:
                continue
            row = state_of(session, name, now)
            last = row.last_status_poll_at
            if last is None or now - last >= timedelta(seconds=interval):
                row.last_status_poll_at = now
                due.append(name)
        if not due:
            return 0
        waiting = session.execute(
            select(Task.id, Task.system, Task.external_ref)
            .where(Task.system.in_(due))
            .where(Task.state == StepState.IN_PROGRESS.value)
            .where(Task.dispatch_started_at.is_(None))
            .where(Task.external_ref.is_not(None))
            .order_by(Task.id)
        ).all()
    finished = 0
    for task_id, system_name, ref in waiting:
        name = str(system_name)
        try:
            result = ctx.systems[name].status(str(ref))
        except RetriableError as exc:
            log.info("status of %s at %s not known yet: %s", ref, name, exc)
            continue
        except Exception:  # no answer stops the others: asked again at the next poll
            log.exception("status of %s at %s: the call failed unexpectedly", ref, name)
            continue
        if result.outcome is Outcome.ACCEPTED:
            continue
        finished += _apply(ctx, task_id, result, name)
    return finished


def _apply(ctx: Context, task_id: int, result: SubmitResult, system: str) -> int:
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None:
            return 0
        outcome = finish(session, task, result, ctx.clock(), actor=f"status:{system}")
    return 1 if outcome in ("completed", "failed") else 0


def _interval(system: object) -> float:
    return system.status_poll_interval if isinstance(system, GuardedSystem) else 0.0
