"""One cycle of the daemon: poll, plan, advance, dispatch, write back.

Each phase commits what it learned before the next begins, so a crash at any line leaves a
state from which the next cycle finishes the work (ARCHITECTURE.md, rule 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.dispatch import dispatch
from daemon.models import Plan, Task
from daemon.poll import poll_orders
from daemon.writeback import write_back
from orchestration.errors import RecordError
from orchestration.plan import advance
from orchestration.states import StepKind, StepState

log = logging.getLogger(__name__)


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
