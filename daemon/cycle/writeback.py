"""Writeback: what Salesforce should show, derived from the store, differences only.

Per Order: fulfillment status, jeopardy (the worst of its open steps), a message (a human
sentence: which step failed or is at risk and why), progress, and ``Fulfillment_Updated__c``
stamped on each write; per OrderItem with steps of its own: status and jeopardy (the worst
of its steps); per step, a ``Fulfillment_Task__c`` record upserted by its external id
``Task_Key__c`` (a child of the Order: the plan as a related list). The field names are
``ctx.status_fields`` (:class:`salesforce.fields.StatusFields`).

Everything is derived from plan and task state (status, jeopardy, flags set by others, such
as amendments' Superseded and point-of-no-return flags), so whatever they set flows through.
What was last written is kept per record (:class:`daemon.store.models.SfWriteback`, tasks by their
key), so a pass sends only what changed, however many times it changed since the last:
sObject Collections of 200, ``allOrNone`` false, five to a Composite call, an Order with its
lines (and Invoices, daemon.cycle.invoices) in one update request, its tasks upserted beside.
An object with thousands of records in one pass (the first pass's new tasks) goes in one
Bulk API 2.0 job instead (:mod:`daemon.cycle.writeback_bulk`), a few calls however many records.
Every record's result is read and remembered (:mod:`daemon.cycle.writeback_results`):
written, retried later when transient, or refused for good and shown in ``orderflow status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from daemon import store
from daemon.context import Context
from daemon.cycle.invoices import INVOICE, transfers_to_write
from daemon.cycle.invoices import desired_fields as invoice_fields
from daemon.cycle.jeopardy import SlaCache, refresh_plan
from daemon.cycle.org_state import save_budget
from daemon.cycle.writeback_bulk import bulk_jobs, earlier_job_over, send_job
from daemon.cycle.writeback_results import Change, record_results
from daemon.cycle.writeback_values import desired
from daemon.store.models import Plan, SfWriteback
from orchestration.errors import BudgetExhausted, RetriableError
from salesforce.batches import TYPE, CollectionRequest, collection_requests, results_by_record
from salesforce.fields import ORDER, WRITTEN_FIELDS, StatusFields
from salesforce.ingest import BULK_MIN
from salesforce.poller import soql_datetime

log = logging.getLogger(__name__)

_DEFAULT = StatusFields()
STATUS = _DEFAULT.order_status
PROGRESS = _DEFAULT.order_progress
MESSAGE = _DEFAULT.order_message
UPDATED = _DEFAULT.order_updated
#: Every field writeback sets, by object (the metadata test checks each is deployed).
FIELDS_WRITTEN = {
    **WRITTEN_FIELDS,
    _DEFAULT.task_object: (*WRITTEN_FIELDS[_DEFAULT.task_object], _DEFAULT.task_order),
}
BATCH = 5000
_PARENT = "__parent"
#: How long after a cycle's pass sent something the jeopardy sweep leaves its writes to the
#: next cycle's pass (cycles that write come sooner than that; idle, the sweep writes).
CYCLE_CARRIES = timedelta(minutes=1)


@dataclass
class Wave:
    changes: list[Change] = field(default_factory=list)
    #: Orders of the plans looked at, with their change counts: marked seen after the wave.
    examined: dict[str, int] = field(default_factory=dict)
    #: The same for the Invoices of the transfer plans looked at.
    invoices: dict[str, int] = field(default_factory=dict)


def write_back(
    ctx: Context, batch: int = BATCH, *, late: bool = False, bulk_min: int = BULK_MIN
) -> int:
    """Write what differs between the store and Salesforce: the Orders, their lines and
    tasks and the Invoices' transfers, in one batch. Returns the records written.

    An object with ``bulk_min`` records or more to write in the pass (the first pass's
    thousands of new tasks) goes in one Bulk API 2.0 job, a few calls however many records,
    after the Composite calls of the rest.

    ``late`` (the jeopardy sweep) also looks at every Late order, whose message says how
    late it is: it is written when that changes (by the hour, sf_view.LATE_BY). While the
    cycles write back (one sent within :data:`CYCLE_CARRIES`), the sweep sends nothing: the
    next cycle's pass carries what it changed and its Late look, so each record is written
    once a cycle however many times it changed."""
    if ctx.mode == "shadow":
        return 0  # a parallel run writes nothing to Salesforce (daemon.cycle.shadow)
    now = ctx.clock()
    by_sweep = late
    if by_sweep and ctx.cycle_wrote_at is not None and now - ctx.cycle_wrote_at < CYCLE_CARRIES:
        ctx.late_due = True
        return 0
    if not earlier_job_over(ctx):
        return 0  # a Bulk API job of an earlier pass is still saving (daemon.cycle.writeback_bulk)
    late = late or ctx.late_due  # a cycle's pass carries the Late look a sweep left to it
    names = ctx.status_fields
    # Several instances change plans in passes of their own, concurrently: the leader
    # reads every candidate there (a pass may commit long after the time it stamps).
    shared = ctx.membership.shared
    since = store.changed_since(None if shared else ctx.written_seen, ctx.overlap)
    invoices_since = store.changed_since(None if shared else ctx.invoices_written, ctx.overlap)
    with ctx.sessions.begin() as session:
        wave = pending_changes(session, now, batch, names, late=late, since=since)
        transfers = transfers_to_write(session, now, invoices_since, batch)
        wave.changes += _invoice_changes(session, transfers, now)
        wave.invoices = {plan.order_id: plan.change_seq for plan in transfers}
    # Every candidate fits in this wave: the next looks only at what changes from now on.
    complete = len(wave.examined) < batch
    if not wave.changes:
        _looked(ctx, wave, now, complete=complete, invoices=len(transfers) < batch)
        return 0
    stamp = soql_datetime(now)
    jobs, rest = bulk_jobs(wave.changes, names, stamp, bulk_min)
    requests = _requests(rest, names, stamp)
    try:
        answers = ctx.gateway.write(requests)
    except RetriableError as exc:
        level = logging.WARNING if isinstance(exc, BudgetExhausted) else logging.INFO
        log.log(level, "writeback of %d records put off: %s", len(wave.changes), exc)
        save_budget(ctx)
        return 0
    results = results_by_record(requests, answers)
    for job in jobs:
        results.update(send_job(ctx, job, lambda changes: _requests(changes, names, stamp)))
    written = record_results(ctx, wave.changes, results, now, names)
    _looked(ctx, wave, now, complete=complete, invoices=len(transfers) < batch)
    if not by_sweep:
        ctx.cycle_wrote_at = now
    save_budget(ctx)
    return written


def _looked(ctx: Context, wave: Wave, now: datetime, *, complete: bool, invoices: bool) -> None:
    """The pass is over: its plans are seen, its Late look done, and where it looked at every
    candidate the next looks only at what changes from ``now`` on."""
    _mark_seen(ctx, ORDER, wave.examined, now)
    _mark_seen(ctx, INVOICE, wave.invoices, now)
    ctx.late_due = False
    if complete:
        ctx.written_seen = now
    if invoices:
        ctx.invoices_written = now


def _invoice_changes(session: Session, plans: Sequence[Plan], now: datetime) -> list[Change]:
    """What differs on the Invoices of these transfer plans, field by field."""
    rows = _rows_sent(session, INVOICE, [p.order_id for p in plans])
    changes = []
    for plan in plans:
        diff = _diff(rows.get(plan.order_id), invoice_fields(plan), now)
        if diff:
            changes.append(Change(INVOICE, plan.order_id, None, diff))
    return changes


def _requests(
    changes: Sequence[Change], names: StatusFields, stamp: str
) -> list[CollectionRequest]:
    """An update stream of Orders with their lines and Invoices (a request may mix them, an
    Order beside its lines), and the tasks, upserted by their key beside their Order's."""
    updates, tasks = [], []
    for c in changes:
        if c.sobject == names.task_object:
            tasks.append({names.task_key: c.sf_id, _PARENT: c.parent_id, **c.fields})
            continue
        record = {"Id": c.sf_id, TYPE: c.sobject, _PARENT: c.parent_id or c.sf_id, **c.fields}
        if c.sobject == ORDER:
            record[names.order_updated] = stamp
        updates.append(record)
    return [
        *collection_requests(ORDER, updates, parent=_PARENT),
        *collection_requests(names.task_object, tasks, parent=_PARENT, ext_field=names.task_key),
    ]


def pending_changes(
    session: Session,
    now: datetime,
    limit: int = BATCH,
    names: StatusFields = _DEFAULT,
    *,
    late: bool = False,
    since: datetime | None = None,
) -> Wave:
    """The field values that differ from what Salesforce was last sent, per record.

    Each plan looked at has its jeopardy brought up to ``now`` first (committed with the
    session), so what is written and what the store says agree. With ``since``, only the
    plans changed since then (or with a retry due, or Late) are looked at, by index: the
    settled history is not read."""
    wave = Wave()
    slas = SlaCache()
    plans = _candidates(session, now, limit, names, late=late, since=since)
    rows = _sent(session, [p.order_id for p in plans])
    for plan in plans:
        refresh_plan(plan, now, slas)
        wave.examined[plan.order_id] = plan.change_seq
        for (sobject, sf_id, parent), fields in desired(plan, now, names).items():
            diff = _diff(rows.get((sobject, sf_id)), fields, now)
            if diff:
                wave.changes.append(Change(sobject, sf_id, parent, diff))
    return wave


def _candidates(
    session: Session,
    now: datetime,
    limit: int,
    names: StatusFields,
    *,
    late: bool,
    since: datetime | None = None,
) -> list[Plan]:
    """Plans changed since their Order was last written, with a retry due, or (``late``)
    Late; with ``since``, among the plans changed since, with a retry due or Late only."""
    if since is None:
        return list(session.scalars(_candidate_query(now, late=late).limit(limit)))
    ids = set(session.scalars(select(Plan.id).where(Plan.updated_at >= since)))
    ids.update(session.scalars(_plans_with_retries(now)))
    ids.update(session.scalars(_plans_with_child_retries(now)))
    if late:
        ids.update(session.scalars(select(Plan.id).where(Plan.jeopardy == "Late")))
    return store.plans_by_id(session, _candidate_query(now, late=late), ids, limit)


def _plans_with_retries(now: datetime) -> Any:
    return (
        select(Plan.id)
        .join(SfWriteback, and_(SfWriteback.sobject == ORDER, SfWriteback.sf_id == Plan.order_id))
        .where(SfWriteback.retry_at <= now)
    )


def _candidate_query(now: datetime, *, late: bool) -> Any:
    wb = SfWriteback
    wanted = [
        wb.sf_id.is_(None),
        Plan.change_seq > func.coalesce(wb.plan_seq, -1),
        wb.retry_at <= now,
        Plan.id.in_(_plans_with_child_retries(now)),
    ]
    if late:
        wanted.append(Plan.jeopardy == "Late")
    query = (
        select(Plan)
        .outerjoin(wb, and_(wb.sobject == ORDER, wb.sf_id == Plan.order_id))
        .where(Plan.sf_deleted_at.is_(None))
        .where(Plan.kind == "order")  # invoice transfers are written by daemon.cycle.invoices
        # An adopted revision (daemon.cycle.adoption) leaves Salesforce as the legacy side left it.
        .where(or_(Plan.adopted_revision.is_(None), Plan.adopted_revision != Plan.revision))
        .where(or_(*wanted))
        .options(selectinload(Plan.tasks))
        .order_by(Plan.id)
    )
    return query


def _plans_with_child_retries(now: datetime) -> Any:
    return (
        select(Plan.id)
        .join(SfWriteback, SfWriteback.parent_id == Plan.order_id)
        .where(SfWriteback.retry_at <= now)
    )


@dataclass(frozen=True)
class Sent:
    """What a record was last sent (or refused), as :func:`_diff` needs it."""

    written: dict[str, Any]
    retry_at: datetime | None
    failed_values: dict[str, Any] | None


def _sent(session: Session, order_ids: Sequence[str]) -> dict[tuple[str, str], Sent]:
    """The writeback rows of these Orders and of their children (lines, tasks)."""
    wb = SfWriteback
    return _sent_where(
        session,
        order_ids,
        lambda ids: or_(and_(wb.sobject == ORDER, wb.sf_id.in_(ids)), wb.parent_id.in_(ids)),
    )


def _rows_sent(session: Session, sobject: str, ids: Sequence[str]) -> dict[str, Sent]:
    """The writeback rows of these records of one object, by Id."""
    wb = SfWriteback
    rows = _sent_where(session, ids, lambda chunk: and_(wb.sobject == sobject, wb.sf_id.in_(chunk)))
    return {sf_id: sent for (_, sf_id), sent in rows.items()}


def _sent_where(
    session: Session, ids: Sequence[str], where: Callable[[Sequence[str]], ColumnElement[bool]]
) -> dict[tuple[str, str], Sent]:
    """Writeback rows matching ``where`` for 500 ids a query: plain tuples, not ORM
    objects, for they are only compared."""
    wb = SfWriteback
    found: dict[tuple[str, str], Sent] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(wb.sobject, wb.sf_id, wb.written, wb.retry_at, wb.failed_values).where(
            where(ids[start : start + _CHUNK])
        )
        for sobject, sf_id, written, retry_at, failed in session.execute(query):
            found[(sobject, sf_id)] = Sent(written, retry_at, failed)
    return found


def _diff(row: Sent | None, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    if row is None:
        return dict(fields)
    if row.retry_at is not None and row.retry_at > now:
        return {}
    diff = {k: v for k, v in fields.items() if row.written.get(k, _UNSET) != v}
    if row.failed_values is not None and all(
        row.failed_values.get(k) == v for k, v in diff.items()
    ):
        return {}  # refused before, for good: shown in status, not sent again
    return diff


_UNSET = object()


_CHUNK = 500  # ids per IN (...) list


def _mark_seen(ctx: Context, sobject: str, examined: dict[str, int], now: datetime) -> None:
    """The Orders (or Invoices) of plans looked at are up to date as of the change count
    read: not candidates again until their plan changes (rows with a retry due stay
    candidates by their retry). A count, not a time: a change committed after the pass
    read its plan counts, however early its clock stamped it."""
    if not examined:
        return
    rows = cast(Table, SfWriteback.__table__)
    seen = (
        update(rows)
        .where(rows.c.sobject == sobject)
        .where(rows.c.sf_id == bindparam("order_id"))
        .where(or_(rows.c.plan_seq.is_(None), rows.c.plan_seq < bindparam("seq")))
        .values(plan_seq=bindparam("seq"), updated_at=now)
    )
    with ctx.sessions.begin() as session:
        session.connection().execute(
            seen, [{"order_id": order_id, "seq": seq} for order_id, seq in examined.items()]
        )
