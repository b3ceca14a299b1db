"""The local world for integration tests: an emulated org, stub systems, a daemon context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon import app
from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.ops.demo import SYSTEMS, act_as_operator, demo_environment
from daemon.settings import load_settings
from downstream.stubs import StubSystem
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org

SETTLED = {"Completed", "Fallout", "Cancelled", "Superseded"}


@dataclass
class World:
    emu: Emulator
    stubs: dict[str, StubSystem]
    workdir: Path

    def context(self, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Context:
        """A daemon context built from ORDERFLOW_* variables, exactly as `orderflow run` does."""
        for name, value in demo_environment(self.emu, self.stubs, self.workdir).items():
            if name.startswith("ORDERFLOW_"):
                monkeypatch.setenv(name, value)
        for name, value in settings.items():
            monkeypatch.setenv(f"ORDERFLOW_{name.upper()}", str(value))
        ctx = app.context(load_settings())
        # Poll windows end at whole seconds before "now"; a clock a little ahead lets one
        # cycle see what the test wrote a moment ago (the daemon would see it a cycle later).
        ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=2)
        return ctx

    def order_statuses(self) -> dict[str, Any]:
        return {r["Id"]: r.get("Fulfillment_Status__c") for r in self.emu.records("Order")}

    def add_order(self, *codes: str, status: str = "Activated") -> str:
        """An order with one line per product code, from the seeded catalogue."""
        if not self.emu.records("Product2"):
            seed_demo_org(self.emu, orders=0)
        products = {p["ProductCode"]: p for p in self.emu.records("Product2")}
        entries = {e["Product2Id"]: e for e in self.emu.records("PricebookEntry")}
        account = self.emu.records("Account")[0]["Id"]
        order_id = self.emu.insert(
            "Order",
            {
                "AccountId": account,
                "Status": "Draft",
                "EffectiveDate": "2026-12-01",
                "Pricebook2Id": next(iter(entries.values()))["Pricebook2Id"],
            },
        )
        for code in codes:
            product = products[code]
            self.emu.insert(
                "OrderItem",
                {
                    "OrderId": order_id,
                    "Product2Id": product["Id"],
                    "PricebookEntryId": entries[product["Id"]]["Id"],
                    "Quantity": 5,
                    "UnitPrice": 100.0,
                    "ServiceDate": "2026-12-01",
                    "EndDate": "2027-11-30",
                },
            )
        self.emu.update("Order", order_id, {"Status": status})
        return order_id


def run_until_settled(ctx: Context, world: World, cycles: int = 20) -> int:
    """Run cycles until every order shows a settled status; the number of cycles run.

    Between cycles the clock moves a second on (pauses and scheduled steps come due) and an
    operator completes the manual tasks, as in the demo.
    """
    skew = [timedelta()]
    clock = ctx.clock
    ctx.clock = lambda: clock() + skew[0]
    for n in range(1, cycles + 1):
        run_cycle(ctx)
        act_as_operator(ctx.sessions, ctx.clock(), delay=timedelta())
        skew[0] += timedelta(seconds=1)
        if all(s in SETTLED for s in world.order_statuses().values()):
            return n
    raise AssertionError(f"orders not settled after {cycles} cycles: {world.order_statuses()}")


def run_until_completed(ctx: Context, world: World, *orders: str) -> None:
    """Run cycles (the clock a second on each, manual steps done) until ``orders`` settle:
    adopted orders show nothing in Salesforce, so run_until_settled would wait for ever."""
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]
    for _ in range(20):
        now[0] += timedelta(seconds=1)
        run_cycle(ctx)
        act_as_operator(ctx.sessions, ctx.clock(), delay=timedelta())
        statuses = world.order_statuses()
        if all(statuses[o] in SETTLED for o in orders):
            return
    raise AssertionError(f"not settled after 20 cycles: {world.order_statuses()}")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    emu = Emulator(tmp_path / "salesforce")
    emu.start()
    stubs = {name: StubSystem(name, token=f"{name}-secret-token") for name in SYSTEMS}
    for stub in stubs.values():
        stub.start()
    yield World(emu, stubs, tmp_path)
    for stub in stubs.values():
        stub.stop()
    emu.stop()
