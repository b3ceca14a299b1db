"""Writeback: what Salesforce should show, derived from the store, differences only."""

from __future__ import annotations

import logging

from daemon import store
from daemon.context import Context

log = logging.getLogger(__name__)

ORDER = "Order"


def write_back(ctx: Context, batch: int = 2000) -> int:
    """Write each order's fulfillment status where Salesforce shows another. Returns the count."""
    with ctx.sessions() as session:
        plans = store.unwritten_plans(session, batch)
        sent = {p.order_id: p.status for p in plans}
    if not sent:
        return 0
    updates = [{"Id": order_id, "Fulfillment_Status__c": s} for order_id, s in sent.items()]
    results = ctx.gateway.update(ORDER, updates)
    written = 0
    with ctx.sessions.begin() as session:
        for update, result in zip(updates, results, strict=True):
            plan = store.plan_for(session, update["Id"])
            if plan is None:
                continue
            if result.success:
                plan.written_status, plan.writeback_error = sent[update["Id"]], None
                written += 1
            elif not result.transient:
                # Recorded and shown, never retried in a loop: a person must fix the record.
                plan.written_status = sent[update["Id"]]
                plan.writeback_error = f"{result.code}: {result.message}"[:255]
                log.warning("writeback of order %s refused: %s", plan.order_number, result.code)
    return written
