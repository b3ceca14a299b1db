"""One cycle of the daemon: poll, plan, advance, dispatch, write back.

Each phase commits what it learned before the next begins, so a crash at any line leaves a
state from which the next cycle finishes the work (ARCHITECTURE.md, rule 1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from daemon import store
from daemon.amend import cancel_in_flight
from daemon.auto import AutoCall
from daemon.context import Context
from daemon.dispatch import dispatch
from daemon.events import take_events
from daemon.fallout import fail
from daemon.held import release_held
from daemon.invoices import plan_invoices
from daemon.jeopardy import SlaCache, next_threshold, refresh_plan
from daemon.models import Plan, Task
from daemon.poll import poll_orders
from daemon.status_poll import poll_statuses
from daemon.systems import check_systems, offline_systems
from daemon.writeback import write_back
from orchestration.errors import RecordError, RetriableError
from orchestration.plan import advance, next_move_at
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
    #: Seconds spent in each phase (the cycle's log line shows where a slow cycle went).
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not (self.planned or self.dispatched or self.written)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

    def timings(self) -> str:
        """E.g. "poll 1.20 s, advance 0.31 s, dispatch 2.05 s" (phases over 10 ms)."""
        spent = [f"{name} {s:.2f} s" for name, s in self.seconds.items() if s >= 0.01]
        return ", ".join(spent) or "under 10 ms a phase"


def run_cycle(ctx: Context) -> CycleReport:
    """One cycle. Every instance advances plans and dispatches, each taking other plans and
    tasks; only the leader (daemon.instances: always, on SQLite) polls Salesforce, plans,
    polls statuses and writes back, so those never run twice at once against one org."""
    report = CycleReport()
    phase = report.phase
    if ctx.membership.leading:
        with phase("poll"):
            report.polled, report.planned = poll_orders(ctx)
        with phase("events"):
            _add_events(report, take_events(ctx))  # records change events name (daemon.events)
        with phase("amend"):
            cancel_in_flight(ctx)  # running steps a change made unnecessary (daemon.amend)
            release_held(ctx)  # held orders the crosswalk or new rules now let plan
        with phase("invoices"):
            plan_invoices(ctx)  # posted Invoices become ERP transfer plans
        with phase("systems"):
            check_systems(ctx)  # systems offline or back (daemon.systems)
    with phase("advance"):
        advance_plans(ctx)
    with phase("dispatch"):
        report.dispatched = dispatch(ctx)
    if ctx.membership.leading:  # asked again: it may have stepped down meanwhile
        with phase("status poll"):
            poll_statuses(ctx)  # accepted tasks finished at their system
    with phase("advance"):
        advance_plans(ctx)
    if ctx.membership.leading:
        with phase("writeback"):
            report.written = write_back(ctx)  # Orders, lines, tasks and Invoices, one batch
    return report


def _add_events(report: CycleReport, taken: tuple[int, int]) -> None:
    report.polled += taken[0]
    report.planned += taken[1]


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
                _advance_plan(ctx, session, plan, now, offline)
                if refresh_plan(plan, now, slas):
                    store.touch(plan, now)  # writeback carries the new jeopardy
                    report.jeopardy_changed += 1
                plan.wake_at = _next_wake(plan, now, slas)
        report.plans += len(plans)
        if len(plans) < BATCH:
            break
    return report


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
