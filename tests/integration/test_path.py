"""The whole path over real HTTPS: emulated org → daemon cycle → stub systems → writeback."""

from __future__ import annotations

import pytest

from daemon.cycle.run import run_cycle
from daemon.store.models import Task, TaskEvent
from orchestration.errors import ConfigError
from salesforce.emulator.seed import seed_demo_org
from tests.integration.world import World, run_until_settled


def test_seeded_orders_reach_every_system_once_and_show_completed(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=12)
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)

    orders = world.emu.records("Order")
    assert [o["Fulfillment_Status__c"] for o in orders] == ["Completed"] * 12
    lines = world.emu.records("OrderItem")
    erp = world.stubs["erp"].effects
    assert sorted(e.payload["order_number"] for e in erp) == sorted(
        o["OrderNumber"] for o in orders
    )
    for effect in erp:
        order = next(o for o in orders if o["OrderNumber"] == effect.payload["order_number"])
        expected = sorted(line["Id"] for line in lines if line["OrderId"] == order["Id"])
        assert sorted(line["line_id"] for line in effect.payload["lines"]) == expected
    billing = world.stubs["billing"].effects
    assert sorted(e.payload["order_item_id"] for e in billing) == sorted(i["Id"] for i in lines)
    provisioning = world.stubs["provisioning"].effects
    assert len(provisioning) == len(lines)
    assert all(stub.stats()["duplicates"] == 0 for stub in world.stubs.values())
    assert all(e.key for e in erp + billing + provisioning)


def test_provisioning_waits_for_billing_and_the_erp_order(world: World, monkeypatch):
    world.add_order("PLAT-ENT")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    with ctx.sessions() as session:
        events = session.query(TaskEvent).join(Task).filter(TaskEvent.to_state == "Completed")
        done_at = {e.task.key: e.id for e in events}
    assert done_at["provision"] > done_at["billing"]
    assert done_at["provision"] > done_at["sales_order"]


def test_a_second_cycle_after_settling_is_an_echo_and_costs_one_query(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=5)
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    requests_before = {n: s.stats()["requests"] for n, s in world.stubs.items()}
    calls_before = world.emu.api_calls
    ctx.gateway.pacer.next_poll_at = None  # poll now, whatever the idle back-off says

    report = run_cycle(ctx)

    assert report.polled >= 5, "our writebacks bumped SystemModstamp, so the poll sees them"
    assert (report.planned, report.dispatched, report.written) == (0, 0, 0)
    assert {n: s.stats()["requests"] for n, s in world.stubs.items()} == requests_before
    assert world.emu.api_calls - calls_before == 1


def test_with_unmatched_continue_the_rest_of_the_order_goes_on_without_the_line(
    world: World, monkeypatch, tmp_path
):
    rules = tmp_path / "rules.yaml"
    from daemon.settings import DEFAULT_RULES

    text = DEFAULT_RULES.read_text().replace("Services", "Consulting")
    rules.write_text(text.replace("unmatched: hold", "unmatched: continue"))
    good = world.add_order("PLAT-PRO")
    bad = world.add_order("PLAT-PRO", "PS-TRAIN")
    ctx = world.context(monkeypatch, rules_file=rules)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {good: "Completed", bad: "Fallout"}
    with ctx.sessions() as session:
        (fallout,) = session.query(Task).filter(Task.state == "Fatally Failed").all()
    assert fallout.message == "no decomposition rule for product PS-TRAIN (line 2)"
    billed = {e.payload["order_item_id"] for e in world.stubs["billing"].effects}
    assert len(billed) == 2, "the bad order's matched line is still fulfilled"
    sales_orders = [e.payload for e in world.stubs["erp"].effects if e.action == "sales-orders"]
    codes = sorted(line["product_code"] for so in sales_orders for line in so["lines"])
    assert codes == ["PLAT-PRO", "PLAT-PRO"], "the unmatched line is left out of each_line"


def test_a_dispatch_interrupted_by_a_crash_is_resent_with_the_same_key(world: World, monkeypatch):
    world.add_order("ADD-SSO")
    ctx = world.context(monkeypatch)
    from daemon.cycle.advance import advance_plans
    from daemon.cycle.dispatch import dispatch
    from daemon.cycle.poll import poll_orders

    poll_orders(ctx)
    advance_plans(ctx)
    dispatch(ctx)
    # Simulate a crash after the ERP call went out but before its result was committed.
    with ctx.sessions.begin() as session:
        task = session.query(Task).filter(Task.system == "erp").one()
        task.state, task.dispatch_started_at = "In Progress", task.updated_at
        key = task.idempotency_key
    run_until_settled(ctx, world)

    erp = world.stubs["erp"]
    assert erp.stats()["requests"] == 2
    assert erp.stats()["effects"] == 1
    assert [e.key for e in erp.effects] == [key]


def test_a_refused_writeback_is_recorded_not_retried_in_a_loop(world: World, monkeypatch):
    order_id = world.add_order("ADD-AUDIT")
    ctx = world.context(monkeypatch)
    world.emu.remove_field("Order", "Fulfillment_Status__c")
    run_cycle(ctx)
    calls = world.emu.api_calls
    run_cycle(ctx)
    run_cycle(ctx)
    from daemon.store.models import Plan

    with ctx.sessions() as session:
        plan = session.query(Plan).filter(Plan.order_id == order_id).one()
    assert plan.writeback_error is not None
    assert "Fulfillment_Status__c" in plan.writeback_error
    assert world.emu.api_calls - calls <= 4, "no write retried in a loop"


def test_the_emulator_certificate_is_refused_without_its_ca(world: World, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(world.emu.ca_file))
    with pytest.raises(ConfigError, match="TLS certificate is not trusted"):
        # The environment names the emulator's CA, but the daemon's setting (system CAs)
        # is what counts: TLS stays verified against what the operator configured. At
        # start, a setting to fix (exit 2).
        world.context(monkeypatch, sf_ca_bundle="/etc/ssl/certs/ca-certificates.crt")
