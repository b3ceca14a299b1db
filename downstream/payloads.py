"""What each default system receives, as pydantic models.

The rules file's mappings fill a task's payload; before it is sent, :func:`shape` checks it
against the model for its system and action and sends the model's JSON. A payload that does
not fit is a :class:`PayloadError` naming the field (the step becomes Fatally Failed with
that message), never a crash. Keys the model does not name (ids added by the legacy
remapping, for instance) are passed through unchanged.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestration.errors import RecordError

Text = Annotated[str, Field(min_length=1, max_length=255)]


class PayloadError(RecordError):
    """A task's payload does not fit what its system takes."""


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)


class _Dated(_Payload):
    @model_validator(mode="after")
    def _end_after_start(self) -> _Dated:
        start, end = getattr(self, "start_date", None), getattr(self, "end_date", None)
        if start is not None and end is not None and end < start:
            raise ValueError("end_date is before start_date")
        return self


# -- ERP -----------------------------------------------------------------------------------
class ErpOrderLine(_Dated):
    line_id: Text
    product_code: Text
    quantity: float
    unit_price: float = Field(ge=0)
    start_date: date | None = None
    end_date: date | None = None


class ErpSalesOrder(_Payload):
    """One sales order per commercial order (many lines into one request)."""

    order_number: Text
    salesforce_order_id: Text
    account: Text
    effective_date: date
    lines: list[ErpOrderLine] = Field(min_length=1)  # an order without lines is fallout


class ErpInvoiceLine(_Payload):
    line_id: Text
    product: str | None = None
    quantity: float
    amount: float
    order_item_id: str | None = None


class ErpInvoiceTransfer(_Payload):
    """A posted Salesforce invoice, to be booked in the ERP (which returns its number)."""

    invoice_id: Text
    invoice_number: Text
    account: str | None = None
    order_id: str | None = None
    invoice_date: date
    due_date: date | None = None
    total_amount: float
    lines: list[ErpInvoiceLine] = Field(min_length=1)


# -- Billing -------------------------------------------------------------------------------
class BillingSubscription(_Dated):
    """Start the subscription and its invoice schedule."""

    order_item_id: Text
    account: Text
    product_code: Text
    quantity: float = Field(gt=0)
    unit_price_cents: int = Field(ge=0)
    start_date: date
    end_date: date | None = None


class BillingCharge(_Payload):
    """A one-time charge (services)."""

    order_item_id: Text
    account: Text
    product_code: Text
    amount_cents: int = Field(ge=0)
    quantity: float = Field(gt=0)


# -- Provisioning --------------------------------------------------------------------------
class ProvisioningActivation(_Payload):
    """Activate licenses for a tenant."""

    order_item_id: Text
    tenant: Text
    license_sku: Text
    seats: int = Field(ge=1)
    start_date: date


class ProvisioningEngagement(_Payload):
    order_item_id: Text
    customer: Text
    service: Text
    days: int = Field(ge=1)


#: (system, action) -> the model its payload must fit.
SHAPES: dict[tuple[str, str], type[_Payload]] = {
    ("erp", "sales-orders"): ErpSalesOrder,
    ("erp", "invoices"): ErpInvoiceTransfer,
    ("billing", "subscriptions"): BillingSubscription,
    ("billing", "charges"): BillingCharge,
    ("provisioning", "activations"): ProvisioningActivation,
    ("provisioning", "engagements"): ProvisioningEngagement,
}


def shapes_for(system: str) -> dict[str, type[_Payload]]:
    """The models of one system's actions, by action."""
    return {action: model for (name, action), model in SHAPES.items() if name == system}


def shape(model: type[_Payload], payload: dict[str, Any]) -> dict[str, Any]:
    """The payload checked against ``model`` and as it is sent; PayloadError names the field."""
    try:
        checked = model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or model.__name__
        message = str(err["msg"]).removeprefix("Value error, ")
        count = exc.error_count()
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise PayloadError(f"payload field {where!r}: {message}{more}") from None
    return checked.model_dump(mode="json")
