"""``unmatched: hold`` (the default): an order with a line no rule matches sends nothing at
all until the line is fixed in Salesforce or the rules gain a rule; then it plans as usual."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import DEFAULT_RULES
from daemon.store.models import Plan, Task
from tests.integration.world import World, run_until_settled

pytestmark = pytest.mark.usefixtures("world")


def rules_without_services(tmp_path: Path) -> Path:
    """The default rules, where no rule matches the Services family (PS-TRAIN and such)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(DEFAULT_RULES.read_text().replace("Services", "Consulting"))
    return rules


def held_order(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    order = world.add_order("PLAT-PRO", "PS-TRAIN")
    ctx = world.context(monkeypatch, rules_file=rules_without_services(tmp_path))
    run_until_settled(ctx, world)
    assert world.order_statuses() == {order: "Fallout"}
    return order


def fix_product(world: World, order_id: str, code: str, family: str) -> None:
    """What an admin does in Salesforce: the product's family corrected, the order taken back
    to Draft and activated again."""
    (product,) = [p for p in world.emu.records("Product2") if p["ProductCode"] == code]
    world.emu.update("Product2", product["Id"], {"Family": family})
    world.emu.update("Order", order_id, {"Status": "Draft"})
    world.emu.update("Order", order_id, {"Status": "Activated"})


def test_an_order_with_an_unmatched_line_sends_nothing_and_says_why(
    world: World, monkeypatch, tmp_path
):
    order = held_order(world, monkeypatch, tmp_path)

    assert {n: s.stats()["requests"] for n, s in world.stubs.items()} == {
        "erp": 0,
        "billing": 0,
        "provisioning": 0,
    }, "not the ERP sales order, not the matched line's billing"
    shown = world.emu.get("Order", order)["Fulfillment_Message__c"]
    assert "no decomposition rule for product PS-TRAIN (line 2)" in shown


def test_a_held_order_is_planned_once_its_line_is_fixed_in_salesforce(
    world: World, monkeypatch, tmp_path
):
    order = held_order(world, monkeypatch, tmp_path)
    fix_product(world, order, "PS-TRAIN", "Consulting")
    ctx = world.context(monkeypatch, rules_file=rules_without_services(tmp_path))
    ctx.gateway.pacer.next_poll_at = None  # poll now, whatever the idle back-off says
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Completed"}
    (sales_order,) = [e.payload for e in world.stubs["erp"].effects]
    assert sorted(line["product_code"] for line in sales_order["lines"]) == [
        "PLAT-PRO",
        "PS-TRAIN",
    ]
    (engagement,) = [
        e.payload for e in world.stubs["provisioning"].effects if e.action == "engagements"
    ]
    assert engagement["service"] == "PS-TRAIN"


def test_a_held_order_is_planned_once_the_rules_gain_a_rule(world: World, monkeypatch, tmp_path):
    order = held_order(world, monkeypatch, tmp_path)
    ctx = world.context(monkeypatch, rules_file=DEFAULT_RULES)  # a restart with new rules
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Completed"}
    (engagement,) = [
        e.payload for e in world.stubs["provisioning"].effects if e.action == "engagements"
    ]
    assert engagement["service"] == "PS-TRAIN"
    with ctx.sessions() as session:
        plan = session.query(Plan).one()
        assert (plan.revision, plan.rules_digest) == (2, ctx.ruleset.digest)
        held = session.query(Task).filter(Task.revision == 1).one()
        assert held.state == "Discarded"
