"""Advancing plans: the engine's moves applied, what needs no outside call run, SLAs assessed.

Called by the cycle for every plan due (:func:`advance_plans`), and by the dispatch
pipeline (daemon.cycle.pipeline) for the plans whose answers it has just recorded, in the same
transaction (:func:`advance_plan`), so the next step is due without waiting for a cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.cycle.fallout import fail
from daemon.cycle.jeopardy import SlaCache, next_threshold, refresh_plan
from daemon.cycle.systems import offline_systems
from daemon.store.models import Plan, Task
from orchestration.auto import AutoCall
from orchestration.errors import RecordError, RetriableError
from orchestration.plan import advance, next_move_at
from orchestration.states import StepKind, StepState

log = logging.getLogger(__name__)

#: Rounds of advance-then-run per plan and pass: auto steps and pauses finish at once, so
#: what follows them can start in the same pass; the bound keeps one pass short.
ROUNDS = 5

#: Plans advanced per transaction: each batch commits (and, shared, unlocks) on its own.
BATCH = 200
#: Batches per pass at most, so one pass cannot starve the rest of the cycle.
MAX_BATCHES = 50


@dataclass
class AdvanceReport:
    plans: int = 0
    #: Plans whose jeopardy (or a step's) changed: writeback carries it to Salesforce.
    jeopardy_changed: int = 0


def advance_plans(ctx: Context) -> AdvanceReport:
    """Apply the engine's moves to every plan due (``wake_at`` passed), run what needs no
    outside call, and assess each against its SLAs.

    Callouts (and scheduled steps that call a system) are left Ready for :func:`dispatch`;
    auto steps run their function here, manual steps start waiting for an operator, pauses
    and plain scheduled steps complete when their time has come. Each plan then sleeps
    until its next retry, planned start or SLA threshold, or until one of its steps changes
    (store.refresh_rollup wakes it): a pass costs what changed, not what is in flight.
    Every instance runs it; on PostgreSQL each takes other plans (store.plans_to_wake).
    """
    now = ctx.clock()
    report = AdvanceReport()
    slas = SlaCache()
    for _ in range(MAX_BATCHES):
        with ctx.sessions.begin() as session:
            offline = offline_systems(ctx, session)  # their Ready callouts wait On Hold
            plans = store.plans_to_wake(session, now, BATCH, shared=ctx.membership.shared)
            for plan in plans:
                report.jeopardy_changed += advance_plan(ctx, session, plan, now, offline, slas)
        report.plans += len(plans)
        if len(plans) < BATCH:
            break
    return report


def advance_plan(
    ctx: Context,
    session: Session,
    plan: Plan,
    now: datetime,
    offline: set[str],
    slas: SlaCache,
) -> bool:
    """Advance one plan (its tasks loaded, locked when shared) and set when it next wakes.
    True when its jeopardy (or a step's) changed: writeback carries it to Salesforce."""
    _advance_plan(ctx, session, plan, now, offline)
    changed = refresh_plan(plan, now, slas)
    if changed:
        store.touch(plan, now)
    plan.wake_at = _next_wake(plan, now, slas)
    return changed


def _next_wake(plan: Plan, now: datetime, slas: SlaCache) -> datetime | None:
    live = [store.view(t) for t in plan.tasks if t.revision == plan.revision]
    times = [t for t in (next_move_at(live, now), next_threshold(plan, now, slas)) if t]
    return min(times, default=None)


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
