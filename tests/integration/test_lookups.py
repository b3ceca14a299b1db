"""An Order whose AccountId holds another object's id is Fallout with a reason, through the
real poll, dispatch and writeback; nothing of it is sent."""

from __future__ import annotations

from daemon.cycle.run import run_cycle
from daemon.store.models import Task
from tests.integration.test_salesforce_support import force_poll
from tests.integration.world import World, run_until_settled


def test_an_order_with_an_account_id_of_the_wrong_object_is_fallout_with_a_reason(
    world: World, monkeypatch
):
    good = world.add_order("PLAT-PRO")
    bad = world.add_order("PLAT-PRO", "ADD-SSO")
    account = world.emu.get("Order", bad)["AccountId"]
    contract = world.emu.insert(
        "Contract", {"AccountId": account, "StartDate": "2026-12-01", "ContractTerm": 12}
    )
    world.emu.update("Order", bad, {"AccountId": contract})
    ctx = world.context(monkeypatch)

    run_until_settled(ctx, world)

    assert world.order_statuses() == {good: "Completed", bad: "Fallout"}
    message = world.emu.get("Order", bad)["Fulfillment_Message__c"]
    assert f"Order.AccountId {contract} is the id of a Contract (key prefix 800)" in message
    assert "not of an Account (001)" in message
    with ctx.sessions() as session:
        tasks = session.query(Task).join(Task.plan).filter(Task.plan.has(order_id=bad)).all()
    assert [(t.step_id, t.state) for t in tasks] == [("fallout.lookup.AccountId", "Fatally Failed")]
    bad_number = world.emu.get("Order", bad)["OrderNumber"]
    for stub in world.stubs.values():
        sent = [e.payload for e in stub.effects]
        assert not any(contract in str(p) or bad_number in str(p) for p in sent), stub.name

    # Changed, but still another object's id: still held.
    world.emu.update("Order", bad, {"Description": "rush"})
    force_poll(ctx)
    run_cycle(ctx)
    assert world.order_statuses()[bad] == "Fallout"
    assert len(world.stubs["erp"].effects) == 1, "only the good order's"

    # Fixed in Salesforce: the held order is planned and fulfilled.
    world.emu.update("Order", bad, {"AccountId": account})
    force_poll(ctx)
    run_cycle(ctx)
    run_until_settled(ctx, world)
    assert world.order_statuses() == {good: "Completed", bad: "Completed"}
