"""Polling Salesforce: new and changed Orders become plans; echoes change nothing.

One poll reads four objects (Order, OrderItem, Invoice, InvoiceLine), each from its own
watermark, their first pages in one Composite call; every half overlap a deep poll reaches
back for late commits (:func:`deep_due`). Every page is committed before any
watermark moves, and a watermark never passes the query's start (``salesforce.poller``).

- An OrderItem can change without its Order's SystemModstamp moving: such orders are read
  again with all their lines, by chunked ``Id IN (...)`` queries packed into Composite
  calls, in the same transaction that records the lines (a crash re-reads them).
- Deleted rows come back from ``queryAll``: a deleted Order whose plan never started is
  cancelled (its steps Discarded); one in flight is flagged for a person.
- Invoices and their lines are stored as source records for the ERP flow.
- An order whose lines cannot all be read (a child page failed: salesforce.children) is
  not taken: it waits, logged, is not remembered as seen, and the watermark that brought
  it stops before it, so the next poll reads it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.cycle import adoption, amend, held
from daemon.cycle.org_state import save_budget
from daemon.store.models import Plan, SourceRecord
from orchestration.decompose import fallout_step, holds, plan_steps
from orchestration.errors import BudgetExhausted
from orchestration.records import Order, parse_datetime
from orchestration.states import FINAL_STATES, PlanState, StepState
from remap.inbound import Unresolved
from remap.lookups import WrongObject, check_lookups
from salesforce.children import complete_children
from salesforce.poller import (
    INVOICE,
    INVOICE_LINE,
    ORDER,
    ORDER_ITEM,
    PollFields,
    Window,
    next_window,
)

log = logging.getLogger(__name__)

#: How far back a poll between deep ones reaches: this host's clock (which ends the
#: windows) may run that far ahead of Salesforce's (which stamps the rows) without a row
#: waiting for the next deep poll.
SKEW = timedelta(minutes=1)

DELETED_IN_FLIGHT = "Order deleted in Salesforce while in flight: finish or cancel it by hand"


@dataclass
class PollReport:
    seen: int = 0
    changed: int = 0
    planned: int = 0
    reread: int = 0
    cancelled: int = 0
    flagged: int = 0
    amended: int = 0
    waiting: int = 0


def poll_orders(ctx: Context) -> tuple[int, int]:
    """Poll Salesforce when the budget says a poll is due. Returns (seen, planned)."""
    gateway = ctx.gateway
    if not gateway.pacer.poll_due(gateway.clock()):
        return 0, 0
    try:
        report = paced_poll(ctx)
    except BudgetExhausted as exc:
        # Downstream work goes on; the poll waits for the budget (see salesforce.budget).
        log.warning("Salesforce poll skipped: %s", exc)
        gateway.pacer.polled(gateway.clock(), found=False, calls=0)
        save_budget(ctx)
        return 0, 0
    if report.changed:
        log.info(
            "polled %d records, %d changed, %d new plans, %d orders re-read for their lines",
            report.seen,
            report.changed,
            report.planned,
            report.reread,
        )
    return report.seen, report.planned


def paced_poll(ctx: Context, since: datetime | None = None) -> PollReport:
    """:func:`poll`, then the cadence told what it found and cost, and the budget saved."""
    gateway = ctx.gateway
    calls = gateway.calls
    report = poll(ctx, since=since)
    gateway.pacer.polled(gateway.clock(), found=report.changed > 0, calls=gateway.calls - calls)
    save_budget(ctx)
    return report


def poll(ctx: Context, since: datetime | None = None) -> PollReport:
    """One poll of every object, whatever the cadence; deep when one is due (see
    :func:`deep_due`); reaching back to ``since`` at least (a change event stream's gap,
    daemon.cycle.events)."""
    now = ctx.clock()
    deep = deep_due(ctx, now)
    reach = ctx.overlap * 1.5 if deep else min(ctx.overlap, SKEW)
    fields = polled_fields(ctx)
    with ctx.sessions() as session:
        marks = {obj: store.watermark(session, obj) for obj in fields.objects}
    windows = {
        obj: next_window(marks[obj], now, overlap=reach, settle=ctx.settle)
        for obj in fields.objects
    }
    if since is not None:
        windows = {
            obj: replace(w, after=min(w.after, since.replace(microsecond=0)))
            for obj, w in windows.items()
        }
    queries = [(fields.window_query(obj, windows[obj]), True) for obj in fields.objects]
    answers = dict(zip(fields.objects, ctx.gateway.query_many(queries), strict=True))
    report = PollReport()
    seen_orders: set[str] = set()
    holds: dict[str, datetime] = {}
    for page in answers[ORDER]:
        waiting = lines_read(ctx, page, report)
        # One transaction per page: what a page holds is committed before a watermark moves.
        with ctx.sessions.begin() as session:
            for record in page:
                seen_orders.add(str(record["Id"]))
                if str(record["Id"]) in waiting:
                    _hold(holds, ORDER, record)
                    continue
                _ingest_order(ctx, session, record, now, report)
    for page in answers[ORDER_ITEM]:
        _ingest_lines(ctx, fields, page, seen_orders, now, report, holds)
    for obj in (INVOICE, INVOICE_LINE):
        for page in answers.get(obj, ()):
            with ctx.sessions.begin() as session:
                for record in page:
                    report.seen += 1
                    report.changed += _remember(session, obj, record, now)
    _move_watermarks(ctx, windows, now, holds)
    if deep:
        ctx.deep_polled_at = now
    return report


def poll_ids(ctx: Context, order_ids: set[str], invoice_ids: set[str]) -> PollReport:
    """Read these Orders (with their lines, deleted ones too) and Invoices (with theirs) by
    id and take them in as a poll does: the records change events name (daemon.cycle.events).
    No watermark moves: an order that waits for its lines is read by the next poll."""
    now = ctx.clock()
    fields = polled_fields(ctx)
    report = PollReport()
    queries = [(q, True) for q in fields.orders_by_id(order_ids, deleted=True)]
    if fields.invoices:
        queries += [(q, True) for q in fields.invoices_by_id(invoice_ids)]
    for answer in ctx.gateway.query_many(queries) if queries else ():
        for page in answer:
            invoices = [r for r in page if "InvoiceLines" in r]
            orders = [r for r in page if "InvoiceLines" not in r]
            waiting = lines_read(ctx, orders, report)
            waiting |= set(complete_children(ctx.gateway, invoices, "InvoiceLines"))
            with ctx.sessions.begin() as session:
                for record in page:
                    if str(record["Id"]) in waiting:
                        continue
                    if "InvoiceLines" in record:
                        _remember_invoice(session, record, now, report)
                    else:
                        _ingest_order(ctx, session, record, now, report)
    return report


def _remember_invoice(
    session: Session, record: dict[str, Any], now: datetime, report: PollReport
) -> None:
    """An Invoice and its lines stored as the window poll stores them (daemon.cycle.invoices
    plans it from there)."""
    invoice = dict(record)
    children = invoice.pop("InvoiceLines", None)
    report.seen += 1
    report.changed += _remember(session, INVOICE, invoice, now)
    for line in children.get("records", []) if isinstance(children, dict) else []:
        report.changed += _remember(session, INVOICE_LINE, line, now)


def deep_due(ctx: Context, now: datetime) -> bool:
    """Whether this poll reaches back for late commits.

    A poll reads from a minute (:data:`SKEW`) before its object's watermark on; a row
    whose transaction commits after the watermark passed its SystemModstamp is read by the
    next deep poll, which reaches back one and a half overlaps (``ORDERFLOW_SF_POLL_OVERLAP``)
    and runs every half overlap (and first thing after a start or a change of leader): a
    row that commits up to one overlap late is read. Reaching back the whole overlap on
    every poll instead re-read everything changed in the last ten minutes, every cycle:
    with thousands of orders just activated, most of the cycle.
    """
    last = ctx.deep_polled_at
    return last is None or now - last >= ctx.overlap / 2 or now < last


def polled_fields(ctx: Context) -> PollFields:
    """The fields polled and the Order statuses read (a resync reads the same)."""
    # Cancelled orders too: a planned order cancelled in Salesforce is undone (daemon.cycle.amend).
    return replace(ctx.poll_fields, statuses=(*ctx.statuses, *ctx.cancelled_statuses))


def lines_read(ctx: Context, page: list[dict[str, Any]], report: PollReport) -> set[str]:
    """Complete the lines of a page of Orders (salesforce.children); the ids of the orders
    that wait because their lines could not all be read, each logged with the reason."""
    failed = complete_children(ctx.gateway, page, "OrderItems")
    for order_id, reason in failed.items():
        report.waiting += 1
        log.warning(
            "order %s waits: %s; it is read again next poll",
            order_id,
            reason,
            extra={"order_id": order_id},
        )
    return set(failed)


def _hold(holds: dict[str, datetime], sobject: str, record: dict[str, Any]) -> None:
    """Keep ``sobject``'s watermark before ``record``, so the next poll reads it again."""
    before = parse_datetime(record["SystemModstamp"]).replace(microsecond=0) - timedelta(seconds=1)
    holds[sobject] = min(holds.get(sobject, before), before)


def _move_watermarks(
    ctx: Context, windows: dict[str, Window], now: datetime, holds: dict[str, datetime]
) -> None:
    with ctx.sessions.begin() as session:
        for obj, window in windows.items():
            if obj in holds:
                store.hold_watermark(session, obj, min(window.until, holds[obj]), now)
            else:
                store.move_watermark(session, obj, window.until, now)


def _remember(session: Session, sobject: str, record: dict[str, Any], now: datetime) -> int:
    modstamp = parse_datetime(record["SystemModstamp"])
    return int(store.remember(session, sobject, record, modstamp, now))


def _line_changed(session: Session, record: dict[str, Any]) -> bool:
    row = session.get(SourceRecord, (ORDER_ITEM, str(record["Id"])))
    return row is None or row.content_hash != store.content_hash(record)


def _ingest_lines(
    ctx: Context,
    fields: PollFields,
    page: list[dict[str, Any]],
    seen_orders: set[str],
    now: datetime,
    report: PollReport,
    holds: dict[str, datetime],
) -> None:
    """Record a page of OrderItems; re-read the orders of changed lines not read already.
    The lines of an order that waits are not recorded: the next poll reads them again."""
    with ctx.sessions() as session:
        stale = {
            str(r["OrderId"]) for r in page if r.get("OrderId") and _line_changed(session, r)
        } - seen_orders
    reread = list(_pages(ctx, fields.orders_by_id(stale))) if stale else []
    waiting: set[str] = set()
    for orders in reread:
        waiting |= lines_read(ctx, orders, report)
    with ctx.sessions.begin() as session:
        for orders in reread:
            for record in orders:
                report.reread += 1
                seen_orders.add(str(record["Id"]))
                if str(record["Id"]) not in waiting:
                    _ingest_order(ctx, session, record, now, report)
        for record in page:
            report.seen += 1
            if str(record.get("OrderId")) in waiting:
                _hold(holds, ORDER_ITEM, record)
                continue
            report.changed += _remember(session, ORDER_ITEM, record, now)


def _pages(ctx: Context, queries: list[str]) -> Iterator[list[dict[str, Any]]]:
    for answer in ctx.gateway.query_many([(q, False) for q in queries]):
        yield from answer


def ingest_order(
    ctx: Context, session: Session, record: dict[str, Any], now: datetime, report: PollReport
) -> None:
    """One Order record (with its lines) into the store as a poll takes it: an echo or a
    record seen before changes nothing, a new one is planned, a changed or deleted one is
    handled as such. ``orderflow resync`` (daemon.ops.resync) comes in here too."""
    _ingest_order(ctx, session, record, now, report)


def _ingest_order(
    ctx: Context, session: Session, record: dict[str, Any], now: datetime, report: PollReport
) -> None:
    report.seen += 1
    if record.get("IsDeleted"):
        _deleted(session, str(record["Id"]), now, report)
        return
    if not _remember(session, ORDER, record, now):
        return  # an echo of our own writeback, or a record seen before
    report.changed += 1
    existing = store.plan_for(session, str(record["Id"]))
    if existing is not None and held.is_held(existing):
        report.planned += held.plan_again(ctx, session, existing, record, now)
        return
    if existing is not None:
        # Changed in place or cancelled: reconciled against its plan (daemon.cycle.amend).
        report.amended += amend.order_changed(ctx, session, existing, record, now)
        return
    if str(record.get("Status")) in ctx.cancelled_statuses:
        return  # cancelled before Orderflow planned it: nothing to do
    planned = True
    history = adoption.historic(ctx, record)  # fulfilled before the cut-over
    try:
        order = ctx.inbound(session, Order.from_record(record))  # legacy ids → standard
        check_lookups(order)
        if amend.change_order(ctx, session, order, now, history=history):
            report.amended += 1  # a change order: the plan of the order it changes
            if history:
                taken = store.plan_for(session, order.id)
                if taken is not None:
                    adoption.adopt(session, taken, now, writeback=ctx.cutover_writeback)
            return
        steps = plan_steps(order, ctx.ruleset)
        planned = not holds(steps)  # held whole (unmatched: hold) until it can be planned
    except Unresolved as exc:
        # A legacy id the crosswalk cannot resolve holds the order: one fallout step each.
        order, steps, planned = exc.order, exc.steps, False
    except WrongObject as exc:
        # Another object's id where an Account's belongs: held, nothing of it is sent.
        log.warning("order %s: %s", record.get("Id"), exc, extra={"order_id": record.get("Id")})
        steps = [fallout_step(f"lookup.{exc.field}", f"Fix Order.{exc.field}", str(exc))]
        planned = False
    except (ValidationError, KeyError, ValueError) as exc:
        # A record that cannot be read still gets a plan: one fallout step saying why.
        reason = f"malformed order record: {_first_line(exc)}"
        log.warning("order %s: %s", record.get("Id"), reason, extra={"order_id": record.get("Id")})
        order = Order(
            id=str(record["Id"]), number=str(record.get("OrderNumber")), fields={}, lines=()
        )
        steps = [fallout_step("malformed", "Fix the order record", reason)]
        planned = False
    plan = store.create_plan(session, order, steps, ctx.ruleset, now)
    if planned:
        amend.remember_order(plan, order)  # what a later change is compared with
    if history:  # nothing of it is sent
        adoption.adopt(session, plan, now, writeback=ctx.cutover_writeback)
    report.planned += 1


def _deleted(session: Session, order_id: str, now: datetime, report: PollReport) -> None:
    """A deleted order: cancel its plan if nothing was started, else flag it."""
    plan = store.plan_for(session, order_id)
    if plan is None or plan.sf_deleted_at is not None:
        return
    plan.sf_deleted_at = now
    report.changed += 1
    live = [t for t in plan.tasks if t.revision == plan.revision]
    if any(t.started_at is not None for t in live):
        plan.flag = DELETED_IN_FLIGHT
        report.flagged += 1
        log.warning(
            "order %s deleted in Salesforce while in flight; flagged",
            plan.order_number,
            extra={"order_id": plan.order_id, "order_number": plan.order_number},
        )
        return
    _cancel(session, plan, live, now)
    report.cancelled += 1
    log.info(
        "order %s deleted in Salesforce before it started; cancelled",
        plan.order_number,
        extra={"order_id": plan.order_id, "order_number": plan.order_number},
    )


def _cancel(session: Session, plan: Plan, live: list[Any], now: datetime) -> None:
    for task in live:
        if StepState(task.state) not in FINAL_STATES:
            store.transition(session, task, StepState.DISCARDED, "order deleted in Salesforce", now)
    plan.status, plan.state = "Cancelled", PlanState.COMPLETED
    store.touch(plan, now)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
