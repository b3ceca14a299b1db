"""Invoices to the ERP: each posted Invoice becomes a transfer task, and its result goes back.

The poll stores Invoice and InvoiceLine rows as source records (``daemon.cycle.poll``). Here a
posted Invoice with its lines becomes a plan of its own (``Plan.kind == "invoice"``, keyed
by the Invoice id) with one callout, ``erp`` / ``invoices``, whose payload must fit the rules'
``contracts: erp: invoices`` when one is declared. The ERP answers with its document number;
the writeback pass (:func:`daemon.cycle.writeback.write_back`, with the Orders, in one batch)
writes it and the transfer status onto the Invoice (``ERP_Document_Number__c``,
``ERP_Sync_Status__c``), the fields that differ from what was last written (kept per
record in ``sf_writebacks``, as for the Orders).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from daemon import store
from daemon.context import Context
from daemon.cycle import adoption
from daemon.store.models import Plan, SfWriteback, SourceRecord
from orchestration.decompose import PlannedStep
from orchestration.records import Order
from orchestration.states import ErpSyncStatus, FulfillmentStatus, StepKind

log = logging.getLogger(__name__)

INVOICE, INVOICE_LINE = "Invoice", "InvoiceLine"
KIND = "invoice"
RULE, STEP = "invoice_transfer", "transfer"
SYSTEM, ACTION = "erp", "invoices"
POSTED = "Posted"
DOCUMENT_FIELD, SYNC_FIELD = "ERP_Document_Number__c", "ERP_Sync_Status__c"
#: The Invoice's ERP_Sync_Status__c for each plan status (anything else: Pending).
SYNC_STATUS: dict[str, ErpSyncStatus] = {
    FulfillmentStatus.COMPLETED: ErpSyncStatus.TRANSFERRED,
    FulfillmentStatus.FALLOUT: ErpSyncStatus.FAILED,
    FulfillmentStatus.CANCELLED: ErpSyncStatus.CANCELLED,
}


def plan_invoices(ctx: Context) -> int:
    """Make a transfer plan for every posted Invoice (with lines) that has none yet.

    Only the Invoices stored or changed since the last look, or whose lines were, are
    read (``source_records (sobject, seen_at)``, looking back ``ctx.overlap`` for a commit
    that landed late): drafts that never change and Invoices long transferred cost a cycle
    nothing. The first look of a process reads them all, once.
    """
    if SYSTEM not in ctx.systems:
        return 0
    now = ctx.clock()
    since = store.changed_since(ctx.invoices_seen, ctx.overlap)
    planned = 0
    with ctx.sessions.begin() as session:
        for invoice in _unplanned(session, since):
            planned += plan_invoice(ctx, session, invoice, now) is not None
    ctx.invoices_seen = now
    if planned:
        log.info("%d posted invoices to transfer to the ERP", planned)
    return planned


#: Ids per ``IN (...)`` list.
CHUNK = 500


def _unplanned(session: Session, since: datetime | None) -> list[SourceRecord]:
    """Stored Invoices without a transfer plan: all of them, or those touched since."""
    have_plan = select(Plan.order_id).where(Plan.kind == KIND)
    query = select(SourceRecord).where(SourceRecord.sobject == INVOICE)
    if since is None:
        query = query.where(SourceRecord.sf_id.not_in(have_plan)).order_by(SourceRecord.sf_id)
        return list(session.scalars(query))
    touched = set(session.scalars(_seen_since(INVOICE, SourceRecord.sf_id, since)))
    invoice_of = SourceRecord.data["InvoiceId"].as_string()
    touched.update(
        str(i) for i in session.scalars(_seen_since(INVOICE_LINE, invoice_of, since)) if i
    )
    ids = sorted(touched)
    found: list[SourceRecord] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        planned = set(session.scalars(have_plan.where(Plan.order_id.in_(chunk))))
        wanted = [i for i in chunk if i not in planned]
        if wanted:
            found += session.scalars(query.where(SourceRecord.sf_id.in_(wanted)))
    return sorted(found, key=lambda r: r.sf_id)


def _seen_since(sobject: str, column: Any, since: datetime) -> Select[Any]:
    return select(column).where(SourceRecord.sobject == sobject, SourceRecord.seen_at >= since)


def plan_invoice(
    ctx: Context, session: Session, invoice: SourceRecord, now: datetime
) -> Plan | None:
    """The transfer plan of one stored Invoice without one, when it is posted and its lines
    are stored (else None). ``orderflow resync`` (daemon.ops.resync) plans through here too."""
    data = invoice.data
    if SYSTEM not in ctx.systems or data.get("IsDeleted") or data.get("Status") != POSTED:
        return None
    lines = _lines(session, invoice.sf_id)
    if not lines:
        return None  # its lines come with a later poll
    number = str(data.get("DocumentNumber") or invoice.sf_id)
    step = PlannedStep(
        step_id=f"{RULE}.{STEP}",
        rule=RULE,
        key=STEP,
        kind=StepKind.CALLOUT,
        system=SYSTEM,
        action=ACTION,
        title=f"ERP: transfer invoice {number}",
        line_id=None,
        depends_on=(),
        payload=transfer_payload(data, lines),
    )
    record = Order(
        id=invoice.sf_id,
        number=number,
        fields={"AccountId": data.get("BillingAccountId")},
        lines=(),
    )
    plan = store.create_plan(session, record, [step], ctx.ruleset.version, now)
    plan.kind = KIND
    if adoption.historic(ctx, data, "InvoiceDate"):  # the legacy side transferred it
        adoption.adopt(session, plan, now, writeback=ctx.cutover_writeback)
    return plan


def _lines(session: Session, invoice_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(SourceRecord)
        .where(SourceRecord.sobject == INVOICE_LINE)
        .where(SourceRecord.data["InvoiceId"].as_string() == invoice_id)
        .order_by(SourceRecord.sf_id)
    ).all()
    return [r.data for r in rows if not r.data.get("IsDeleted")]


def transfer_payload(invoice: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The ERP invoice transfer, from the Invoice and its lines as Salesforce holds them."""
    return {
        "invoice_id": invoice.get("Id"),
        "invoice_number": invoice.get("DocumentNumber"),
        "account": invoice.get("BillingAccountId"),
        "order_id": invoice.get("ReferenceEntityId"),
        "invoice_date": invoice.get("InvoiceDate"),
        "due_date": invoice.get("DueDate"),
        "total_amount": invoice.get("TotalAmount"),
        "lines": [
            {
                "line_id": line.get("Id"),
                "product": line.get("Product2Id"),
                "quantity": line.get("Quantity"),
                "amount": line.get("ChargeAmount"),
                "order_item_id": line.get("ReferenceEntityItemId"),
            }
            for line in lines
        ],
    }


def desired_fields(plan: Plan) -> dict[str, Any]:
    """What the Invoice should show for its transfer plan."""
    task = next((t for t in plan.tasks if t.revision == plan.revision), None)
    document = task.external_ref if task is not None and plan.status == "Completed" else None
    return {
        DOCUMENT_FIELD: document,
        SYNC_FIELD: SYNC_STATUS.get(plan.status, ErpSyncStatus.PENDING),
    }


def transfers_to_write(
    session: Session, now: datetime, since: datetime | None, batch: int = 2000
) -> list[Plan]:
    """The transfer plans whose Invoice may show other values than last written: every one
    (``since`` None, a first look), else those changed since, with their retries due.

    :func:`daemon.cycle.writeback.write_back` diffs them and sends what differs in the same
    Composite calls as the Orders: one writeback pass, one batch."""
    wb = SfWriteback
    query = (
        select(Plan)
        .outerjoin(wb, and_(wb.sobject == INVOICE, wb.sf_id == Plan.order_id))
        .where(Plan.kind == KIND)
        .where(
            or_(
                wb.sf_id.is_(None),
                Plan.change_seq > func.coalesce(wb.plan_seq, -1),  # writeback._mark_seen
                wb.retry_at <= now,
            )
        )
        .options(selectinload(Plan.tasks))
        .order_by(Plan.id)
    )
    if since is None:
        return list(session.scalars(query.limit(batch)))
    changed = select(Plan.id).where(Plan.updated_at >= since, Plan.kind == KIND)
    retries = (
        select(Plan.id)
        .join(wb, and_(wb.sobject == INVOICE, wb.sf_id == Plan.order_id))
        .where(wb.retry_at <= now)
    )
    ids = {*session.scalars(changed), *session.scalars(retries)}
    return store.plans_by_id(session, query, ids, batch)
