"""Helpers for the amendment scenarios: change orders in the emulated org, what systems hold."""

from __future__ import annotations

from typing import Any

from daemon.context import Context
from daemon.store.models import Plan, Task
from tests.integration.world import World


def lines_of(world: World, order_id: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in world.emu.records("OrderItem") if r["OrderId"] == order_id),
        key=lambda r: str(r["Id"]),
    )


def change_order(
    world: World,
    original_id: str,
    deltas: dict[str, float],
    *,
    new_codes: tuple[str, ...] = (),
    fields: dict[str, Any] | None = None,
) -> str:
    """A change order (Revenue Cloud style): lines pointing to the original lines with
    quantity deltas, and new lines of its own; activated at once."""
    original = world.emu.get("Order", original_id)
    reduction = all(q < 0 for q in deltas.values()) and not new_codes
    order_id = world.emu.insert(
        "Order",
        {
            "AccountId": original["AccountId"],
            "Status": "Draft",
            "EffectiveDate": original["EffectiveDate"],
            "Pricebook2Id": original["Pricebook2Id"],
            "OriginalOrderId": original_id,
            "IsReductionOrder": reduction,
            "Type": "Amendment",
        },
    )
    for line_id, delta in deltas.items():
        line = world.emu.get("OrderItem", line_id)
        world.emu.insert(
            "OrderItem",
            {
                "OrderId": order_id,
                "PricebookEntryId": line["PricebookEntryId"],
                "Quantity": delta,
                "UnitPrice": line["UnitPrice"],
                "ServiceDate": line["ServiceDate"],
                "EndDate": line["EndDate"],
                "OriginalOrderItemId": line_id,
                **(fields or {}),
            },
        )
    products = {p["ProductCode"]: p["Id"] for p in world.emu.records("Product2")}
    entries = {e["Product2Id"]: e["Id"] for e in world.emu.records("PricebookEntry")}
    for code in new_codes:
        world.emu.insert(
            "OrderItem",
            {
                "OrderId": order_id,
                "PricebookEntryId": entries[products[code]],
                "Quantity": 2,
                "UnitPrice": 50.0,
                "ServiceDate": original["EffectiveDate"],
                "EndDate": "2027-11-30",
            },
        )
    world.emu.update("Order", order_id, {"Status": "Activated"})
    return order_id


def poll_now(ctx: Context) -> None:
    """The next cycle polls, whatever the idle back-off says (a change was just made)."""
    ctx.gateway.pacer.next_poll_at = None


def effects(world: World, system: str, action: str | None = None) -> list[dict[str, Any]]:
    """What ``system`` received (each effect once), optionally of one action."""
    return [
        {"action": e.action, "key": e.key, **e.payload}
        for e in world.stubs[system].effects
        if action is None or e.action == action
    ]


def actions(world: World, system: str) -> list[str]:
    return [e.action for e in world.stubs[system].effects]


def plan_of(ctx: Context, order_id: str) -> tuple[Plan, list[Task]]:
    """A plan and all its tasks (every revision), detached for reading."""
    with ctx.sessions() as session:
        plan = session.query(Plan).filter(Plan.order_id == order_id).one()
        tasks = list(plan.tasks)
        session.expunge_all()
    return plan, tasks


def no_duplicates(world: World) -> bool:
    return all(stub.stats()["duplicates"] == 0 for stub in world.stubs.values())
