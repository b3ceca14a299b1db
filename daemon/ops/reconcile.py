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
- ``step_without_effect``: planned but missing downstream: an activated Order's completed
  step has no effect at its system (no reference; a system that lists its documents does
  not list it; billing or provisioning, asked, does not know it); the ERP included;
- ``document_without_plan``: present downstream but not planned: a document a system lists
  for the range that no live step of Orderflow's made (never sent, or since undone: a
  Canceled step's effect still there), from every system the rules name that lists
  documents (the ERP's invoice documents are the invoice checks' above);
- ``amount_differs`` / ``quantity_differs`` by system: a step's document disagrees with the
  Order's lines (the order for an order-wide document, the line for a line's; for a change
  order, the original's lines with the changes applied, as its plan was made from them).
  A step's follow-ups (``STEP~amend.rN``, ``STEP~undo.rN``) change or undo its document
  and make none of their own. A provisioning activation counts seats of a license SKU:
  one line's document is compared by its count whatever the system calls the product.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from daemon.store.models import Plan, Task
from downstream.guard import GuardedSystem
from downstream.protocol import Document, DownstreamSystem, Outcome
from orchestration.amend import FOLLOW_UP
from orchestration.errors import RetriableError
from orchestration.states import StepState
from salesforce.children import complete_children
from salesforce.fields import StatusFields
from salesforce.gateway import SalesforceGateway

log = logging.getLogger(__name__)

#: Systems whose completed steps must have left an effect.
CHECKED_SYSTEMS = ("billing", "provisioning")
TOLERANCE = 0.005
INVOICES = "invoices"


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
        listed = [d for d in erp.documents(since, until) if d.kind in ("", INVOICES)]
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
        f"SELECT Id, OrderNumber, {shown}, (SELECT Id, Quantity, UnitPrice, "
        "Product2.ProductCode FROM OrderItems) FROM Order WHERE Status = 'Activated' "
        f"AND EffectiveDate >= {since.isoformat()} AND EffectiveDate <= {until.isoformat()} "
        "ORDER BY EffectiveDate, Id",
    )
    failed = complete_children(gateway, orders, "OrderItems")
    if failed:
        sf_id, reason = next(iter(failed.items()))
        raise RetriableError(f"order {sf_id}: {reason} (and {len(failed) - 1} more)")
    listings = _listings(systems, since, until)
    numbers = {str(o["Id"]): str(o.get("OrderNumber") or "") for o in orders}
    plans = session.scalars(
        select(Plan).where(Plan.order_id.in_(list(numbers))).options(selectinload(Plan.tasks))
    ).all()
    planned = {p.order_id: p for p in plans}
    for order in orders:
        order_id, number = str(order["Id"]), numbers[str(order["Id"])]
        plan = planned.get(order_id)
        if plan is None:
            detail = "activated in Salesforce, no plan in Orderflow"
            yield Difference("never_planned", "", order_id, number, "", detail)
            continue
        # Adopted at the cut-over: fulfilled by the legacy integrations, nothing sent, and
        # its status left as it was unless ORDERFLOW_CUTOVER_WRITEBACK wrote it.
        adopted = plan.adopted_at is not None and plan.adopted_revision == plan.revision
        if order.get(shown) != plan.status and not adopted:
            detail = f"Salesforce {order.get(shown) or 'nothing'}, Orderflow {plan.status}"
            yield Difference("status_differs", "", order_id, number, "", detail)
        lines = _snapshot_lines(plan.snapshot) if plan.supersedes else _lines(order)
        for task in plan.tasks:
            if task.revision != plan.revision or task.state != StepState.COMPLETED:
                continue
            if plan.adopted_at is not None and not task.external_ref:
                continue  # an adopted step: the legacy side made its effect, under its keys
            if not task.system or FOLLOW_UP in task.step_id:  # it alters its step's document
                continue
            listing = listings.get(task.system)
            if listing is None:
                if task.system in CHECKED_SYSTEMS:
                    system = systems.get(task.system)
                    yield from _effect(system, order_id, number, task.step_id, task)
                continue
            document = listing.get(task.external_ref or "")
            if document is None:
                ref = task.external_ref or ""
                where = f"{task.system} does not list {ref}" if ref else "no reference"
                detail = f"{task.step_id}: {where}"
                yield Difference("step_without_effect", task.system, order_id, number, ref, detail)
                continue
            line = document.source_id or ""
            scope = {line: lines[line]} if line in lines else lines  # else order-wide
            yield from _against_lines(task.system, order_id, number, document, scope)
    yield from _unplanned(session, listings)


def _listings(
    systems: Mapping[str, DownstreamSystem], since: date, until: date
) -> dict[str, dict[str, Document]]:
    """Each system that lists documents: its documents of the range by number."""
    found: dict[str, dict[str, Document]] = {}
    for name, system in systems.items():
        if isinstance(system, GuardedSystem) and system.lists_documents:
            found[name] = {d.number: d for d in system.documents(since, until)}
    return found


def _lines(order: dict[str, Any]) -> dict[str, tuple[str, float, float]]:
    """An Order's lines: id -> (product code, quantity, unit price)."""
    children = order.get("OrderItems") or {}
    records = children.get("records", []) if isinstance(children, dict) else []
    return {
        str(r["Id"]): (
            str((r.get("Product2") or {}).get("ProductCode") or r["Id"]),
            float(r.get("Quantity") or 0),
            float(r.get("UnitPrice") or 0),
        )
        for r in records
    }


def _snapshot_lines(snapshot: dict[str, Any] | None) -> dict[str, tuple[str, float, float]]:
    """A change order's lines as its plan was decomposed from them: the original Order's
    lines read from Salesforce with every change applied (a change order holds deltas)."""
    return {
        str(line["id"]): (
            str((line.get("product") or {}).get("ProductCode") or line["id"]),
            float(line["fields"].get("Quantity") or 0),
            float(line["fields"].get("UnitPrice") or 0),
        )
        for line in (snapshot or {}).get("lines", [])
    }


def _against_lines(
    system: str,
    order_id: str,
    number: str,
    document: Document,
    lines: Mapping[str, tuple[str, float, float]],
) -> Iterable[Difference]:
    amount = sum(quantity * price for _, quantity, price in lines.values())
    if document.amount is not None and abs(amount - document.amount) > TOLERANCE:
        detail = f"Salesforce {amount:.2f}, {system} {document.amount}"
        yield Difference("amount_differs", system, order_id, number, document.number, detail)
    if not document.quantities:
        return
    ours: dict[str, float] = {}
    for code, quantity, _ in lines.values():
        ours[code] = ours.get(code, 0.0) + quantity
    theirs_by_code = dict(document.quantities)
    if len(ours) == 1 and len(theirs_by_code) == 1:
        # One line's document: the system may name the product its own way (provisioning
        # activates a license SKU for a product code), so the counts are compared.
        theirs_by_code = {next(iter(ours)): next(iter(theirs_by_code.values()))}
    for code in sorted(set(ours) | set(theirs_by_code)):
        mine, theirs = ours.get(code), theirs_by_code.get(code)
        if mine is None or theirs is None or abs(mine - theirs) > TOLERANCE:
            detail = f"{code}: Salesforce {mine}, {system} {theirs}"
            yield Difference("quantity_differs", system, order_id, number, document.number, detail)


def _unplanned(
    session: Session, listings: Mapping[str, dict[str, Document]]
) -> Iterable[Difference]:
    for name, listing in listings.items():
        refs = set(
            session.scalars(
                select(Task.external_ref).where(
                    Task.system == name,
                    Task.external_ref.in_(list(listing)),
                    Task.state != StepState.CANCELED,  # undone: it should be gone
                )
            )
        )
        for document in listing.values():
            if document.number in refs or document.kind == INVOICES:
                continue
            yield Difference(
                "document_without_plan",
                name,
                document.source_id or "",
                document.source_number or "",
                document.number,
                f"{document.kind or 'document'} no live step of Orderflow's made (or undid)",
            )


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
