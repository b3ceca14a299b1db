"""Payload models: what each default system receives, and a clear error naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from downstream.payloads import (
    BillingSubscription,
    ErpInvoiceTransfer,
    ErpSalesOrder,
    PayloadError,
    ProvisioningActivation,
    shape,
    shapes_for,
)

SALES_ORDER: dict[str, Any] = {
    "order_number": "00000100",
    "salesforce_order_id": "8015g0000000001AAA",
    "account": "0015g0000000001AAA",
    "effective_date": "2026-12-01",
    "lines": [
        {
            "line_id": "8025g0000000001AAA",
            "product_code": "PLAT-ENT",
            "quantity": 5.0,
            "unit_price": 100.0,
            "start_date": "2026-12-01",
            "end_date": "2027-11-30",
        }
    ],
}


def test_a_sales_order_is_sent_as_its_model_says():
    assert shape(ErpSalesOrder, SALES_ORDER) == SALES_ORDER


def test_keys_the_model_does_not_name_pass_through():
    with_legacy = {**SALES_ORDER, "legacy_quote_id": "a0B000000000001"}
    assert shape(ErpSalesOrder, with_legacy)["legacy_quote_id"] == "a0B000000000001"


@pytest.mark.parametrize(
    ("model", "payload", "message"),
    [
        (
            ErpSalesOrder,
            {**SALES_ORDER, "lines": [{**SALES_ORDER["lines"][0], "product_code": None}]},
            "payload field 'lines.0.product_code': Input should be a valid string",
        ),
        (
            ErpSalesOrder,
            {**SALES_ORDER, "effective_date": "soon"},
            "payload field 'effective_date': Input should be a valid date",
        ),
        (
            ProvisioningActivation,
            {
                "order_item_id": "802A",
                "tenant": "001A",
                "license_sku": "LIC-PRO",
                "seats": 0,
                "start_date": "2026-12-01",
            },
            "payload field 'seats': Input should be greater than or equal to 1",
        ),
        (
            BillingSubscription,
            {
                "order_item_id": "802A",
                "account": "001A",
                "product_code": "PLAT-PRO",
                "quantity": 1,
                "unit_price_cents": 100,
                "start_date": "2026-12-01",
                "end_date": "2026-01-01",
            },
            "payload field 'BillingSubscription': end_date is before start_date",
        ),
    ],
)
def test_a_payload_that_does_not_fit_names_the_field(model, payload, message):
    with pytest.raises(PayloadError) as info:
        shape(model, payload)
    assert str(info.value).startswith(message)


def test_several_errors_are_counted_after_the_first():
    with pytest.raises(PayloadError, match=r"\(and 2 more\)$"):
        shape(ProvisioningActivation, {"order_item_id": "802A", "tenant": "001A"})


def test_an_invoice_transfer_needs_a_line():
    invoice = {
        "invoice_id": "3tt5g0000000001AAA",
        "invoice_number": "INV-0000001",
        "invoice_date": "2026-12-01",
        "total_amount": 10.0,
        "lines": [],
    }
    with pytest.raises(PayloadError, match="'lines'"):
        shape(ErpInvoiceTransfer, invoice)


def test_each_default_system_has_its_models():
    assert set(shapes_for("erp")) == {"sales-orders", "invoices"}
    assert set(shapes_for("billing")) == {"subscriptions", "charges"}
    assert set(shapes_for("provisioning")) == {"activations", "engagements"}
    assert shapes_for("crm") == {}
