"""Orders held at planning are planned again once they can be.

An order that refers to a legacy CPQ id the crosswalk cannot resolve (or whose record
cannot be read, or, under ``unmatched: hold``, that has a line no rule matches) gets a plan
of fallout steps saying why (daemon.cycle.poll), and nothing is sent. Once the cause is gone the
order is planned for real: its held steps are Discarded and the steps the rules make of it
become the plan's next revision (new idempotency keys, nothing was ever sent under the old
ones). That happens

- when the Order or its lines change in Salesforce (daemon.cycle.poll hands the new record here),
- when the crosswalk learns mappings (``orderflow remap import``, discovery fields): each
  cycle the leader compares the crosswalk's newest entry with the one it last saw, and on a
  change tries every held order again from its stored record;
- when the rules are not the ones held orders were last tried with (a new rules file, so
  first thing after a start): the same.

A held step an operator already resolved (completed or skipped) is left alone: a person
decided about that order.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from daemon import store
from daemon.context import Context
from daemon.cycle import adoption, amend
from daemon.store.models import CrosswalkEntry, Plan, SourceRecord
from orchestration.decompose import FALLOUT_RULE, holds, plan_steps
from orchestration.errors import RecordError
from orchestration.records import Order
from orchestration.states import StepState
from remap.lookups import check_lookups
from salesforce.poller import ORDER

log = logging.getLogger(__name__)


def is_held(plan: Plan) -> bool:
    """Planned as fallout only (nothing to send), and no step of it resolved by a person."""
    live = [t for t in plan.tasks if t.revision == plan.revision]
    return (
        plan.kind == "order"
        and plan.snapshot is None
        and plan.superseded_by is None
        and plan.cancelled_at is None
        and bool(live)
        and all(t.rule == FALLOUT_RULE and t.state == StepState.FATALLY_FAILED for t in live)
    )


def plan_again(
    ctx: Context, session: Session, plan: Plan, record: dict[str, Any], now: datetime
) -> bool:
    """Plan a held order from ``record``; True when it now plans (False: still held)."""
    try:
        order = ctx.inbound(session, Order.from_record(record))
        check_lookups(order)  # still another object's id: still held (RecordError)
        history = adoption.historic(ctx, record)
        if amend.change_order(ctx, session, order, now, held=True, history=history):
            # Reconciled against its original's plan, like any change order: delta only.
            _released(ctx, session, plan, record, "as a change order", now)
            return True
        steps = plan_steps(order, ctx.ruleset)
    except (RecordError, ValidationError, KeyError, ValueError):
        return False  # still held, for the reason its steps give
    live = [t for t in plan.tasks if t.revision == plan.revision]
    still = holds(steps)
    if still and {(s.step_id, s.message) for s in steps} == {(t.step_id, t.message) for t in live}:
        return False  # still held, for the same reasons
    for task in live:
        store.transition(session, task, StepState.DISCARDED, "the order can be planned", now)
    store.pin_rules(session, ctx.ruleset, now)
    plan.rules_version, plan.rules_digest = ctx.ruleset.version, ctx.ruleset.digest or None
    plan.revision += 1
    store.add_tasks(session, plan, steps, now)
    plan.wake_at = now
    store.refresh_rollup(plan, now)
    if still:
        return False  # held now for other reasons (its steps say which)
    amend.remember_order(plan, order)
    _released(ctx, session, plan, record, f"with {len(steps)} steps", now)
    return True


def _released(
    ctx: Context, session: Session, plan: Plan, record: dict[str, Any], how: str, now: datetime
) -> None:
    if adoption.historic(ctx, record):  # fulfilled before the cut-over: adopted, not sent
        adoption.adopt(session, plan, now, writeback=ctx.cutover_writeback)
    log.info(
        "order %s was held at planning and is planned now %s (revision %d)",
        plan.order_number,
        how,
        plan.revision,
        extra={"order_id": plan.order_id, "order_number": plan.order_number},
    )


def release_held(ctx: Context) -> int:
    """After the crosswalk or the rules changed, plan every held order that now can be; the
    count."""
    with ctx.sessions() as session:
        newest = session.scalar(select(func.max(CrosswalkEntry.id)))
    if newest == ctx.crosswalk_seen and ctx.ruleset.digest == ctx.rules_seen:
        return 0
    released = 0
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        held = session.scalars(
            select(Plan)
            .where(Plan.kind == "order", Plan.status == "Fallout")
            .options(selectinload(Plan.tasks))
            .order_by(Plan.id)
        )
        for plan in held:
            row = session.get(SourceRecord, (ORDER, plan.order_id))
            if row is not None and is_held(plan) and plan_again(ctx, session, plan, row.data, now):
                released += 1
    ctx.crosswalk_seen, ctx.rules_seen = newest, ctx.ruleset.digest
    return released
