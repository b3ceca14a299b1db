"""A resync over 10,000 emulator orders: the right counts, and nothing planned twice.

The rules here make one ERP callout per order (its payload names the order's description,
so a user's edit changes the plan): the test is about the resync, and ten thousand plans
of the default rules' fifteen steps would spend its minute in the store. The finer
scenarios (a full run, dispatch, duplicates at the stubs) are in test_resync.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.ops.resync import ResyncSpec, resync
from daemon.store.models import Plan, Task
from salesforce.emulator.seed import seed_demo_org
from tests.integration.world import World

ORDERS = 10_000
EDITED = 25
RULES = """\
version: "resync-scale-1"
systems: [erp]
unmatched: continue  # no line rules: the lines are fallout, the ERP order still goes
rules:
  - name: erp_order
    scope: order
    steps:
      - key: sales_order
        kind: callout
        system: erp
        action: sales-orders
        title: "ERP: create sales order"
        payload:
          order_number: {from: order.OrderNumber}
          salesforce_order_id: {from: order.Id}
          description: {from: order.Description}
"""


@pytest.mark.slow
def test_a_resync_of_ten_thousand_orders_counts_right_and_plans_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed_demo_org(world.emu, orders=ORDERS)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    ctx = world.context(monkeypatch, rules_file=rules)
    today = datetime.now(UTC).date()
    spec = ResyncSpec(today - timedelta(days=1), today, objects=("Order",))

    first = resync(ctx, spec).objects["Order"]
    assert (first.read, first.new, first.planned) == (ORDERS, ORDERS, ORDERS)
    assert (first.unchanged, first.changed, first.deleted) == (0, 0, 0)
    assert first.would_send == {"erp": ORDERS}

    edited = [o["Id"] for o in world.emu.records("Order")[:: ORDERS // EDITED]]
    for order_id in edited:
        world.emu.update("Order", order_id, {"Description": "corrected by a user"})
    second = resync(ctx, spec).objects["Order"]
    assert (second.read, second.changed, second.unchanged) == (ORDERS, EDITED, ORDERS - EDITED)
    assert (second.new, second.planned) == (0, 0)
    assert second.reorchestrated == EDITED
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Plan)) == ORDERS
        revised = set(session.scalars(select(Plan.order_id).where(Plan.revision == 2)))
        keys = session.scalar(select(func.count(func.distinct(Task.idempotency_key))))
        tasks = session.scalar(select(func.count()).select_from(Task))
    assert revised == set(edited)
    assert keys == tasks  # every task its own key: nothing the daemon could send twice
    # Nothing was sent by either resync: dispatch is the daemon's.
    assert all(stub.stats()["requests"] == 0 for stub in world.stubs.values())
