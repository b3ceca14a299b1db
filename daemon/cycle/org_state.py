"""What ``orderflow status`` shows about Salesforce: the API budget, refused writebacks,
and orders flagged for a person. The daemon saves its budget view here after each poll
and writeback; ``status`` (another process) reads it back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.context import Context
from daemon.store.flags import flagged_orders
from daemon.store.models import SfBudget, SfWriteback

BUDGET = "salesforce"
SHOWN = 10


def save_budget(ctx: Context) -> None:
    """Persist the gateway's view of the API budget (calls used, left, pace)."""
    gateway = ctx.gateway
    gateway.pacer.observe(gateway.api_usage)
    data = gateway.pacer.snapshot(gateway.clock())
    data["calls_sent"] = gateway.calls
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        row = session.get(SfBudget, BUDGET)
        if row is None:
            session.add(SfBudget(name=BUDGET, data=data, updated_at=now))
        elif row.data != data:
            row.data, row.updated_at = data, now


def salesforce_status(session: Session) -> dict[str, Any]:
    """The Salesforce part of ``orderflow status`` (a JSON-able dict)."""
    budget = session.get(SfBudget, BUDGET)
    refused = session.scalars(
        select(SfWriteback)
        .where(SfWriteback.error.is_not(None))
        .order_by(SfWriteback.updated_at.desc())
        .limit(SHOWN)
    ).all()
    refused_total = session.scalar(
        select(func.count()).select_from(SfWriteback).where(SfWriteback.error.is_not(None))
    )
    retrying = session.scalar(
        select(func.count()).select_from(SfWriteback).where(SfWriteback.retry_at.is_not(None))
    )
    return {
        "budget": dict(budget.data, updated_at=budget.updated_at.isoformat()) if budget else None,
        "writeback_refused": int(refused_total or 0),
        "writeback_refused_recent": [
            {"sobject": w.sobject, "id": w.sf_id, "code": w.error_code, "error": w.error}
            for w in refused
        ],
        "writeback_retrying": int(retrying or 0),
        "flagged_orders": [
            {"order": f["order"], "flag": f["flag"]}  # the stable keys of this part
            for f in flagged_orders(session, limit=SHOWN)
        ],
    }


def status_lines(summary: dict[str, Any]) -> list[str]:
    """``salesforce_status`` for people."""
    lines = ["salesforce:"]
    budget = summary.get("budget")
    if budget is None:
        lines.append("  API budget: not seen yet (the daemon has not polled)")
    else:
        used, limit = budget.get("api_calls_used"), budget.get("api_calls_limit")
        if used is not None:
            lines.append(
                f"  API calls: {used} used of {limit}, {budget['api_calls_left']} left "
                f"(reserve {budget['reserve_calls']})"
            )
        if budget.get("under_reserve"):
            lines.append(
                "  UNDER THE RESERVE: polling once every "
                f"{budget['poll_interval_seconds']:g} s, no writes"
            )
        if budget.get("blocked_seconds"):
            lines.append(
                "  allowance spent (REQUEST_LIMIT_EXCEEDED): calls held, next probe in "
                f"{budget['blocked_seconds']} s"
            )
        projected = budget.get("projected_calls_per_day")
        lines.append(
            f"  poll interval: {budget['poll_interval_seconds']:g} s; projected calls/day: "
            f"{projected if projected is not None else 'n/a'}"
        )
    lines.append(
        f"  writeback: {summary['writeback_refused']} refused, "
        f"{summary['writeback_retrying']} waiting to retry"
    )
    for item in summary["writeback_refused_recent"]:
        lines.append(f"    {item['sobject']} {item['id']}: {item['error']}")
    return lines  # flagged orders: status prints them once, in its own section
