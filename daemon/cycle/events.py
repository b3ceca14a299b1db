"""Change events wake the daemon; the query reads (``ORDERFLOW_SF_EVENTS``).

The subscriber (salesforce.pubsub.subscriber) streams Order, OrderItem and (with invoice
support) Invoice change events on threads of its own and wakes the loop. The leader's
cycle takes them in here:

- **An event never replaces the record.** The Orders and Invoices events name are read by
  id in one query (daemon.cycle.poll.poll_ids) and taken in as a poll takes them: dedupe, echo
  suppression, amendments and remap behave as for polled records.
- **Echoes cost nothing.** An event whose changed fields are only Orderflow's writeback
  fields (and the system's stamps), or by the integration user with nothing else changed,
  is not read; nor an edit of an order Orderflow does not take (a draft, and its lines).
- **Nothing lost.** A topic's replay id is committed (``event_replays``) only after its
  events' records are; a restart resumes after it. A gap (GAP_* events, a dropped stream, a
  refused replay id) polls every object from a minute (:data:`MARGIN`) before the last
  committed event's commitTimestamp to now.
- **Polling is the safety net.** While every stream is open the SystemModstamp poll runs
  once per ``ORDERFLOW_SF_SAFETY_POLL_INTERVAL``; otherwise at its normal cadence. A first
  subscription starts at LATEST: until the poll's watermarks pass the moment it opened
  (a window ends ``ORDERFLOW_SF_POLL_SETTLE`` before now, so the gap's own poll may stop
  short of it), the stream counts as not yet open and the normal cadence goes on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon import store
from daemon.channels.stream import EventStream
from daemon.context import Context
from daemon.cycle import poll
from daemon.cycle.invoices import DOCUMENT_FIELD, SYNC_FIELD
from daemon.store.models import EventReplay, SfBudget, SourceRecord
from orchestration.errors import BudgetExhausted
from salesforce.poller import INVOICE, ORDER, ORDER_ITEM
from salesforce.pubsub.subscriber import (
    Change,
    Delivery,
    Gap,
)

log = logging.getLogger(__name__)

TOPICS = {
    ORDER: "/data/OrderChangeEvent",
    ORDER_ITEM: "/data/OrderItemChangeEvent",
    INVOICE: "/data/InvoiceChangeEvent",
}
#: Stamps Salesforce sets on every write: changing only them changes nothing.
STAMPS = frozenset({"LastModifiedDate", "LastModifiedById", "SystemModstamp"})
#: How far before the last committed event a gap's poll reaches (commit clocks differ).
MARGIN = timedelta(minutes=1)
#: Events taken in per cycle at most (the rest wait for the next, which follows at once).
MAX_TAKE = 2000
#: Seconds the cycle's writeback may wait for change events queued behind a take (a burst
#: of activations): planning them comes first, Salesforce shows the statuses they change a
#: few cycles later; past this, writeback runs whatever is queued.
WRITEBACK_WAIT = timedelta(seconds=3)
STATE = "events"  # its row in sf_budget, for `orderflow status`


def topics(invoices: bool) -> list[str]:
    """The topics subscribed to: Orders and their lines, and Invoices when they are read."""
    return [TOPICS[ORDER], TOPICS[ORDER_ITEM]] + ([TOPICS[INVOICE]] if invoices else [])


def resume_points(ctx: Context) -> dict[str, bytes | None]:
    """Per topic, the replay id of the last event taken in (None: start at LATEST)."""
    with ctx.sessions() as session:
        rows = session.scalars(select(EventReplay)).all()
        return {row.topic: bytes(row.replay_id) for row in rows}


def take_events(ctx: Context) -> tuple[int, int]:
    """Take in the events received since the last cycle: (records read, plans made)."""
    stream = ctx.events
    if stream is None:
        return 0, 0
    due = ctx.gateway.pacer.next_poll_at
    if stream.behind_until is not None and due is not None and due > stream.behind_until:
        stream.behind_until = None  # the poll that reads what waited has run
    if stream.unpolled_from is not None and _polled_past(ctx, stream.unpolled_from):
        stream.unpolled_from = None  # the polls have read up to the streams' opening
    queue = stream.subscriber.deliveries
    while len(stream.pending) < MAX_TAKE and not queue.empty():
        stream.pending.append(queue.get_nowait())
    if not stream.pending:
        _pace(ctx, stream)
        _save(ctx, stream)
        return 0, 0
    batch = list(stream.pending)
    try:
        report = _take(ctx, stream, batch)
    except BudgetExhausted as exc:
        log.warning("change events wait: %s", exc)  # kept pending, replay ids unmoved
        return 0, 0
    del stream.pending[: len(batch)]
    _commit(ctx, stream, batch)
    _pace(ctx, stream)
    _save(ctx, stream)
    return report.seen, report.planned


def writeback_waits(ctx: Context, planned: int) -> bool:
    """Whether this cycle's writeback waits: its take planned orders (``planned``) and more
    change events are queued for the next take (which follows at once), and writeback has
    not waited :data:`WRITEBACK_WAIT` yet. It loses nothing: writeback sends what differs
    from what it last wrote, whenever it runs. (Echoes of writeback plan nothing: they
    never make it wait.)"""
    stream = ctx.events
    if stream is None:
        return False
    if not planned or (not stream.pending and stream.subscriber.deliveries.empty()):
        stream.writeback_waiting_since = None
        return False
    now = ctx.clock()
    if stream.writeback_waiting_since is None:
        stream.writeback_waiting_since = now
    if now - stream.writeback_waiting_since < WRITEBACK_WAIT:
        return True
    stream.writeback_waiting_since = None
    return False


def _take(ctx: Context, stream: EventStream, batch: list[Delivery]) -> poll.PollReport:
    changes = [d for d in batch if isinstance(d, Change)]
    gaps = [d for d in batch if isinstance(d, Gap) or d.is_gap]
    report = poll.PollReport()
    routine = all(isinstance(g, Gap) and g.routine for g in gaps)
    opened = _opened(gaps) if routine else None
    if gaps and not (opened is not None and _polled_past(ctx, opened)):
        report = _poll_gap(ctx, stream, gaps, routine=routine)
        if opened is not None and not _polled_past(ctx, opened):
            # The gap's window ended before the streams opened: the polls go on at their
            # normal cadence, beginning soon, until one has read past that moment.
            stream.unpolled_from = max(opened, stream.unpolled_from or opened)
            ctx.gateway.pacer.work_appeared(ctx.gateway.clock())
    orders: set[str] = set()
    invoices: set[str] = set()
    lines: set[str] = set()
    with ctx.sessions() as session:
        for change in changes:
            if change.is_gap:
                continue
            if not needs_reading(ctx, session, change):
                stream.skipped += 1
                continue
            if change.entity == ORDER_ITEM:
                order_id = change.values.get("OrderId")
                if order_id:
                    orders.add(str(order_id))
                else:
                    lines.update(change.record_ids)
            elif change.entity == INVOICE:
                invoices.update(change.record_ids)
            else:
                orders.update(change.record_ids)
        orders |= _orders_of_lines(ctx, session, lines)
    if orders or invoices:
        found = poll.poll_ids(ctx, orders, invoices)
        report.seen += found.seen
        report.planned += found.planned
        if found.waiting:  # orders whose lines could not all be read: the next poll does
            pacer = ctx.gateway.pacer
            pacer.work_appeared(ctx.gateway.clock())
            stream.behind_until = pacer.next_poll_at or 0.0
    stream.taken += len(changes)
    if changes:
        stream.last_event_at = max(c.commit_timestamp for c in changes)
    return report


def needs_reading(ctx: Context, session: Session, change: Change) -> bool:
    """Whether the records of ``change`` must be read (see the module's docstring)."""
    stream = ctx.events
    assert stream is not None
    fields = set(change.changed_fields) - STAMPS
    if change.change_type == "UPDATE":
        if fields and fields <= stream.written.get(change.entity, frozenset()):
            return False  # Orderflow's writeback, seen again
        if not fields and change.commit_user == stream.user_id:
            return False  # the integration user touched it and changed nothing
    if change.change_type == "CREATE" and _read_already(session, change):
        # At this version or a later one (whose own event follows): a draft's line whose
        # create event is taken after its order's activation was.
        return False
    if change.entity == ORDER_ITEM:
        order_id = change.values.get("OrderId")
        # An activated order's lines cannot change: lines of an order not taken are a
        # draft's, and come with the order's own event when it is activated.
        return order_id is None or _stored(session, ORDER, str(order_id))
    if change.entity == ORDER and not any(_stored(session, ORDER, i) for i in change.record_ids):
        # An order not taken yet is read when it reaches a status Orderflow takes.
        return change.change_type == "UNDELETE" or change.values.get("Status") in ctx.statuses
    return True


def _stored(session: Session, sobject: str, sf_id: str) -> bool:
    return session.get(SourceRecord, (sobject, sf_id)) is not None


def _read_already(session: Session, change: Change) -> bool:
    """Whether every record ``change`` names is stored: an OrderItem as a record of its
    own (a window poll's) or among its stored order's lines (an order read by id)."""
    lines: set[str] = set()
    if change.entity == ORDER_ITEM:
        order = session.get(SourceRecord, (ORDER, str(change.values.get("OrderId"))))
        items = order.data.get("OrderItems") if order is not None else None
        if isinstance(items, dict):
            lines = {str(r.get("Id")) for r in items.get("records") or []}
    return all(i in lines or _stored(session, change.entity, i) for i in change.record_ids)


def _orders_of_lines(ctx: Context, session: Session, line_ids: set[str]) -> set[str]:
    """The orders of these OrderItems: as stored, else asked of Salesforce (one query)."""
    found: set[str] = set()
    unknown: list[str] = []
    for line_id in sorted(line_ids):
        row = session.get(SourceRecord, (ORDER_ITEM, line_id))
        if row is not None and row.data.get("OrderId"):
            found.add(str(row.data["OrderId"]))
        else:
            unknown.append(line_id)
    if unknown:
        queries = [(q, True) for q in ctx.poll_fields.order_of_lines(unknown)]
        for answer in ctx.gateway.query_many(queries):
            found.update(str(r["OrderId"]) for page in answer for r in page if r.get("OrderId"))
    return found


def _opened(gaps: list[Delivery]) -> datetime | None:
    """When the last of these first subscriptions' streams opened (None: not known)."""
    opened = [g.opened_at for g in gaps if isinstance(g, Gap)]
    if not opened or None in opened:
        return None
    return max(o for o in opened if o is not None)


def _polled_past(ctx: Context, moment: datetime) -> bool:
    """Whether the poll's watermarks are past ``moment`` (when first subscriptions'
    streams opened): the polls (at start, or on taking the lead) have read what came
    before it, and a second poll would only read its overlap again."""
    with ctx.sessions() as session:
        marks = [store.watermark(session, obj) for obj in poll.polled_fields(ctx).objects]
    return all(m is not None and m >= moment for m in marks)


def _poll_gap(
    ctx: Context, stream: EventStream, gaps: list[Delivery], *, routine: bool
) -> poll.PollReport:
    """Poll every object over the span the stream may have missed: since the last committed
    event, or, for first subscriptions only (``routine``), since the poll's watermarks."""
    with ctx.sessions() as session:
        stamps = session.scalars(select(EventReplay.committed_at)).all()
    since = min(stamps) - MARGIN if stamps and not routine else None
    reasons = sorted({g.reason if isinstance(g, Gap) else g.change_type for g in gaps})
    log.log(
        logging.INFO if routine else logging.WARNING,
        "change events may be missing (%s): polling since %s",
        "; ".join(reasons),
        since.isoformat() if since else "the watermarks",
    )
    report = poll.paced_poll(ctx, since=since)
    stream.gaps += 1
    return report


def _commit(ctx: Context, stream: EventStream, batch: list[Delivery]) -> None:
    """Each topic's last replay id, now that its events' records are committed."""
    last: dict[str, Change] = {}
    counts: dict[str, int] = {}
    for item in batch:
        if isinstance(item, Change):
            last[item.topic] = item
            counts[item.topic] = counts.get(item.topic, 0) + 1
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        for topic, change in last.items():
            row = session.get(EventReplay, topic) or EventReplay(topic=topic)
            row.replay_id, row.committed_at = change.replay_id, change.commit_timestamp
            row.updated_at = now
            session.add(row)
    for topic, count in counts.items():
        stream.subscriber.consumed(topic, count)  # flow control: ask for as many more


def _pace(ctx: Context, stream: EventStream) -> None:
    """The safety poll's cadence while every stream is open; the normal one otherwise."""
    pacer = ctx.gateway.pacer
    if pacer.under_reserve:
        return
    if stream.healthy and pacer.poll_interval < stream.safety_interval:
        pacer.reschedule(stream.safety_interval)
    elif not stream.healthy and pacer.poll_interval > pacer.policy.max_idle:
        pacer.reschedule(pacer.policy.max_idle)


def _save(ctx: Context, stream: EventStream) -> None:
    """The stream's state for ``orderflow status``, when it changed."""
    data = stream.snapshot()
    if data == stream.saved:
        return
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        row = session.get(SfBudget, STATE) or SfBudget(name=STATE)
        row.data, row.updated_at = data, now
        session.add(row)
    stream.saved = data


def written_fields(ctx: Context) -> dict[str, frozenset[str]]:
    """The fields Orderflow's writeback sets, per object (ORDERFLOW_SF_WRITEBACK_FIELDS)."""
    f = ctx.status_fields
    return {
        ORDER: frozenset(
            {f.order_status, f.order_jeopardy, f.order_message, f.order_progress, f.order_updated}
        ),
        ORDER_ITEM: frozenset({f.line_status, f.line_jeopardy}),
        INVOICE: frozenset({DOCUMENT_FIELD, SYNC_FIELD}),
    }
