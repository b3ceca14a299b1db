"""The switch from a shadow run to live: each order fulfilled once, by one side.

``orderflow cutover --go-live`` (or a start with ``ORDERFLOW_MODE=live`` while a shadow
run's would-sends wait) looks at every plan the shadow run advanced:

- **Fulfilled by the legacy side:** the legacy source of one of the systems it would have
  called names the order (a ``--legacy`` export row or a listed document), or one of those
  systems has no legacy source to ask (then nothing proves it was not fulfilled, and
  sending it could fulfil it twice). The plan is adopted (daemon.cycle.adoption): nothing sent.
- **Not fulfilled:** every system it would have called has a legacy source and none names
  it. Its steps, done only in shadow, are set back to Pending (audited, actor
  ``cutover``) and the live daemon sends them, each under the idempotency key the shadow
  run recorded: no call ever went out under it, so each is sent exactly once.

The cut-over moves to the switch (a new audited ``cutovers`` row) and every would-send is
marked switched, so a second switch finds nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.cycle import adoption
from daemon.ops.resync import Progress, ResyncReport, ResyncSpec, resync
from daemon.ops.shadow_report import Call, from_documents, read_export, to_standard
from daemon.store import cutover
from daemon.store.models import Cutover, Plan, ShadowSend
from orchestration.errors import ConfigError
from orchestration.states import PlanState, StepState
from remap.ids import is_id, to18
from salesforce.poller import EPOCH, ORDER

log = logging.getLogger(__name__)

#: Steps a change already settled for good: left as they are.
_KEPT = {StepState.AMENDED, StepState.DISCARDED, StepState.CANCELED, StepState.SKIPPED}
TO_SEND = "go-live: not fulfilled by the legacy side, sent by Orderflow"


@dataclass
class Switch:
    adopted: int = 0
    to_send: int = 0


def pending(session: Session) -> bool:
    """Whether a shadow run left would-sends the switch to live has not taken in."""
    waiting = select(ShadowSend.id).where(ShadowSend.switched_at.is_(None)).limit(1)
    return session.scalar(waiting) is not None


def switch(ctx: Context, legacy: list[Call], sourced: set[str], *, actor: str) -> Switch:
    """Adopt what the legacy side fulfilled, set the rest to be sent (see the module)."""
    if ctx.mode == "shadow":
        raise ConfigError("--go-live: ORDERFLOW_MODE is shadow; set it to live first")
    now = ctx.clock()
    done = Switch()
    with ctx.sessions.begin() as session:
        if cutover.current(session) is None:
            raise ConfigError(f"--go-live needs a cut-over: {cutover.NO_CUTOVER}")
        if not pending(session):
            raise ConfigError("--go-live: no shadow run to switch from (ORDERFLOW_MODE=shadow)")
        named = {(_id(c.order_id), c.system) for c in to_standard(session, legacy)}
        systems: dict[str, set[str]] = {}
        for order_id, system in session.execute(
            select(ShadowSend.order_id, ShadowSend.system).where(ShadowSend.switched_at.is_(None))
        ):
            systems.setdefault(order_id, set()).add(system)
        for order_id, called in sorted(systems.items()):
            plan = store.plan_for(session, order_id)
            if plan is None or plan.adopted_at is not None:
                continue
            fulfilled = any((_id(order_id), s) in named or s not in sourced for s in called)
            if fulfilled:
                adoption.adopt(session, plan, now, writeback=ctx.cutover_writeback)
                done.adopted += 1
            else:
                _send_for_real(session, plan, now)
                done.to_send += 1
        session.execute(
            update(ShadowSend).where(ShadowSend.switched_at.is_(None)).values(switched_at=now)
        )
        reason = f"{cutover.GO_LIVE} from the shadow run: {done.adopted} adopted, "
        reason += f"{done.to_send} to send"
        session.add(Cutover(at=now, set_at=now, actor=actor, reason=reason, adopted_at=now))
    ctx.cutover = now
    log.info("%s (by %s)", reason, actor)
    return done


def switch_at_start(ctx: Context) -> Switch | None:
    """A live start after a shadow run switches first, with the documents systems list
    (systems without any legacy source: their orders adopted, never sent twice)."""
    with ctx.sessions() as session:
        if ctx.mode == "shadow" or not pending(session):
            return None
    legacy, sourced = evidence(ctx, {})
    return switch(ctx, legacy, sourced, actor="ORDERFLOW_MODE=live")


def evidence(ctx: Context, exports: dict[str, Path]) -> tuple[list[Call], set[str]]:
    """What the legacy side did, and the systems it is known for: each ``--legacy``
    export, else the documents a system lists over the shadow run's days."""
    legacy = [call for system, path in exports.items() for call in read_export(system, path)]
    sourced = set(exports)
    with ctx.sessions() as session:
        first = session.scalar(
            select(func.min(ShadowSend.recorded_at)).where(ShadowSend.switched_at.is_(None))
        )
    since, until = (first or ctx.clock()).date(), ctx.clock().date()
    for name, system in ctx.systems.items():
        if name not in sourced and getattr(system, "lists_documents", False):
            legacy += from_documents(name, system.documents(since, until))  # type: ignore[attr-defined]
            sourced.add(name)
    return legacy, sourced


def _send_for_real(session: Session, plan: Plan, now: datetime) -> None:
    for task in plan.tasks:
        if task.revision != plan.revision or StepState(task.state) in _KEPT:
            continue
        adoption.record_move(session, task, StepState.PENDING, TO_SEND, now)
        task.started_at = task.completed_at = task.next_attempt_at = None
        task.attempts, task.message, task.external_ref = 0, "", None
    plan.state = PlanState.NOT_STARTED
    plan.wake_at = now
    store.refresh_rollup(plan, now)


def _id(value: str) -> str:
    return to18(value) if is_id(value) else value


def adopt_history(ctx: Context, progress: Progress | None = None) -> ResyncReport | None:
    """Read and adopt the orders before the cut-over unless done already (None then)."""
    with ctx.sessions() as session:
        row = cutover.current(session)
        if row is None or row.adopted_at is not None:
            return None
        row_id, at = row.id, row.at
    spec = ResyncSpec(
        since=EPOCH.date(), until=at.date(), field=ctx.cutover_field, objects=(ORDER,)
    )
    log.info(
        "adopting the orders before the cut-over %s (by %s)", cutover.iso(at), ctx.cutover_field
    )
    report = resync(ctx, spec, progress)
    with ctx.sessions.begin() as session:
        done = session.get(Cutover, row_id)
        if done is not None:
            done.adopted_at = ctx.clock()
    tally = report.total()
    log.info(
        "adoption done: %d orders read, %d new plans, %d unchanged",
        tally.read,
        tally.planned,
        tally.unchanged,
    )
    return report
