"""A small, deterministic demo org of a software company."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from salesforce.emulator.emulator import Emulator
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
