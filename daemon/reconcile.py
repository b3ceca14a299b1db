"""Go-live reconciliation: what Salesforce holds against what the systems hold, read-only.

For a date range it lists:

- ``invoice_without_erp_document``: a posted Invoice with no ERP document (none written
  back, or the ERP lists none for it);
- ``erp_document_without_invoice``: an ERP document whose Invoice is not a posted
  Invoice of the range (systems that can list their documents);
- ``amount_differs`` / ``quantity_differs``: an Invoice and its ERP document disagree;
- ``never_planned``: an activated Order effective in the range that Orderflow has no plan
  for (activated while the daemon was stopped, or never polled);
- ``status_differs``: the fulfillment status Salesforce shows (the configured field,
  ORDERFLOW_SF_WRITEBACK_FIELDS) is not the plan's;
- ``step_without_effect``: an activated Order whose completed billing or provisioning
  step has no effect at the system (no reference, or the system does not know it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from daemon.models import Plan
from downstream.guard import GuardedSystem
from downstream.protocol import Document, DownstreamSystem, Outcome
from orchestration.errors import RetriableError
from orchestration.states import StepState
from salesforce.children import complete_children
from salesforce.fields import StatusFields
from salesforce.gateway import SalesforceGateway

log = logging.getLogger(__name__)

#: Systems whose completed steps must have left an effect.
CHECKED_SYSTEMS = ("billing", "provisioning")
TOLERANCE = 0.005


@dataclass(frozen=True)
class Difference:
    kind: str
    system: str
    salesforce_id: str
    salesforce_number: str
    reference: str
    detail: str

    FIELDS = ("kind", "system", "salesforce_id", "salesforce_number", "reference", "detail")

    def row(self) -> list[str]:
        return [str(getattr(self, f)) for f in self.FIELDS]


def reconcile(
    gateway: SalesforceGateway,
    systems: Mapping[str, DownstreamSystem],
    session: Session,
    since: date,
    until: date,
    *,
    invoices: bool = True,
    fields: StatusFields | None = None,
) -> list[Difference]:
    """Every difference for invoices dated (with ``invoices``, ORDERFLOW_SF_INVOICES) and
    orders effective in ``since..until``; ``fields``: the configured writeback names."""
    found = list(_invoices(gateway, systems.get("erp"), since, until)) if invoices else []
    found.extend(_orders(gateway, systems, session, since, until, fields or StatusFields()))
    return found


def _query(gateway: SalesforceGateway, soql: str) -> list[dict[str, Any]]:
    return [record for page in gateway.query_pages(soql) for record in page]


def _invoices(
    gateway: SalesforceGateway, erp: DownstreamSystem | None, since: date, until: date
) -> Iterable[Difference]:
    invoices = _query(
        gateway,
        "SELECT Id, DocumentNumber, TotalAmount, InvoiceDate, ERP_Document_Number__c, "
        "(SELECT Id, Product2Id, Quantity FROM InvoiceLines) FROM Invoice "
        f"WHERE Status = 'Posted' AND InvoiceDate >= {since.isoformat()} "
        f"AND InvoiceDate <= {until.isoformat()} ORDER BY InvoiceDate, Id",
    )
    failed = complete_children(gateway, invoices, "InvoiceLines")
    if failed:
        # Quantities compared from a first page of lines would report false differences.
        sf_id, reason = next(iter(failed.items()))
        raise RetriableError(f"invoice {sf_id}: {reason} (and {len(failed) - 1} more)")
    documents: dict[str, Document] | None = None
    if isinstance(erp, GuardedSystem) and erp.lists_documents:
        listed = erp.documents(since, until)
        documents = {d.source_id or f"?{d.number}": d for d in listed}
    by_id = {str(i["Id"]): i for i in invoices}
    for invoice in invoices:
        sf_id, number = str(invoice["Id"]), str(invoice.get("DocumentNumber") or "")
        written = invoice.get("ERP_Document_Number__c")
        document = documents.get(sf_id) if documents is not None else None
        if not written or (documents is not None and document is None):
            where = "none written back" if not written else f"the ERP does not list {written}"
            yield Difference(
                "invoice_without_erp_document", "erp", sf_id, number, str(written or ""), where
            )
            continue
        if document is None:
            continue
        yield from _compare(invoice, document)
    for key, document in (documents or {}).items():
        if key not in by_id:
            yield Difference(
                "erp_document_without_invoice",
                "erp",
                document.source_id or "",
                document.source_number or "",
                document.number,
                "no posted Salesforce invoice of the range has this document",
            )


def _compare(invoice: dict[str, Any], document: Document) -> Iterable[Difference]:
    sf_id, number = str(invoice["Id"]), str(invoice.get("DocumentNumber") or "")
    amount = float(invoice.get("TotalAmount") or 0.0)
    if document.amount is None or abs(amount - document.amount) > TOLERANCE:
        detail = f"Salesforce {amount:.2f}, ERP {document.amount}"
        yield Difference("amount_differs", "erp", sf_id, number, document.number, detail)
    children = invoice.get("InvoiceLines") or {}
    quantities: dict[str, float] = {}
    for line in children.get("records", []) if isinstance(children, dict) else []:
        product = str(line.get("Product2Id") or line.get("Id"))
        quantities[product] = quantities.get(product, 0.0) + float(line.get("Quantity") or 0)
    for product in sorted(set(quantities) | set(document.quantities)):
        ours, theirs = quantities.get(product), document.quantities.get(product)
        if ours is None or theirs is None or abs(ours - theirs) > TOLERANCE:
            detail = f"{product}: Salesforce {ours}, ERP {theirs}"
            yield Difference("quantity_differs", "erp", sf_id, number, document.number, detail)


def _orders(
    gateway: SalesforceGateway,
    systems: Mapping[str, DownstreamSystem],
    session: Session,
    since: date,
    until: date,
    fields: StatusFields,
) -> Iterable[Difference]:
    shown = fields.order_status
    orders = _query(
        gateway,
        f"SELECT Id, OrderNumber, {shown} FROM Order WHERE Status = 'Activated' "
        f"AND EffectiveDate >= {since.isoformat()} AND EffectiveDate <= {until.isoformat()} "
        "ORDER BY EffectiveDate, Id",
    )
    numbers = {str(o["Id"]): str(o.get("OrderNumber") or "") for o in orders}
    statuses = {str(o["Id"]): o.get(shown) for o in orders}
    plans = session.scalars(
        select(Plan).where(Plan.order_id.in_(list(numbers))).options(selectinload(Plan.tasks))
    ).all()
    planned = {p.order_id: p for p in plans}
    for order_id, number in numbers.items():
        plan = planned.get(order_id)
        if plan is None:
            detail = "activated in Salesforce, no plan in Orderflow"
            yield Difference("never_planned", "", order_id, number, "", detail)
            continue
        if statuses[order_id] != plan.status:
            detail = f"Salesforce {statuses[order_id] or 'nothing'}, Orderflow {plan.status}"
            yield Difference("status_differs", "", order_id, number, "", detail)
        for task in plan.tasks:
            if task.revision != plan.revision or task.system not in CHECKED_SYSTEMS:
                continue
            if task.state != StepState.COMPLETED:
                continue
            yield from _effect(systems.get(task.system), order_id, number, task.step_id, task)


def _effect(
    system: DownstreamSystem | None, order_id: str, number: str, step: str, task: Any
) -> Iterable[Difference]:
    name = str(task.system)
    if not task.external_ref:
        yield Difference("step_without_effect", name, order_id, number, "", f"{step}: no reference")
        return
    if system is None:
        return
    try:
        answer = system.status(task.external_ref)
    except RetriableError as exc:
        detail = f"{step}: cannot ask ({exc})"
        yield Difference("unchecked", name, order_id, number, task.external_ref, detail)
        return
    if answer.outcome is Outcome.FAILED:
        detail = f"{step}: {answer.message or answer.code}"
        yield Difference("step_without_effect", name, order_id, number, task.external_ref, detail)
