"""Writeback spends as few Salesforce calls as the records need: each record written once a
pass whatever number of changes it collected, one pass a cycle (the jeopardy sweep leaves
its writes to the cycles while they write), the Invoices in the Orders' batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select

from daemon import store
from daemon.context import Context
from daemon.cycle.advance import advance_plans
from daemon.cycle.poll import poll
from daemon.cycle.run import sweep
from daemon.cycle.writeback import CYCLE_CARRIES, write_back
from daemon.cycle.writeback_values import task_key
from daemon.store.models import Plan, Task
from salesforce.batches import COLLECTION_LIMIT, COMPOSITE_HEAVY_LIMIT, CollectionRequest
from salesforce.emulator.seed import seed_demo_org
from salesforce.results import WriteResult
from tests.integration.test_invoices import add_invoice, until_synced
from tests.integration.test_jeopardy import HOURS, provisioning_task, slow_provisioning, started
from tests.integration.test_salesforce_support import sf_context
from tests.integration.world import World


def _flag(ctx: Context, order_ids: list[str], text: str) -> None:
    """A flag for a person on these orders' plans (as an amendment sets one)."""
    with ctx.sessions.begin() as session:
        for plan in session.scalars(select(Plan).where(Plan.order_id.in_(order_ids))):
            plan.flag = text
            store.touch(plan, ctx.clock())


def _calls_for(*records: int) -> int:
    """Composite calls for one pass writing these numbers of records, one object each:
    collections of 200, five to a call."""
    collections = sum(math.ceil(n / COLLECTION_LIMIT) for n in records)
    return math.ceil(collections / COMPOSITE_HEAVY_LIMIT)


def test_a_record_changed_three_times_between_passes_is_written_once_with_its_final_values(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    write_back(ctx)
    with ctx.sessions() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == order)).one()
        task = plan.tasks[0]
        key, task_id = task_key(plan, task), task.id
    (record,) = [r for r in world.emu.records("Fulfillment_Task__c") if r["Task_Key__c"] == key]
    saves = world.emu.api_saves(order), world.emu.api_saves(record["Id"])

    for n in (1, 2, 3):
        _flag(ctx, [order], f"Look at this order ({n})")
        with ctx.sessions.begin() as session:
            changed = session.get_one(Task, task_id)
            changed.message, changed.attempts = f"try {n}", n
            store.touch(changed.plan, ctx.clock())
    calls = world.emu.api_calls
    assert write_back(ctx) == 2

    assert world.emu.api_calls == calls + 1
    assert (world.emu.api_saves(order), world.emu.api_saves(record["Id"])) == (
        saves[0] + 1,
        saves[1] + 1,
    )
    assert world.emu.get("Order", order)["Fulfillment_Message__c"] == "Look at this order (3)"
    shown = world.emu.get("Fulfillment_Task__c", record["Id"])
    assert (shown["Message__c"], shown["Attempts__c"]) == ("try 3", 3)


def test_the_calls_of_a_fixed_scenario_follow_from_its_records(world: World, monkeypatch):
    orders = 450  # one-step plans (no lines): 450 Orders and 450 Fulfillment_Task__c
    seed_demo_org(world.emu, orders=0)
    account = world.emu.records("Account")[0]["Id"]
    ids = world.emu.insert_many(
        "Order",
        [
            {"AccountId": account, "Status": "Activated", "EffectiveDate": "2026-12-01"}
            for _ in range(orders)
        ],
    )
    ctx = sf_context(world, monkeypatch)
    now = ctx.clock()
    ctx.clock = lambda: now
    assert poll(ctx).planned == orders
    advance_plans(ctx)  # their steps Ready, as a cycle leaves them before its pass

    calls = world.emu.api_calls
    assert write_back(ctx) == 2 * orders
    assert world.emu.api_calls - calls == _calls_for(orders, orders)  # 6 collections: 2 calls

    # The sweep right after a cycle's pass leaves what it finds to the next cycle's pass.
    flagged = ids[:250]
    now += CYCLE_CARRIES * 0.8
    _flag(ctx, flagged, "Look at this order")
    calls = world.emu.api_calls
    assert sweep(ctx).written == 0
    assert world.emu.api_calls == calls
    assert write_back(ctx) == len(flagged)
    assert world.emu.api_calls - calls == _calls_for(len(flagged))  # 2 collections: 1 call
    messages = {o["Id"]: o["Fulfillment_Message__c"] for o in world.emu.records("Order")}
    assert {messages[i] for i in flagged} == {"Look at this order"}

    # That pass carried the sweep's Late look too, and was a cycle's: the next sweep waits
    # for the next cycle again.
    now += CYCLE_CARRIES * 0.8  # long after the first pass, soon after that one
    _flag(ctx, ids[:5], "Again")
    calls = world.emu.api_calls
    assert sweep(ctx).written == 0
    assert world.emu.api_calls == calls
    assert write_back(ctx) == 5

    # Nothing changed: no call. Cycles quiet for a while: the sweep writes on its own.
    calls = world.emu.api_calls
    assert write_back(ctx) == 0 and sweep(ctx).written == 0
    assert world.emu.api_calls == calls
    now += CYCLE_CARRIES + timedelta(seconds=1)
    _flag(ctx, ids[:3], "Still waiting")
    assert sweep(ctx).written == 3
    assert world.emu.api_calls - calls == _calls_for(3)


def test_an_invoice_and_its_order_go_in_the_same_call(world: World, monkeypatch):
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    invoice_id = add_invoice(world, order_id)
    sent: list[set[str]] = []
    write = ctx.gateway.write

    def recording(requests: Sequence[CollectionRequest]) -> list[list[WriteResult]]:
        sent.append({req.sobject_of(r) for req in requests for r in req.records})
        return write(requests)

    monkeypatch.setattr(ctx.gateway, "write", recording)
    invoice = until_synced(ctx, world, invoice_id)

    assert invoice["ERP_Sync_Status__c"] == "Transferred"
    # Each pass sends one batch: the Invoice's writes rode with the Orders' in one call.
    assert any({"Invoice", "Order"} <= objects for objects in sent)
    assert all(len(objects & {"Invoice"}) <= 1 for objects in sent)
    assert world.emu.api_saves(invoice_id) == len([s for s in sent if "Invoice" in s])


def test_a_late_orders_message_counts_by_the_hour_so_it_is_not_rewritten_each_minute(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO")
    ctx, clock = slow_provisioning(world, monkeypatch)
    start = started(ctx, world, clock).started_at
    assert start is not None
    due = start + 8 * HOURS  # the default rules: callout/provisioning {estimate: 8h}
    clock.now = due + timedelta(minutes=5)
    sweep(ctx)
    title = provisioning_task(ctx).title
    shown = world.emu.get("Order", order)
    assert shown["Jeopardy_Status__c"] == "Late"
    assert shown["Fulfillment_Message__c"] == f"{title} is late (due {due:%H:%M} UTC)"
    saves = world.emu.api_saves(order)

    for minutes in (6, 20, 59):  # still late by less than an hour: nothing to write
        clock.now = due + timedelta(minutes=minutes)
        assert sweep(ctx).written == 0
    assert world.emu.api_saves(order) == saves

    clock.now = due + timedelta(hours=1, minutes=1)
    sweep(ctx)
    message = world.emu.get("Order", order)["Fulfillment_Message__c"]
    assert message == f"{title} is 1 h late (due {due:%H:%M} UTC)"
    assert world.emu.api_saves(order) == saves + 1
