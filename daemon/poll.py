"""Polling Salesforce: new and changed Orders become plans; echoes change nothing."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from orchestration.decompose import decompose, fallout_step
from orchestration.records import Order, parse_datetime
from salesforce.poller import next_window, order_query

log = logging.getLogger(__name__)

ORDER = "Order"


def poll_orders(ctx: Context) -> tuple[int, int]:
    """Read the Orders changed since the watermark; plan new ones. Returns (seen, planned)."""
    now = ctx.clock()
    with ctx.sessions() as session:
        mark = store.watermark(session, ORDER)
    window = next_window(mark, now, overlap=ctx.overlap, settle=ctx.settle)
    seen = planned = 0
    for page in ctx.gateway.query_pages(order_query(window, statuses=ctx.statuses)):
        # One transaction per page: what a page holds is committed before the watermark moves.
        with ctx.sessions.begin() as session:
            for record in page:
                seen += 1
                planned += _ingest_order(ctx, session, record, now)
    with ctx.sessions.begin() as session:
        store.move_watermark(session, ORDER, window.until, now)
    if planned:
        log.info("polled %d orders, %d new plans", seen, planned)
    return seen, planned


def _ingest_order(ctx: Context, session: Session, record: dict[str, Any], now: datetime) -> int:
    modstamp = parse_datetime(record["SystemModstamp"])
    if not store.remember(session, ORDER, record, modstamp, now):
        return 0  # an echo of our own writeback, or a record seen before
    existing = store.plan_for(session, str(record["Id"]))
    if existing is not None:
        log.info("order %s changed after planning; plan kept", existing.order_number)
        return 0
    try:
        order = Order.from_record(record)
        steps = decompose(order, ctx.ruleset)
    except (ValidationError, KeyError, ValueError) as exc:
        # A record that cannot be read still gets a plan: one fallout step saying why.
        reason = f"malformed order record: {_first_line(exc)}"
        log.warning("order %s: %s", record.get("Id"), reason)
        order = Order(
            id=str(record["Id"]), number=str(record.get("OrderNumber")), fields={}, lines=()
        )
        steps = [fallout_step("malformed", "Fix the order record", reason)]
    store.create_plan(session, order, steps, ctx.ruleset.version, now)
    return 1


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
