"""An amendment that names the line it changes by a legacy CPQ subscription id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.commands.main import main
from daemon.cycle.run import run_cycle
from remap.ids import to15, to18
from tests.integration.amend_world import actions, effects, lines_of, no_duplicates, poll_now
from tests.integration.world import World, run_until_settled

PREFIXES = {"SBQQ__Subscription__c": "a1X", "SBQQ__QuoteLine__c": "a0R", "SBQQ__Quote__c": "a0Q"}
REMAP = {
    "remap_prefixes": json.dumps(PREFIXES),
    "remap_reference_fields": '["OrderItem.SBQQ__Subscription__c"]',
}


def legacy_amendment(world: World, order: str, line: dict[str, Any], subscription: str) -> str:
    """The amendment as a CPQ-built integration sends it: no OriginalOrderId, no
    OriginalOrderItemId, only the legacy subscription and the delta (+2); activated."""
    change = world.emu.insert(
        "Order",
        {
            "AccountId": world.emu.get("Order", order)["AccountId"],
            "Status": "Draft",
            "EffectiveDate": "2026-12-01",
            "Pricebook2Id": world.emu.get("Order", order)["Pricebook2Id"],
        },
    )
    world.emu.insert(
        "OrderItem",
        {
            "OrderId": change,
            "PricebookEntryId": line["PricebookEntryId"],
            "Quantity": 2,
            "UnitPrice": line["UnitPrice"],
            "SBQQ__Subscription__c": subscription,
        },
    )
    world.emu.update("Order", change, {"Status": "Activated"})
    return change


def test_an_amendment_naming_a_legacy_subscription_changes_the_line_it_maps_to(
    world: World, monkeypatch, tmp_path: Path
):
    order = world.add_order("ADD-AUDIT")
    (line,) = lines_of(world, order)
    ctx = world.context(monkeypatch, **REMAP)
    run_cycle(ctx)
    legacy = to18("a1X3Kp000000042")
    crosswalk = tmp_path / "cw.csv"
    crosswalk.write_text(
        "legacy_id,legacy_type,standard_id,standard_type\n"
        f"{legacy},SBQQ__Subscription__c,{line['Id']},OrderItem\n"
    )
    assert main(["remap", "import", str(crosswalk)]) == 0
    # A legacy subscription id of 15 characters: it maps all the same.
    change = legacy_amendment(world, order, line, to15(legacy))
    poll_now(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Superseded", change: "Completed"}
    assert actions(world, "billing") == ["subscriptions", "subscription-changes"]
    (amended,) = effects(world, "billing", "subscription-changes")
    assert (amended["order_item_id"], amended["quantity"]) == (line["Id"], 7.0)
    assert [a["seats"] for a in world.stubs["provisioning"].active()] == [7]
    assert no_duplicates(world)


def test_a_change_order_held_for_its_legacy_id_is_released_as_a_change_order(
    world: World, monkeypatch, tmp_path: Path
):
    order = world.add_order("ADD-AUDIT")
    (line,) = lines_of(world, order)
    ctx = world.context(monkeypatch, **REMAP)
    run_until_settled(ctx, world)
    legacy = to18("a1X3Kp000000043")
    change = legacy_amendment(world, order, line, legacy)
    poll_now(ctx)
    run_cycle(ctx)
    assert world.order_statuses()[change] == "Fallout", "held: the subscription is unmapped"

    crosswalk = tmp_path / "cw.csv"
    crosswalk.write_text(
        "legacy_id,legacy_type,standard_id,standard_type\n"
        f"{legacy},SBQQ__Subscription__c,{line['Id']},OrderItem\n"
    )
    assert main(["remap", "import", str(crosswalk)]) == 0
    run_until_settled(ctx, world)

    # Released through the change-order path: the delta, not the line again in full.
    assert world.order_statuses() == {order: "Superseded", change: "Completed"}
    assert actions(world, "billing") == ["subscriptions", "subscription-changes"]
    (amended,) = effects(world, "billing", "subscription-changes")
    assert (amended["order_item_id"], amended["quantity"]) == (line["Id"], 7.0)
    assert [a["seats"] for a in world.stubs["provisioning"].active()] == [7]
    assert no_duplicates(world)
