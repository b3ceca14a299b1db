"""Status polling, payload checks and refusals, through the daemon's cycle over real HTTP."""

from __future__ import annotations

from daemon.cycle.run import run_cycle
from downstream.stubs import StubFaults
from orchestration.states import StepState
from tests.integration.downstream_world import swap_stub, tasks
from tests.integration.world import World, run_until_settled


def test_accepted_steps_complete_by_status_polling(world: World, monkeypatch):
    stub = swap_stub(world, "provisioning", completion="status", complete_after=0.0)
    ctx = world.context(monkeypatch, provisioning_status_poll_interval=0.001)
    world.add_order("PLAT-PRO", "ADD-SSO")
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    done = tasks(ctx, "provisioning")
    assert [t.state for t in done] == [StepState.COMPLETED] * 2
    assert sorted(str(t.external_ref) for t in done) == ["PRV-000001", "PRV-000002"]
    assert stub.stats()["pending"] == 0 and stub.stats()["duplicates"] == 0


def test_without_polling_an_accepted_step_waits(world: World, monkeypatch):
    swap_stub(world, "provisioning", completion="status", complete_after=0.0)
    ctx = world.context(monkeypatch, provisioning_status_poll_interval=0)
    world.add_order("PLAT-PRO")
    for _ in range(6):
        run_cycle(ctx)
    (task,) = tasks(ctx, "provisioning")
    assert (task.state, task.external_ref) == (StepState.IN_PROGRESS, "PRV-000001")


def test_a_payload_that_does_not_fit_is_fallout_naming_the_field(world: World, monkeypatch):
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", status="Draft")
    (line,) = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order_id]
    world.emu.update("OrderItem", line["Id"], {"Quantity": 0})
    world.emu.update("Order", order_id, {"Status": "Activated"})
    run_until_settled(ctx, world)
    assert world.order_statuses() == {order_id: "Fallout"}
    (billing,) = tasks(ctx, "billing")
    assert billing.state == StepState.FATALLY_FAILED
    assert billing.message == (
        "payload /quantity: 0.0 is less than or equal to the minimum of 0 "
        "(rule subscription, step billing)"
    )
    assert world.stubs["billing"].stats()["requests"] == 0


def test_a_sku_the_system_refuses_is_fallout_with_its_message(world: World, monkeypatch):
    swap_stub(world, "provisioning", faults=StubFaults(reject_skus=frozenset({"LIC-PLATFORM-PRO"})))
    ctx = world.context(monkeypatch)
    world.add_order("PLAT-PRO", "ADD-SSO")
    run_until_settled(ctx, world)
    refused, activated = tasks(ctx, "provisioning")
    assert refused.state == StepState.FATALLY_FAILED
    assert refused.message == "provisioning: unknown SKU LIC-PLATFORM-PRO"
    assert activated.state == StepState.COMPLETED
