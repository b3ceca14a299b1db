"""Builders of polled records for unit tests."""

from __future__ import annotations

from typing import Any

from orchestration.records import Order

PRODUCTS = {
    "PLAT-ENT": ("Subscription", "Platform Enterprise"),
    "ADD-SSO": ("License", "Single sign-on add-on"),
    "PS-ONBOARD": ("Services", "Onboarding package"),
    "MYSTERY": ("Hardware", "Unknown box"),
}


def order_record(*codes: str, order_id: str = "801000000000001AAA", **fields: Any) -> dict:
    """An Order row as the poller reads it, one line per product code."""
    lines = []
    for n, code in enumerate(codes, start=1):
        family, name = PRODUCTS[code]
        lines.append(
            {
                "attributes": {"type": "OrderItem"},
                "Id": f"802000000000{n:03d}AAA",
                "Product2Id": f"01t000000000{n:03d}AAA",
                "Quantity": 10.0 * n,
                "UnitPrice": 99.5,
                "ServiceDate": "2026-12-01",
                "EndDate": "2027-11-30",
                "Product2": {"attributes": {}, "ProductCode": code, "Family": family, "Name": name},
            }
        )
    record = {
        "attributes": {"type": "Order"},
        "Id": order_id,
        "OrderNumber": "00000100",
        "AccountId": "001000000000001AAA",
        "Status": "Activated",
        "EffectiveDate": "2026-12-01",
        "SystemModstamp": "2026-11-27T10:00:00.000+0000",
        "OrderItems": {"totalSize": len(lines), "done": True, "records": lines},
    }
    record.update(fields)
    return record


def order(*codes: str, **fields: Any) -> Order:
    return Order.from_record(order_record(*codes, **fields))
