"""A small, deterministic demo org of a software company."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from salesforce.emulator.emulator import Emulator
from salesforce.emulator.ids import make_id
from salesforce.emulator.values import format_datetime

_ACCOUNTS = [
    ("Acme Robotics", "Manufacturing", "US"),
    ("Globex Logistics", "Transportation", "DE"),
    ("Initech Software", "Technology", "US"),
    ("Umbrella Health", "Healthcare", "GB"),
    ("Stark Energy", "Energy", "US"),
    ("Wayne Financial", "Banking", "US"),
    ("Tyrell Biotech", "Biotechnology", "JP"),
    ("Cyberdyne Systems", "Technology", "FR"),
    ("Soylent Foods", "Food & Beverage", "NL"),
    ("Wonka Confections", "Retail", "CH"),
]
# (name, code, family, list price)
_PRODUCTS = [
    ("Platform Enterprise (annual)", "PLAT-ENT", "Subscription", 48_000.0),
    ("Platform Professional (annual)", "PLAT-PRO", "Subscription", 18_000.0),
    ("Platform Starter (annual)", "PLAT-STD", "Subscription", 6_000.0),
    ("Single Sign-On Add-on", "ADD-SSO", "License", 3_600.0),
    ("Audit Log Add-on", "ADD-AUDIT", "License", 2_400.0),
    ("Extra Seats (10-pack)", "SEATS-EXTRA", "License", 1_200.0),
    ("Onboarding Package", "PS-ONBOARD", "Services", 7_500.0),
    ("Admin Training (per day)", "PS-TRAIN", "Services", 1_800.0),
]
_SUBSCRIPTIONS = [p for p in _PRODUCTS if p[2] == "Subscription"]
_EXTRAS = [p for p in _PRODUCTS if p[2] != "Subscription"]


def seed_demo_org(emu: Emulator, orders: int = 50, seed: int = 7) -> None:
    """Insert Accounts, Product2, a standard Pricebook2 with entries, and ``orders``
    activated Orders of 1-5 OrderItems each. The same seed gives the same data."""
    rng = random.Random(seed)
    account_ids = emu.insert_many(
        "Account",
        [
            {"Name": name, "Industry": industry, "BillingCountry": country, "Type": "Customer"}
            for name, industry, country in _ACCOUNTS
        ],
    )
    product_ids = emu.insert_many(
        "Product2",
        [
            {"Name": name, "ProductCode": code, "Family": family, "IsActive": True}
            for name, code, family, _ in _PRODUCTS
        ],
    )
    pricebook_id = emu.insert(
        "Pricebook2", {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True}
    )
    entry_ids = emu.insert_many(
        "PricebookEntry",
        [
            {
                "Pricebook2Id": pricebook_id,
                "Product2Id": product_id,
                "UnitPrice": price,
                "IsActive": True,
                "Name": name,
                "ProductCode": code,
            }
            for product_id, (name, code, _, price) in zip(product_ids, _PRODUCTS, strict=True)
        ],
    )
    catalog = {
        code: (product_id, entry_id, price)
        for product_id, entry_id, (_, code, _, price) in zip(
            product_ids, entry_ids, _PRODUCTS, strict=True
        )
    }
    base = date(2026, 1, 5)
    headers: list[dict[str, Any]] = []
    lines: list[list[dict[str, Any]]] = []
    for n in range(orders):
        start = base + timedelta(days=rng.randrange(0, 300))
        end = start + timedelta(days=365 * rng.choice((1, 1, 2, 3)) - 1)
        activated = datetime.combine(start, time(9), tzinfo=UTC) + timedelta(
            minutes=rng.randrange(0, 600)
        )
        subscription = rng.choice(_SUBSCRIPTIONS)
        picks = [subscription, *rng.sample(_EXTRAS, rng.randrange(0, 5))]
        headers.append(
            {
                "AccountId": rng.choice(account_ids),
                "Pricebook2Id": pricebook_id,
                "Status": "Activated",
                "StatusCode": "Activated",
                "EffectiveDate": start.isoformat(),
                "EndDate": end.isoformat(),
                "Type": "New",
                "ActivatedDate": format_datetime(activated),
                "Description": f"Demo order {n + 1}: {subscription[0]}",
            }
        )
        order_lines = []
        for _, code, family, price in picks:
            quantity = float(rng.choice((1, 1, 2, 5, 10)) if family == "License" else 1)
            if family == "Services":
                quantity = float(rng.randrange(1, 4))
            product_id, entry_id, _ = catalog[code]
            order_lines.append(
                {
                    "Product2Id": product_id,
                    "PricebookEntryId": entry_id,
                    "Quantity": quantity,
                    "UnitPrice": price,
                    "ServiceDate": start.isoformat(),
                    "EndDate": (start if family == "Services" else end).isoformat(),
                }
            )
        lines.append(order_lines)
    order_ids = emu.insert_many("Order", headers)
    items = [
        {**line, "OrderId": order_id}
        for order_id, order_lines in zip(order_ids, lines, strict=True)
        for line in order_lines
    ]
    emu.insert_many("OrderItem", items)


# Key prefixes of the CPQ objects in the demo org (custom objects' prefixes differ per org).
DEMO_CPQ_PREFIXES = {
    "SBQQ__Quote__c": "a0Q",
    "SBQQ__QuoteLine__c": "a0R",
    "SBQQ__Subscription__c": "a1X",
}


def seed_migrated_orders(
    emu: Emulator, orders: int, *, unmapped: int = 1, seed: int = 11
) -> list[tuple[str, str, str, str]]:
    """Activated orders migrated from Salesforce CPQ, on :func:`seed_demo_org`'s catalogue.

    Each order names its CPQ quote (``SBQQ__Quote__c``); each line its quote line and its own
    CPQ subscription id (``Legacy_CPQ_Id__c``), and amends a subscription of the customer's
    CPQ-era contract (``SBQQ__Subscription__c``), which the migration turned into an Asset.
    Returns the migration's crosswalk, rows of (legacy_id, legacy_type, standard_id,
    standard_type): quote lines to OrderItems and amended subscriptions to Assets, leaving
    out the amended subscriptions of the last ``unmapped`` orders, on purpose.
    """
    rng = random.Random(seed)
    prefixes = DEMO_CPQ_PREFIXES
    accounts = [a["Id"] for a in emu.records("Account")]
    pricebook = next(p["Id"] for p in emu.records("Pricebook2"))
    entries = {e["Product2Id"]: e for e in emu.records("PricebookEntry")}
    products = [p for p in emu.records("Product2") if p.get("Family") == "Subscription"]
    start, end = date(2026, 12, 1), date(2027, 11, 30)
    plans = []
    for n in range(orders):
        product = rng.choice(products)
        account = rng.choice(accounts)
        old = make_id(prefixes["SBQQ__Subscription__c"], 9000 + n)
        asset = {"Name": f"{product['Name']} (migrated)", "AccountId": account,
                 "Product2Id": product["Id"], "Quantity": 1.0, "Status": "Installed"}  # fmt: skip
        plans.append((n, product, account, old, asset))
    asset_ids = emu.insert_many("Asset", [p[4] for p in plans])
    order_ids = emu.insert_many(
        "Order",
        [
            {
                "AccountId": account,
                "Pricebook2Id": pricebook,
                "Status": "Activated",
                "EffectiveDate": start.isoformat(),
                "EndDate": end.isoformat(),
                "Type": "New",
                "SBQQ__Quote__c": make_id(prefixes["SBQQ__Quote__c"], 9000 + n),
                "Description": f"Migrated from CPQ: renewal of {product['Name']}",
            }
            for n, product, account, _, _ in plans
        ],
    )
    items = []
    for order_id, (n, product, _, old, _) in zip(order_ids, plans, strict=True):
        entry = entries[product["Id"]]
        items.append(
            {
                "OrderId": order_id,
                "Product2Id": product["Id"],
                "PricebookEntryId": entry["Id"],
                "Quantity": 1.0,
                "UnitPrice": entry["UnitPrice"],
                "ServiceDate": start.isoformat(),
                "EndDate": end.isoformat(),
                "SBQQ__QuoteLine__c": make_id(prefixes["SBQQ__QuoteLine__c"], 9000 + n),
                "SBQQ__Subscription__c": old,
                "Legacy_CPQ_Id__c": make_id(prefixes["SBQQ__Subscription__c"], 9500 + n),
            }
        )
    line_ids = emu.insert_many("OrderItem", items)
    rows = [
        (item["SBQQ__QuoteLine__c"], "SBQQ__QuoteLine__c", line_id, "OrderItem")
        for item, line_id in zip(items, line_ids, strict=True)
    ]
    mapped = plans[: max(0, orders - unmapped)]
    rows += [(old, "SBQQ__Subscription__c", asset_ids[n], "Asset") for n, _, _, old, _ in mapped]
    return rows


def seed_invoices(emu: Emulator, every: int = 2, status: str = "Posted") -> list[str]:
    """A posted Invoice (with a line per order line) for every ``every``-th Order, dated on
    the order's start; Invoices cannot be created through the API, so this goes direct."""
    lines_by_order: dict[str, list[dict[str, Any]]] = {}
    for line in emu.records("OrderItem"):
        lines_by_order.setdefault(str(line["OrderId"]), []).append(line)
    invoice_ids: list[str] = []
    for order in emu.records("Order")[::every]:
        lines = lines_by_order.get(str(order["Id"]), [])
        if not lines:
            continue
        invoice_id = emu.insert(
            "Invoice",
            {
                "Status": status,
                "BillingAccountId": order["AccountId"],
                "ReferenceEntityId": order["Id"],
                "InvoiceDate": order["EffectiveDate"],
                "TotalAmount": round(sum(float(li.get("TotalPrice") or 0) for li in lines), 2),
            },
        )
        emu.insert_many(
            "InvoiceLine",
            [
                {
                    "InvoiceId": invoice_id,
                    "Product2Id": li["Product2Id"],
                    "Quantity": li["Quantity"],
                    "ChargeAmount": li.get("TotalPrice"),
                    "ReferenceEntityItemId": li["Id"],
                }
                for li in lines
            ],
        )
        invoice_ids.append(invoice_id)
    return invoice_ids
