"""Writeback: what Salesforce should show, derived from the store, differences only.

Per Order: ``Fulfillment_Status__c``, ``Fulfillment_Progress__c``, ``Fulfillment_Message__c``
(and ``Fulfillment_Updated__c`` stamped on each write); per OrderItem with steps of its
own: ``Fulfillment_Status__c``. What was last written is kept per record
(:class:`daemon.models.SfWriteback`), so a wave sends only what changed: sObject
Collections of 200, ``allOrNone`` false, five to a Composite call, an order's lines in the
same request. Every record's result is read:

- success: remembered as written;
- transient (UNABLE_TO_LOCK_ROW, ...): tried again on a later cycle, backing off;
- permanent (validation rule, deleted record, missing field): recorded with the values it
  refused and shown in ``orderflow status``; those values are never sent again (a new
  value is).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from daemon.context import Context
from daemon.models import Plan, SfWriteback, Task
from daemon.sf_state import save_budget
from orchestration.errors import BudgetExhausted, RetriableError
from orchestration.plan import rollup
from orchestration.states import StepState
from salesforce.batches import collection_requests
from salesforce.gateway import WriteResult
from salesforce.poller import ORDER, ORDER_ITEM, soql_datetime

log = logging.getLogger(__name__)

STATUS = "Fulfillment_Status__c"
PROGRESS = "Fulfillment_Progress__c"
MESSAGE = "Fulfillment_Message__c"
UPDATED = "Fulfillment_Updated__c"
#: Every field writeback sets, by object (the metadata test checks each is deployed).
FIELDS_WRITTEN = {ORDER: (STATUS, PROGRESS, MESSAGE, UPDATED), ORDER_ITEM: (STATUS,)}
BATCH = 5000
MAX_BACKOFF = 300.0


@dataclass(frozen=True)
class Change:
    sobject: str
    sf_id: str
    parent_id: str | None
    fields: dict[str, Any]


def write_back(ctx: Context, batch: int = BATCH) -> int:
    """Write what differs between the store and Salesforce. Returns the records written."""
    now = ctx.clock()
    with ctx.sessions() as session:
        changes = pending_changes(session, now, batch)
    if not changes:
        return 0
    stamp = soql_datetime(now)
    orders = [{"Id": c.sf_id, **c.fields, UPDATED: stamp} for c in changes if c.sobject == ORDER]
    lines = [
        {"Id": c.sf_id, "OrderId": c.parent_id, **c.fields}
        for c in changes
        if c.sobject == ORDER_ITEM
    ]
    requests = [
        *collection_requests(ORDER, orders),
        *collection_requests(ORDER_ITEM, lines, parent="OrderId"),
    ]
    try:
        answers = ctx.gateway.write(requests)
    except RetriableError as exc:
        level = logging.WARNING if isinstance(exc, BudgetExhausted) else logging.INFO
        log.log(level, "writeback of %d records put off: %s", len(changes), exc)
        save_budget(ctx)
        return 0
    results = {
        (req.sobject, r.id): r for req, rs in zip(requests, answers, strict=True) for r in rs
    }
    written = _record(ctx, changes, results, now)
    save_budget(ctx)
    return written


def pending_changes(session: Session, now: datetime, limit: int = BATCH) -> list[Change]:
    """The field values that differ from what Salesforce was last sent, per record."""
    changes: list[Change] = []
    for plan in _candidates(session, now, limit):
        live = [t for t in plan.tasks if t.revision == plan.revision]
        desired: dict[tuple[str, str, str | None], dict[str, Any]] = {
            (ORDER, plan.order_id, None): _order_fields(plan, live)
        }
        for line_id, states in _line_states(live).items():
            status = rollup(states)[0].value
            desired[(ORDER_ITEM, line_id, plan.order_id)] = {STATUS: status}
        rows = _rows(session, plan)
        for (sobject, sf_id, parent), fields in desired.items():
            row = rows.get((sobject, sf_id))
            diff = _diff(row, fields, now)
            if diff:
                changes.append(Change(sobject, sf_id, parent, diff))
    return changes


def _candidates(session: Session, now: datetime, limit: int) -> list[Plan]:
    """Plans changed since their Order was last written, or with a retry due."""
    wb = SfWriteback
    query = (
        select(Plan)
        .outerjoin(wb, and_(wb.sobject == ORDER, wb.sf_id == Plan.order_id))
        .where(Plan.sf_deleted_at.is_(None))
        .where(Plan.kind == "order")  # invoice transfers are written by daemon.invoices
        .where(
            or_(
                wb.sf_id.is_(None),
                Plan.updated_at >= wb.updated_at,
                wb.retry_at <= now,
                Plan.id.in_(_plans_with_line_retries(now)),
            )
        )
        .options(selectinload(Plan.tasks))
        .order_by(Plan.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def _plans_with_line_retries(now: datetime) -> Any:
    return (
        select(Plan.id)
        .join(SfWriteback, SfWriteback.parent_id == Plan.order_id)
        .where(SfWriteback.retry_at <= now)
    )


def _rows(session: Session, plan: Plan) -> dict[tuple[str, str], SfWriteback]:
    rows = session.scalars(
        select(SfWriteback).where(
            or_(
                and_(SfWriteback.sobject == ORDER, SfWriteback.sf_id == plan.order_id),
                SfWriteback.parent_id == plan.order_id,
            )
        )
    )
    return {(r.sobject, r.sf_id): r for r in rows}


def _order_fields(plan: Plan, live: list[Task]) -> dict[str, Any]:
    message = plan.flag or next(
        (
            t.message
            for t in live
            if t.message and t.state in (StepState.FATALLY_FAILED, StepState.FAILED)
        ),
        None,
    )
    return {STATUS: plan.status, PROGRESS: plan.progress, MESSAGE: (message or None)}


def _line_states(live: Iterable[Task]) -> dict[str, list[StepState]]:
    states: dict[str, list[StepState]] = {}
    for task in live:
        if task.line_id:
            states.setdefault(task.line_id, []).append(StepState(task.state))
    return states


def _diff(row: SfWriteback | None, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
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


def _record(
    ctx: Context,
    changes: list[Change],
    results: dict[tuple[str, str], WriteResult],
    now: datetime,
) -> int:
    written = 0
    with ctx.sessions.begin() as session:
        for change in changes:
            result = results.get((change.sobject, change.sf_id))
            row = session.get(SfWriteback, (change.sobject, change.sf_id))
            if row is None:
                row = SfWriteback(
                    sobject=change.sobject,
                    sf_id=change.sf_id,
                    parent_id=change.parent_id,
                    written={},
                    attempts=0,
                    updated_at=now,
                )
                session.add(row)
            row.updated_at = now
            if result is not None and result.success:
                row.written = {**row.written, **change.fields}
                row.error = row.error_code = row.failed_values = row.retry_at = None
                row.attempts = 0
                written += 1
            elif result is None or result.transient:
                row.attempts += 1
                row.retry_at = now + _backoff(row.attempts)
            else:
                row.error_code = result.code
                row.error = f"{result.code}: {result.message}"[:500]
                row.failed_values, row.retry_at, row.attempts = change.fields, None, 0
                log.warning(
                    "writeback of %s %s refused: %s",
                    change.sobject,
                    change.sf_id,
                    result.code,
                    extra={"sobject": change.sobject, "sf_id": change.sf_id},
                )
            if change.sobject == ORDER:
                _mirror_on_plan(session, change, row)
    return written


def _mirror_on_plan(session: Session, change: Change, row: SfWriteback) -> None:
    plan = session.scalars(select(Plan).where(Plan.order_id == change.sf_id)).one_or_none()
    if plan is None:
        return
    plan.writeback_error = row.error
    if row.error is None and STATUS in row.written:
        plan.written_status = row.written[STATUS]


def _backoff(attempts: int) -> timedelta:
    """The first retry on the next cycle, then 5 s, 10 s, ... up to five minutes."""
    if attempts <= 1:
        return timedelta(0)
    return timedelta(seconds=min(MAX_BACKOFF, 5.0 * 2 ** (attempts - 2)))
