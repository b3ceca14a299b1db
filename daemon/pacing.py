"""How long the daemon waits between cycles: asked of the Salesforce budget
(:class:`salesforce.budget.Pacer`), told whether work is going on."""

from __future__ import annotations

import logging

from sqlalchemy import exists, select

from daemon.context import Context
from daemon.cycle import CycleReport
from daemon.models import Task
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


def next_wait(ctx: Context, report: CycleReport | None) -> float:
    """Seconds until the next cycle: the base interval while work goes on, else until the
    next Salesforce poll is due (which backs off while polls find nothing)."""
    pacer = ctx.gateway.pacer
    busy = report is None or not report.idle or waiting_downstream(ctx)
    wait = pacer.next_wait(ctx.gateway.clock(), busy=busy)
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
