"""Batched writeback over real HTTPS: differences only, Composite-packed collections,
every record's result read; and the whole life of orders under injected faults."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from daemon.cycle.org_state import salesforce_status, status_lines
from daemon.cycle.poll import poll
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import SfWriteback
from salesforce.emulator import Fault
from salesforce.emulator.seed import seed_demo_org
from tests.integration.test_salesforce_support import force_poll, sf_context
from tests.integration.world import SETTLED, World


def _writes(world: World) -> int:
    return world.emu.composite_subrequests.get("composite/sobjects", 0)


def test_a_wave_of_1000_orders_packs_200_a_collection_5_to_a_call(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=0)
    account = world.emu.records("Account")[0]["Id"]
    world.emu.insert_many(
        "Order",
        [
            {"AccountId": account, "Status": "Activated", "EffectiveDate": "2026-12-01"}
            for _ in range(1000)
        ],
    )
    ctx = sf_context(world, monkeypatch)
    assert poll(ctx).planned == 1000
    before = world.emu.calls_by_kind

    # 1000 Orders and the 1000 Fulfillment_Task__c records of their one-step plans.
    assert write_back(ctx) == 2000

    after = world.emu.calls_by_kind
    assert after["composite"] - before["composite"] == 2
    assert after["composite/sobjects"] == before["composite/sobjects"]
    assert _writes(world) == 10
    statuses = {o["Fulfillment_Status__c"] for o in world.emu.records("Order")}
    assert statuses == {"Not Started"}
    # Nothing differs now: the next writeback sends nothing at all.
    calls = world.emu.api_calls
    assert write_back(ctx) == 0
    assert world.emu.api_calls == calls


def test_order_lines_are_written_with_their_order_in_one_request(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO", "ADD-SSO", "ADD-AUDIT")
    ctx = sf_context(world, monkeypatch)
    run_cycle(ctx)
    lines = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order]
    assert {r["Fulfillment_Status__c"] for r in lines} == {"In Progress"}
    shown = world.emu.get("Order", order)
    assert shown["Fulfillment_Status__c"] == "In Progress"
    assert shown["Fulfillment_Progress__c"] is not None
    assert shown["Fulfillment_Updated__c"] is not None


def test_locked_records_are_retried_on_a_later_cycle(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=20)
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    world.emu.set_faults(Fault(rate_lock=1.0, seed=5))
    write_back(ctx)
    with ctx.sessions() as session:
        waiting = session.query(SfWriteback).filter(SfWriteback.retry_at.is_not(None)).count()
        done = session.query(SfWriteback).filter(SfWriteback.retry_at.is_(None)).count()
    assert waiting >= 1 and done >= 1, "some records locked, the rest written"
    assert salesforce_status(session)["writeback_retrying"] == waiting
    world.emu.set_faults(Fault())
    write_back(ctx)
    with ctx.sessions() as session:
        assert session.query(SfWriteback).filter(SfWriteback.retry_at.is_not(None)).count() == 0
    assert {o["Fulfillment_Status__c"] for o in world.emu.records("Order")} == {"Not Started"}


def test_a_refused_record_is_recorded_shown_and_not_sent_again(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    world.emu.remove_field("OrderItem", "Fulfillment_Status__c")
    ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=2)
    write_back(ctx)
    assert world.emu.get("Order", order)["Fulfillment_Status__c"] == "Not Started"
    writes = _writes(world)
    assert write_back(ctx) == 0
    assert _writes(world) == writes, "the refused values are not sent again"
    with ctx.sessions() as session:
        summary = salesforce_status(session)
    assert summary["writeback_refused"] == 1
    (refused,) = summary["writeback_refused_recent"]
    assert refused["sobject"] == "OrderItem" and refused["code"] == "INVALID_FIELD"
    assert any("INVALID_FIELD" in line for line in status_lines(summary))


def test_upsert_by_external_id_creates_then_updates(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    record = {"Task_Key__c": f"{order}/billing", "Order__c": order, "State__c": "Ready"}
    (first,) = ctx.gateway.upsert("Fulfillment_Task__c", "Task_Key__c", [record])
    assert first.success and first.created
    # The master-detail field is set on create only (not updateable), as in Salesforce.
    again = {"Task_Key__c": record["Task_Key__c"], "State__c": "Completed"}
    (second,) = ctx.gateway.upsert("Fulfillment_Task__c", "Task_Key__c", [again])
    assert second.success and not second.created and second.id == first.id
    (task,) = world.emu.records("Fulfillment_Task__c")
    assert task["State__c"] == "Completed"


def test_with_10_percent_of_calls_failing_each_way_every_order_settles_once(
    world: World, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="salesforce.emulator.gateway")
    seed_demo_org(world.emu, orders=30)
    # The clock runs a minute per cycle (retries come due, the spent allowance frees up);
    # the overlap covers the whole run so no poll window falls behind the fast clock.
    ctx = sf_context(world, monkeypatch, sf_poll_overlap=86_400)
    start = datetime.now(UTC)
    ticks = {"n": 0}
    ctx.clock = lambda: start + timedelta(minutes=ticks["n"])
    ctx.gateway.clock = lambda: 4000.0 * ticks["n"]
    world.emu.set_faults(
        Fault(
            rate_503=0.1,
            rate_lock=0.1,
            rate_limit_exceeded=0.1,
            rate_invalid_session=0.1,
            seed=32,  # its first seven draws hold every kind of fault
        )
    )
    for _ in range(60):
        ticks["n"] += 1
        force_poll(ctx)
        run_cycle(ctx)
        statuses = world.order_statuses().values()
        if all(s in SETTLED for s in statuses):
            break
    world.emu.set_faults(Fault())
    assert all(s in SETTLED for s in world.order_statuses().values()), world.order_statuses()
    assert {s for s in world.order_statuses().values()} == {"Completed"}
    stats = {n: s.stats() for n, s in world.stubs.items()}
    assert sum(s["duplicates"] for s in stats.values()) == 0
    assert stats["erp"]["effects"] == 30
    lines = world.emu.records("OrderItem")
    assert stats["billing"]["effects"] == len(lines)
    assert {r["Fulfillment_Status__c"] for r in lines} == {"Completed"}
    injected = {r.args[0] for r in caplog.records if r.msg.startswith("injecting fault")}
    assert injected == {"503", "lock", "limit", "invalid_session"}
    assert ctx.gateway.renewals >= 1
