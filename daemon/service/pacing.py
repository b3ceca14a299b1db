"""How long the daemon waits between cycles: asked of the Salesforce budget
(:class:`salesforce.budget.Pacer`), told whether work is going on."""

from __future__ import annotations

import logging

from sqlalchemy import exists, func, select

from daemon.context import Context
from daemon.cycle.run import CycleReport
from daemon.store.models import Plan, Task
from orchestration.states import StepKind, StepState

log = logging.getLogger(__name__)


def waiting_downstream(ctx: Context) -> bool:
    """Whether callouts are out or due for a retry: their answers cost no Salesforce call."""
    busy = (
        select(Task.id)
        .where(Task.kind == StepKind.CALLOUT.value)
        .where(Task.state.in_([StepState.IN_PROGRESS.value, StepState.FAILED.value]))
    )
    with ctx.sessions() as session:
        return bool(session.scalar(select(exists(busy))))


def _until_wake(ctx: Context) -> float:
    """Seconds until the next plan is due to wake (daemon.cycle.advance.advance_plans)."""
    with ctx.sessions() as session:
        due = session.scalar(select(func.min(Plan.wake_at)))
    return float("inf") if due is None else (due - ctx.clock()).total_seconds()


def next_wait(ctx: Context, report: CycleReport | None) -> float:
    """Seconds until the next cycle: the base interval while work goes on, else until the
    next Salesforce poll is due (which backs off while polls find nothing)."""
    pacer = ctx.gateway.pacer
    busy = report is None or not report.idle or waiting_downstream(ctx)
    wait = pacer.next_wait(ctx.gateway.clock(), busy=busy)
    if ctx.events is not None:
        # Polls are far apart while change events flow (daemon.cycle.events), but plans still
        # wake on their own (pauses, scheduled steps, retries, SLA thresholds).
        wait = min(wait, pacer.policy.max_idle, max(pacer.policy.interval, _until_wake(ctx)))
    if pacer.blocked_until is not None:
        log.warning(
            "Salesforce calls held: the org's API allowance is spent; next probe in %.0f s",
            max(0.0, pacer.blocked_until - ctx.gateway.clock()),
        )
    elif pacer.under_reserve:
        log.warning(
            "Salesforce API budget under the reserve: polling every %g s",
            pacer.policy.reserve_interval,
        )
    return wait
