"""Record cases: hostile Orders in the emulator beside good ones; the daemon's answers.

A record case is a JSON file: ``{"order": {fields...}, "lines": [{"code": "PLAT-PRO",
fields...}], "products": [{Product2 fields}]}``. ``order`` fields override a good
activated order's; each line names a catalogue product by ``code`` (or a product the case
adds under ``products``, or ``null`` for none) and overrides a good line's fields; a field
whose value is the string ``"@100kB"`` becomes 100 kB of text, ``"@id:OBJECT"`` the id of
a record of that object. Every case's order and the good orders are activated in one org,
the real cycle (``daemon.cycle.run.run_cycle`` on the context ``orderflow run`` builds, the
default rules) runs until they settle, an operator completing manual steps as in the demo;
the answer is the Order's ``Fulfillment_Status__c`` and ``Fulfillment_Message__c``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import SETTLED, Catalogue, LocalWorld, order_header, order_line, seed_catalogue
from daemon import app
from daemon.cycle.run import run_cycle
from daemon.ops.demo import act_as_operator
from daemon.settings import DEFAULT_RULES, load_settings
from reliability.faults import environment
from salesforce.emulator import Emulator

BIG = "x" * 100_000
GOOD_ORDERS = 5


@dataclass(frozen=True)
class RecordAnswer:
    status: str
    message: str


def _value(emu: Emulator, value: Any) -> Any:
    if value == "@100kB":
        return BIG
    if isinstance(value, str) and value.startswith("@id:"):
        return emu.records(value[4:])[0]["Id"]
    return value


def insert_case(emu: Emulator, catalogue: Catalogue, case: Mapping[str, Any]) -> str:
    """Insert one case's order (Draft, then Activated, as a user would); its id."""
    rng = random.Random(1)
    for product in case.get("products", []):
        fields = {k: _value(emu, v) for k, v in product.items() if k != "price"}
        product_id = emu.insert("Product2", {"IsActive": True, **fields})
        entry = emu.insert(
            "PricebookEntry",
            {
                "Pricebook2Id": catalogue.pricebook_id,
                "Product2Id": product_id,
                "UnitPrice": product.get("price", 100.0),
                "IsActive": True,
            },
        )
        catalogue.products[str(fields["ProductCode"])] = {
            "Id": product_id,
            "entry": {"Id": entry, "UnitPrice": product.get("price", 100.0)},
        }
    header = order_header(catalogue, rng)
    header.update({k: _value(emu, v) for k, v in case.get("order", {}).items()})
    status = header.pop("Status")
    order_id = emu.insert("Order", header)
    for line in case.get("lines", []):
        code = _value(emu, line.get("code"))
        fields = order_line(catalogue, code) if code else order_line(catalogue, "PLAT-PRO")
        if not code:
            fields.pop("Product2Id")
            fields.pop("PricebookEntryId")
        fields.update({k: _value(emu, v) for k, v in line.items() if k != "code"})
        emu.insert("OrderItem", {**fields, "OrderId": order_id})
    emu.update("Order", order_id, {"Status": "Activated" if status == "Draft" else status})
    return order_id


def run_records(
    cases: Mapping[str, Path], workdir: Path, *, max_cycles: int = 40
) -> tuple[dict[str, RecordAnswer], dict[str, RecordAnswer]]:
    """Every case's answer by name, and the good orders' answers."""
    with LocalWorld(workdir) as world:
        emu = world.emu
        catalogue = seed_catalogue(emu)
        good = {
            f"good-{n}": insert_case(emu, catalogue, {"lines": [{"code": c} for c in codes]})
            for n, codes in enumerate(
                [("PLAT-PRO", "ADD-SSO"), ("PLAT-ENT", "PS-TRAIN"), ("PLAT-STD",),
                 ("SEATS-EXTRA", "PLAT-PRO", "PS-ONBOARD"), ("ADD-AUDIT", "PLAT-ENT")]
            )
        }  # fmt: skip
        ids = {name: insert_case(emu, catalogue, json.loads(path.read_text()))
               for name, path in cases.items()}  # fmt: skip
        env = world.env(DEFAULT_RULES, http_enabled="false")
        with environment(env):
            ctx = app.context(load_settings())
        skew = [timedelta(seconds=2)]
        ctx.clock = lambda: datetime.now(UTC) + skew[0]
        watched = {**ids, **good}
        for _ in range(max_cycles):
            run_cycle(ctx)
            act_as_operator(ctx.sessions, ctx.clock(), delay=timedelta())
            skew[0] += timedelta(seconds=1)
            if all(_answer(emu, i).status in SETTLED for i in watched.values()):
                break
        return (
            {name: _answer(emu, order_id) for name, order_id in ids.items()},
            {name: _answer(emu, order_id) for name, order_id in good.items()},
        )


def _answer(emu: Emulator, order_id: str) -> RecordAnswer:
    record = emu.get("Order", order_id)
    return RecordAnswer(
        str(record.get("Fulfillment_Status__c") or "not seen"),
        str(record.get("Fulfillment_Message__c") or ""),
    )
