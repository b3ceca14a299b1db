"""Adoption: orders fulfilled before the cut-over become plans, and nothing is sent.

- **Historic by one field.** An order is historic when its ``ORDERFLOW_CUTOVER_FIELD``
  (``ActivatedDate`` by default) is before the cut-over (daemon.store.cutover); a record without
  it is dated by its ``SystemModstamp`` (its last save before the cut-over: history too).
- **Planned like any order.** A historic order is decomposed by the rules and reconciled
  like a live one (a change order of the past is applied to its original's plan), so a
  change after the cut-over is compared with a real plan and sends only its delta
  (daemon.cycle.amend). Then every step of the plan's revision that is not final is recorded
  Completed by actor ``cutover``, reason "fulfilled before cut-over": dispatch takes Ready
  callouts only, so no call is ever made for them.
- **Held stays held.** A historic order held at planning (a legacy id without a mapping)
  keeps its fallout steps; once released (daemon.cycle.held) its plan is adopted then.
- **Invoices too.** A posted Invoice dated (``InvoiceDate``) before the cut-over was
  transferred by the legacy side: its transfer plan is adopted (daemon.cycle.invoices).
- **Not written back.** An adopted revision is left out of writeback (``Plan.
  adopted_revision``): no ``Fulfillment_Task__c`` record, the Order's status as the legacy
  side left it; ``ORDERFLOW_CUTOVER_WRITEBACK=true`` writes them like any plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.store.models import Plan, Task, TaskEvent
from orchestration.decompose import FALLOUT_RULE
from orchestration.records import parse_datetime
from orchestration.states import FINAL_STATES, StepState

ACTOR = "cutover"
REASON = "fulfilled before cut-over"


def historic(ctx: Context, record: dict[str, Any], field: str | None = None) -> bool:
    """Whether the Order ``record`` (or a record dated by ``field``) was fulfilled before
    the cut-over (False: none set)."""
    if ctx.cutover is None:
        return False
    for name in (field or ctx.cutover_field, "SystemModstamp"):
        try:
            return parse_datetime(record[name]) < ctx.cutover
        except (KeyError, TypeError, ValueError):
            continue  # not there or not a date: the next field dates the order
    return False


def adopt(session: Session, plan: Plan, now: datetime, *, writeback: bool = False) -> int:
    """Record the open steps of the plan's revision as done before the cut-over; the count.

    A held plan (fallout steps only, no snapshot: daemon.cycle.held) keeps its fallout steps."""
    plan.adopted_at = now
    plan.adopted_revision = None if writeback else plan.revision
    held = plan.snapshot is None
    open_tasks = [
        t
        for t in plan.tasks
        if t.revision == plan.revision
        and StepState(t.state) not in FINAL_STATES
        and not (held and t.rule == FALLOUT_RULE)
    ]
    for task in open_tasks:
        record_move(session, task, StepState.COMPLETED, REASON, now)
        task.started_at = task.started_at or now
        task.completed_at = now
        task.message = REASON
    store.refresh_rollup(plan, now)
    return len(open_tasks)


def record_move(session: Session, task: Task, to: StepState, reason: str, now: datetime) -> None:
    """Set a step's state by the cut-over, audited (actor ``cutover``). Not a transition of
    the engine's table (a Pending step cannot complete): a record of what the legacy side
    did, or (daemon.ops.golive) did not do."""
    session.add(
        TaskEvent(
            task_id=task.id,
            at=now,
            from_state=task.state,
            to_state=to.value,
            reason=reason,
            actor=ACTOR,
        )
    )
    task.state, task.updated_at = to.value, now
