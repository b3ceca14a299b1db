"""Amendments over the emulator and the stubs: change orders, changes in place, what every
system received and holds, what the Orders show."""

from __future__ import annotations

from daemon.cycle.run import run_cycle
from daemon.store.models import Plan, SourceRecord, Task, TaskEvent, Watermark
from orchestration.decompose import idempotency_key
from tests.integration.amend_world import (
    actions,
    change_order,
    effects,
    lines_of,
    no_duplicates,
    plan_of,
    poll_now,
)
from tests.integration.world import World, run_until_settled


def test_seats_added_mid_flight_change_what_ran_and_replace_what_had_not(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)  # the ERP order and the subscription are made; provisioning is next
    assert (actions(world, "erp"), actions(world, "provisioning")) == (["sales-orders"], [])
    (line,) = lines_of(world, order)

    change = change_order(world, order, {line["Id"]: 3})
    poll_now(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Superseded", change: "Completed"}
    assert actions(world, "erp") == ["sales-orders", "sales-order-changes"]
    (erp_change,) = effects(world, "erp", "sales-order-changes")
    assert erp_change["lines"] == [
        {
            "line_id": line["Id"],
            "product_code": "PLAT-PRO",
            "action": "Amend",
            "quantity": 8.0,
            "unit_price": 100.0,
        }
    ]
    assert actions(world, "billing") == ["subscriptions", "subscription-changes"]
    assert effects(world, "billing", "subscription-changes")[0]["quantity"] == 8.0
    (activation,) = effects(world, "provisioning")
    assert activation["seats"] == 8, "the activation had not started: sent once, amended"
    assert [a["seats"] for a in world.stubs["provisioning"].active()] == [8]
    assert [a["quantity"] for a in world.stubs["billing"].active()] == [8.0]
    assert no_duplicates(world)

    _, old_tasks = plan_of(ctx, order)
    (amended,) = [t for t in old_tasks if t.state == "Amended"]
    assert amended.step_id == f"license.provision@{line['Id']}"
    plan, tasks = plan_of(ctx, change)
    assert (plan.revision, plan.supersedes) == (2, order)
    (provision,) = [t for t in tasks if t.step_id == amended.step_id]
    assert provision.replaces_task_id == amended.id
    assert provision.idempotency_key == idempotency_key(change, provision.step_id, 2)
    assert provision.idempotency_key != amended.idempotency_key
    assert activation["key"] == provision.idempotency_key
    billing = next(t for t in tasks if t.step_id == f"subscription.billing@{line['Id']}")
    assert billing.revision == 2 and billing.state == "Completed", "kept, with its own key"
    assert billing.idempotency_key == idempotency_key(order, billing.step_id, 1)


def test_a_product_removed_after_provisioning_is_undone_once_everywhere(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    sso = next(li for li in lines_of(world, order) if li["Quantity"] == 5 and _code(world, li))
    keep = next(li for li in lines_of(world, order) if li["Id"] != sso["Id"])

    change = change_order(world, order, {sso["Id"]: -5})
    poll_now(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Superseded", change: "Completed"}
    deactivations = effects(world, "provisioning", "deactivations")
    stops = effects(world, "billing", "subscription-stops")
    credits = effects(world, "erp", "sales-order-changes")
    assert [d["order_item_id"] for d in deactivations] == [sso["Id"]]
    assert [s["order_item_id"] for s in stops] == [sso["Id"]]
    assert [c["lines"] for c in credits] == [
        [
            {
                "line_id": sso["Id"],
                "product_code": "ADD-SSO",
                "action": "Cancel",
                "quantity": 5.0,
                "unit_price": 100.0,
            }
        ]
    ]
    assert [a["order_item_id"] for a in world.stubs["provisioning"].active()] == [keep["Id"]]
    assert [a["order_item_id"] for a in world.stubs["billing"].active()] == [keep["Id"]]
    (erp_order,) = world.stubs["erp"].active()
    assert [li["line_id"] for li in erp_order["lines"]] == [keep["Id"]]
    assert no_duplicates(world)
    items = {r["Id"]: r.get("Fulfillment_Status__c") for r in lines_of(world, order)}
    assert items == {keep["Id"]: "Completed", sso["Id"]: "Cancelled"}

    with ctx.sessions() as session:
        done = {
            e.task.step_id: e.id
            for e in session.query(TaskEvent).join(Task).filter(TaskEvent.to_state == "Completed")
        }
    undone = {k.split("@")[0]: v for k, v in done.items() if "~undo" in k}
    assert set(undone) == {"license.provision", "subscription.billing"}
    assert undone["license.provision"] < undone["subscription.billing"], "in reverse order"


def test_cancelled_before_the_point_of_no_return_leaves_nothing_active(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO", "PS-ONBOARD")
    provisioning = world.stubs["provisioning"]
    provisioning.completion, provisioning.complete_after = "status", None  # never finishes
    ctx = world.context(monkeypatch)
    for _ in range(3):
        run_cycle(ctx)
    assert set(actions(world, "provisioning")) == {"activations", "engagements"}

    world.emu.update("Order", order, {"Status": "Cancelled"})
    poll_now(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Cancelled"}
    for name, stub in world.stubs.items():
        assert stub.active() == [], f"{name} still holds {stub.active()}"
    assert sorted(actions(world, "erp")) == ["sales-order-cancellations", "sales-orders"]
    assert sorted(actions(world, "billing")) == [
        "charge-refunds",
        "charges",
        "subscription-stops",
        "subscriptions",
    ]
    # Running at provisioning: canceled there, so no deprovisioning call was needed.
    assert sorted(actions(world, "provisioning")) == ["activations", "engagements"]
    assert {e.state for e in provisioning.effects} == {"canceled"}
    _, tasks = plan_of(ctx, order)
    states = {t.step_id.split("@")[0]: t.state for t in tasks if "~" not in t.step_id}
    assert states["license.provision"] == "Canceled"
    assert states["erp_order.booked"] == "Discarded"
    assert {t.state for t in tasks if "~undo" in t.step_id and "provision" in t.step_id} == {
        "Skipped"
    }
    assert no_duplicates(world)
    items = {r.get("Fulfillment_Status__c") for r in lines_of(world, order)}
    assert items == {"Cancelled"}


def test_cancelled_past_the_point_of_no_return_is_refused_for_that_line_and_flagged(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    platform, sso = sorted(lines_of(world, order), key=lambda li: not _code(world, li))[::-1]
    before = {name: len(stub.effects) for name, stub in world.stubs.items()}

    world.emu.update("Order", order, {"Status": "Cancelled"})
    poll_now(ctx)
    run_until_settled(ctx, world)

    shown = world.emu.get("Order", order)
    assert shown["Fulfillment_Status__c"] == "Completed"
    assert shown["Fulfillment_Message__c"] == (
        "line 1 (PLAT-PRO) is past its point of no return: cancellation refused"
    )
    items = {r["Id"]: r.get("Fulfillment_Status__c") for r in lines_of(world, order)}
    assert items == {platform["Id"]: "Fallout", sso["Id"]: "Cancelled"}
    # The rest went ahead: the add-on is undone; the platform stays active everywhere.
    assert [a["order_item_id"] for a in world.stubs["provisioning"].active()] == [platform["Id"]]
    assert [a["order_item_id"] for a in world.stubs["billing"].active()] == [platform["Id"]]
    new = {name: actions(world, name)[before[name] :] for name in world.stubs}
    assert new == {
        "erp": ["sales-order-changes"],
        "billing": ["subscription-stops"],
        "provisioning": ["deactivations"],
    }
    plan, _ = plan_of(ctx, order)
    assert plan.line_flags == {platform["Id"]: shown["Fulfillment_Message__c"]}


def test_the_same_amendment_seen_twice_changes_nothing_the_second_time(world: World, monkeypatch):
    order = world.add_order("ADD-AUDIT")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    (line,) = lines_of(world, order)
    change = change_order(world, order, {line["Id"]: 2})
    poll_now(ctx)
    run_until_settled(ctx, world)
    requests = {n: s.stats()["requests"] for n, s in world.stubs.items()}
    with ctx.sessions() as session:
        tasks_before = session.query(Task).count()
        revisions = {p.order_id: p.revision for p in session.query(Plan)}

    # A resync: everything read again as if never seen (the echo check cannot help).
    with ctx.sessions.begin() as session:
        session.query(SourceRecord).delete()
        session.query(Watermark).delete()
    ctx.gateway.pacer.next_poll_at = None
    report = run_cycle(ctx)

    assert report.polled >= 2
    assert report.planned == 0
    with ctx.sessions() as session:
        assert session.query(Task).count() == tasks_before
        assert {p.order_id: p.revision for p in session.query(Plan)} == revisions
    assert {n: s.stats()["requests"] for n, s in world.stubs.items()} == requests
    assert world.order_statuses() == {order: "Superseded", change: "Completed"}


def test_an_order_changed_in_place_before_it_is_fulfilled_is_reconciled(world: World, monkeypatch):
    order = world.add_order("PLAT-STD")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    (line,) = lines_of(world, order)

    world.emu.update("OrderItem", line["Id"], {"Quantity": 7})
    poll_now(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Completed"}
    assert [a["seats"] for a in world.stubs["provisioning"].active()] == [7]
    assert effects(world, "billing", "subscription-changes")[0]["quantity"] == 7.0
    plan, _ = plan_of(ctx, order)
    assert plan.revision == 2


def _code(world: World, line: dict[str, object]) -> bool:
    """True for an ADD-SSO line."""
    products = {p["Id"]: p["ProductCode"] for p in world.emu.records("Product2")}
    return products[line["Product2Id"]] == "ADD-SSO"
