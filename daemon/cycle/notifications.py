"""Notifications: the webhook told when an order goes At Risk, Late or Fallout.

One message per change, not one per sweep: the condition last told is kept on the plan
(``plans.notified``) and only a different one is queued; an order back on track forgets it,
so going At Risk again is told again. The webhook itself (a queue, a thread, back-off) is
:mod:`daemon.channels.webhook`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from daemon.context import Context
from daemon.cycle.jeopardy import condition, describe_worst
from daemon.store.models import Plan


def message(plan: Plan, condition: str, now: datetime) -> str:
    """The text told for ``plan`` in ``condition``, with the reason when there is one."""
    if condition == "Fallout":
        failed = next((t for t in plan.tasks if t.state == "Fatally Failed" and t.message), None)
        reason = plan.flag or (f"{failed.title}: {failed.message}" if failed else "")
    else:
        reason = describe_worst(plan.tasks, now) or ""
    text = f"Order {plan.order_number} is {condition}"
    return f"{text}: {reason}" if reason else text


def notify_changes(ctx: Context) -> int:
    """Queue a message for every order whose condition changed since it was last told.
    Returns the messages queued (0 without a webhook)."""
    webhook = ctx.webhook
    if webhook is None:
        return 0
    now = ctx.clock()
    outbox: list[tuple[int, str | None, str]] = []
    with ctx.sessions.begin() as session:
        query = (
            select(Plan)
            .where(Plan.kind == "order")
            .where(
                or_(
                    Plan.notified.is_not(None),
                    Plan.status == "Fallout",
                    Plan.jeopardy.in_(["At Risk", "Late"]),
                )
            )
            .options(selectinload(Plan.tasks))
            .order_by(Plan.id)
        )
        for plan in session.scalars(query):
            now_is = condition(plan)
            if now_is == plan.notified:
                continue
            if now_is is None:
                plan.notified = None  # back on track (or done): a new trouble is news again
                continue
            outbox.append((plan.id, now_is, message(plan, now_is, now)))
    # Queued outside the transaction; sent by the webhook's own thread, never waited for.
    sent = [(plan_id, told) for plan_id, told, text in outbox if webhook.post(text)]
    if sent:
        with ctx.sessions.begin() as session:
            for plan_id, told in sent:
                row = session.get(Plan, plan_id)
                if row is not None:
                    row.notified = told
    return len(sent)
