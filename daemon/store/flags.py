"""Flags: what a person must look at on an order, wherever an operator looks.

- **What:** ``Plan.flag`` (an Order deleted in flight...) or ``Plan.line_flags`` (a change
  refused past the point of no return, per line), in one sentence: :func:`flag_text`, the
  same words Salesforce shows on the Order (daemon.cycle.writeback_values).
- **Where shown:** ``orderflow status`` and ``status --json`` (``flagged_orders``),
  ``orderflow task list`` (while unacknowledged), the canvas's Needs attention and its
  Flagged tab.
- **Acknowledged:** ``orderflow flag ack ORDER --reason`` writes an audit row in
  ``task_events`` (on the plan's first step, ``from_state`` ``Flagged``, ``to_state``
  ``Flag Acknowledged``, the reason followed by the flag it covers). An acknowledgement
  covers the flag as it read then: a new or changed flag needs a person again. The flag
  stays on the Order in Salesforce (it is a fact about the order, not a to-do).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, or_, select
from sqlalchemy.orm import Session

from daemon.store.models import Plan, Task, TaskEvent
from orchestration.errors import OperatorError

FLAGGED, ACKNOWLEDGED = "Flagged", "Flag Acknowledged"
_COVERS = "\nflag: "


def flag_text(plan: Plan) -> str:
    """The plan's flags as one sentence ("" when none)."""
    if plan.flag:
        return plan.flag
    return "; ".join(dict.fromkeys(str(v) for v in (plan.line_flags or {}).values()))


def maybe_flagged() -> ColumnElement[bool]:
    """SQL for the plans that may carry a flag (an emptied ``line_flags`` may read JSON
    ``null``: :func:`flag_text` has the last word)."""
    return and_(
        Plan.kind == "order",
        or_(
            Plan.flag.is_not(None),
            and_(Plan.line_flags.is_not(None), cast(Plan.line_flags, String) != "null"),
        ),
    )


def acknowledgement(session: Session, plan: Plan) -> dict[str, Any] | None:
    """Who acknowledged the plan's current flag, when and why; None if nobody has."""
    text = flag_text(plan)
    event = session.scalars(
        select(TaskEvent)
        .join(Task, TaskEvent.task_id == Task.id)
        .where(Task.plan_id == plan.id, TaskEvent.to_state == ACKNOWLEDGED)
        .order_by(TaskEvent.id.desc())
        .limit(1)
    ).first()
    if event is None or not text or not event.reason.endswith(_COVERS + text):
        return None
    return {
        "actor": event.actor,
        "reason": event.reason[: -len(_COVERS + text)],
        "at": event.at.isoformat().replace("+00:00", "Z"),
    }


def flagged_orders(session: Session, limit: int = 500) -> list[dict[str, Any]]:
    """Every flagged order: ``{order, order_id, flag, acknowledged}`` (see above)."""
    plans = session.scalars(select(Plan).where(maybe_flagged()).order_by(Plan.id).limit(limit))
    return [
        {
            "order": plan.order_number,
            "order_id": plan.order_id,
            "flag": flag_text(plan),
            "acknowledged": acknowledgement(session, plan),
        }
        for plan in plans
        if flag_text(plan)
    ]


def acknowledge(session: Session, plan: Plan, reason: str, actor: str, now: datetime) -> str:
    """Record that a person has seen the plan's flag; returns the flag."""
    text = flag_text(plan)
    if not text or plan.kind != "order":
        raise OperatorError(f"order {plan.order_number} has no flag to acknowledge")
    first = session.scalars(
        select(Task).where(Task.plan_id == plan.id).order_by(Task.id).limit(1)
    ).first()
    if first is None:
        raise OperatorError(f"order {plan.order_number} has no step to note it on")
    session.add(
        TaskEvent(
            task_id=first.id,
            at=now,
            from_state=FLAGGED,
            to_state=ACKNOWLEDGED,
            reason=reason + _COVERS + text,
            actor=actor,
        )
    )
    return text
