"""Retention: the history of plans settled long ago, pruned by the hourly housekeeping.

- **What.** ``ORDERFLOW_RETENTION_DAYS`` (90) after a plan settled (Completed, Cancelled or
  Superseded; its last change), its audit rows (``task_events``) and the copies of its
  Salesforce records (``source_records``: the Order or Invoice and the lines its steps
  name) are deleted. Kept: the plan and its steps (what was done, with which idempotency
  keys), the crosswalk and what was last written to Salesforce. A Fallout plan waits for a
  person: never pruned.
- **In batches.** :data:`BATCH` plans a transaction, at most :data:`MAX_BATCHES` a run, so
  a long backlog is worked off hour by hour without holding the store; each plan is marked
  (``plans.pruned_at``) and found by index (``plans (pruned_at, updated_at)``), so a run
  costs what it prunes, not what is kept.
- **Afterwards.** An Order edited in Salesforce after its copy went is taken as changed
  and compared with the plan's own snapshot (daemon.cycle.amend), as before.

Callback receipts have their own, shorter life (a day: :func:`prune_receipts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from daemon.context import Context
from daemon.cycle.jeopardy import SETTLED
from daemon.store.models import CallbackReceipt, Plan, SourceRecord, TaskEvent

log = logging.getLogger(__name__)

BATCH = 500
MAX_BATCHES = 20
#: The Salesforce objects of a plan's record and of its lines, by plan kind.
OBJECTS = {"order": ("Order", "OrderItem"), "invoice": ("Invoice", "InvoiceLine")}


@dataclass
class PruneReport:
    plans: int = 0
    events: int = 0
    records: int = 0


def prune_history(ctx: Context, days: int) -> PruneReport:
    """Prune the plans settled more than ``days`` ago (at ``ctx.clock()``), batch by batch."""
    now = ctx.clock()
    cutoff = now - timedelta(days=days)
    report = PruneReport()
    for _ in range(MAX_BATCHES):
        with ctx.sessions.begin() as session:
            done = _prune_batch(session, cutoff, now, report)
        if done < BATCH:
            break
    if report.plans:
        log.info(
            "pruned the history of %d plans settled over %d days ago: %d events, %d source records",
            report.plans,
            days,
            report.events,
            report.records,
        )
    return report


def _prune_batch(session: Session, cutoff: datetime, now: datetime, report: PruneReport) -> int:
    plans = list(
        session.scalars(
            select(Plan)
            .where(Plan.pruned_at.is_(None), Plan.updated_at < cutoff)
            .where(Plan.status.in_(SETTLED))
            .order_by(Plan.updated_at, Plan.id)
            .limit(BATCH)
            .options(selectinload(Plan.tasks))
        )
    )
    if not plans:
        return 0
    task_ids = [t.id for p in plans for t in p.tasks]
    records = [key for p in plans for key in _records_of(p)]
    events = session.execute(delete(TaskEvent).where(TaskEvent.task_id.in_(task_ids)))
    copies = session.execute(
        delete(SourceRecord).where(tuple_(SourceRecord.sobject, SourceRecord.sf_id).in_(records))
    )
    session.execute(update(Plan).where(Plan.id.in_([p.id for p in plans])).values(pruned_at=now))
    report.plans += len(plans)
    report.events += _count(events)
    report.records += _count(copies)
    return len(plans)


def _records_of(plan: Plan) -> list[tuple[str, str]]:
    """(sobject, id) of the plan's record and of every line one of its steps names."""
    head, line = OBJECTS.get(plan.kind, OBJECTS["order"])
    lines = {t.line_id for t in plan.tasks if t.line_id}
    for task in plan.tasks:
        for item in (task.payload or {}).get("lines") or []:
            if isinstance(item, dict) and item.get("line_id"):
                lines.add(str(item["line_id"]))
    return [(head, plan.order_id), *((line, sf_id) for sf_id in sorted(lines))]


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


#: How long a receipt is kept: far past the replay window (a callback older than
#: ``TOLERANCE`` is refused as stale whatever the receipts say), long enough to look at.
RECEIPTS_KEPT = timedelta(days=1)


def prune_receipts(ctx: Context) -> int:
    """Delete the receipts older than :data:`RECEIPTS_KEPT`; the number deleted."""
    with ctx.sessions.begin() as session:
        done = session.execute(
            delete(CallbackReceipt).where(CallbackReceipt.received_at < ctx.clock() - RECEIPTS_KEPT)
        )
    return int(getattr(done, "rowcount", 0) or 0)
