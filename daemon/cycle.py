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
from daemon.amend import cancel_in_flight
from daemon.auto import AutoCall
from daemon.context import Context
from daemon.dispatch import dispatch
from daemon.fallout import fail
from daemon.invoices import plan_invoices, write_back_invoices
from daemon.models import Plan, Task
from daemon.poll import poll_orders
from daemon.status_poll import poll_statuses
from daemon.systems import check_systems, offline_systems
from daemon.writeback import write_back
from orchestration.errors import RecordError, RetriableError
from orchestration.plan import advance
from orchestration.states import StepKind, StepState

log = logging.getLogger(__name__)

#: Rounds of advance-then-run per plan and cycle: auto steps and pauses finish at once, so
#: what follows them can start in the same cycle; the bound keeps one cycle short.
ROUNDS = 5


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
    """One cycle. Every instance dispatches; only the leader (daemon.instances: always, on
    SQLite) polls Salesforce, plans, advances plans, polls statuses and writes back, so
    those phases never run twice at once against the same rows or the same org."""
    report = CycleReport()
    if ctx.membership.leading:
        report.polled, report.planned = poll_orders(ctx)
        cancel_in_flight(ctx)  # running steps a change made unnecessary (daemon.amend)
        plan_invoices(ctx)  # posted Invoices become ERP transfer plans
        check_systems(ctx)  # systems offline or back (daemon.systems)
        advance_plans(ctx)
    report.dispatched = dispatch(ctx)
    if ctx.membership.leading:  # asked again: it may have stepped down meanwhile
        poll_statuses(ctx)  # accepted tasks finished at their system
        advance_plans(ctx)
        report.written = write_back(ctx)
        write_back_invoices(ctx)  # ERP document numbers onto the Invoices
    return report


def advance_plans(ctx: Context) -> None:
    """Apply the engine's moves to every open plan, and run what needs no outside call.

    Callouts (and scheduled steps that call a system) are left Ready for :func:`dispatch`;
    auto steps run their function here, manual steps start waiting for an operator, pauses
    and plain scheduled steps complete when their time has come.
    """
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        offline = offline_systems(ctx, session)  # their Ready callouts wait On Hold
        for plan in store.open_plans(session):
            _advance_plan(ctx, session, plan, now, offline)


def _advance_plan(
    ctx: Context, session: Session, plan: Plan, now: datetime, offline: set[str]
) -> None:
    tasks = {t.step_id: t for t in plan.tasks if t.revision == plan.revision}
    for _ in range(ROUNDS):
        moved = False
        for move in advance([store.view(t) for t in tasks.values()], now, offline):
            task = tasks[move.step_id]
            if move.not_before is not None:
                task.not_before = move.not_before
            store.transition(session, task, move.to, move.reason, now)
            moved = True
        ran = [_start(ctx, session, plan, t, now) for t in tasks.values() if _runs_here(t)]
        if not (moved or any(ran)):
            break
    store.refresh_rollup(plan, now)


def _runs_here(task: Task) -> bool:
    return task.state == StepState.READY and task.system is None


def _start(ctx: Context, session: Session, plan: Plan, task: Task, now: datetime) -> bool:
    """Run a Ready step that calls no system. True when it finished (so others may follow)."""
    kind = StepKind(task.kind)
    if kind is StepKind.MANUAL:
        store.transition(session, task, StepState.IN_PROGRESS, "waiting for an operator", now)
        task.message = "waiting for an operator"
        return False
    if kind is StepKind.AUTO or (kind is StepKind.SCHEDULED and task.action):
        return _run_auto(ctx, session, plan, task, now)
    reason = "pause over" if kind is StepKind.PAUSE else "scheduled time reached"
    store.transition(session, task, StepState.IN_PROGRESS, reason, now)
    store.transition(session, task, StepState.COMPLETED, reason, now)
    return True


def _run_auto(ctx: Context, session: Session, plan: Plan, task: Task, now: datetime) -> bool:
    name = task.action or ""
    function = ctx.auto_actions.get(name)
    store.transition(session, task, StepState.IN_PROGRESS, f"auto function {name} started", now)
    task.attempts += 1
    if function is None:
        reason = f"no auto function named {name!r} is registered"
        _fail(ctx, session, task, reason, now, "config", retriable=False)
        return False
    call = AutoCall(order_id=plan.order_id, step_id=task.step_id, payload=task.payload, now=now)
    try:
        message = function(call)
    except RetriableError as exc:
        _fail(ctx, session, task, str(exc), now, "*", retriable=True)
        return False
    except RecordError as exc:
        _fail(ctx, session, task, str(exc), now, "record", retriable=False)
        return False
    except Exception as exc:
        # A bug in a registered function: that step falls out, the daemon goes on.
        log.exception(
            "auto function %s failed on %s",
            name,
            task.step_id,
            extra={"order_id": plan.order_id, "step_id": task.step_id, "task_id": task.id},
        )
        reason = f"auto function {name} failed: {type(exc).__name__}: {exc}"
        _fail(ctx, session, task, reason, now, "error", retriable=False)
        return False
    task.message = (message or "")[:255]
    store.transition(session, task, StepState.COMPLETED, f"auto function {name} done", now)
    return True


def _fail(
    ctx: Context,
    session: Session,
    task: Task,
    reason: str,
    now: datetime,
    code: str,
    *,
    retriable: bool,
) -> None:
    fail(session, task, reason, now, code=code, retriable=retriable, rules=ctx.ruleset, rng=ctx.rng)
