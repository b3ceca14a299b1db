"""Fulfillment_Task__c records and configurable field names, over real HTTPS."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import SfWriteback, Task
from tests.integration.world import World


def test_every_step_is_a_task_record_under_its_order(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    records = world.emu.records("Fulfillment_Task__c")
    with ctx.sessions() as session:
        steps = session.query(SfWriteback).filter_by(sobject="Fulfillment_Task__c").count()
    assert len(records) == steps > 3
    assert {r["Order__c"] for r in records} == {order}
    assert all(r["Task_Key__c"].startswith(f"{order}:") for r in records)
    billing = next(r for r in records if r["System__c"] == "billing")
    assert billing["State__c"] == "Completed" and billing["Actual_End__c"] is not None
    assert billing["Step__c"].startswith("Billing: start subscription")


def _lose_the_store(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[Context, int]:
    """Tasks written once, then what was written forgotten (a restored backup): the next
    writeback sends every record again. Returns the context and the tasks in Salesforce."""
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    with ctx.sessions.begin() as session:
        session.execute(delete(SfWriteback))
    return ctx, len(world.emu.records("Fulfillment_Task__c"))


def _waiting_and_refused(ctx: Context) -> tuple[int, int]:
    with ctx.sessions() as session:
        waiting = session.query(SfWriteback).filter(SfWriteback.retry_at.is_not(None)).count()
        refused = session.query(SfWriteback).filter(SfWriteback.error.is_not(None)).count()
    return waiting, refused


def test_a_lost_store_does_not_stick_on_the_order_lookup(world: World, monkeypatch):
    ctx, before = _lose_the_store(world, monkeypatch)
    write_back(ctx)  # the Order lookup too: a Lookup in salesforce/metadata, updateable
    assert _waiting_and_refused(ctx) == (0, 0)
    assert len(world.emu.records("Fulfillment_Task__c")) == before, "updated, not duplicated"


def test_a_lost_store_and_a_master_detail_order_lookup(world: World, monkeypatch):
    # An org whose admin made Order__c a master-detail: not updateable once created.
    world.emu.schema.obj("Fulfillment_Task__c").fields["order__c"].updateable = False
    world.emu.schema.revision += 1
    ctx, before = _lose_the_store(world, monkeypatch)
    write_back(ctx)  # the Order lookup is refused at first, then left out
    assert _waiting_and_refused(ctx) == (before, 0)
    write_back(ctx)
    assert _waiting_and_refused(ctx) == (0, 0)
    assert len(world.emu.records("Fulfillment_Task__c")) == before, "updated, not duplicated"


def test_field_names_are_configurable(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    renames = '{"OrderItem.Jeopardy_Status__c": "Description"}'
    world.emu.access.grant("OrderItem.Description", "edit")  # as the admin must, renaming
    ctx = world.context(monkeypatch, sf_writeback_fields=renames)
    run_cycle(ctx)
    (line,) = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order]
    assert line["Description"] == "On Track"
    assert line["Jeopardy_Status__c"] is None


def test_each_task_record_comes_after_the_steps_it_waits_for(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    shown = {
        r["Task_Key__c"].split(":")[1]: r["Sequence__c"]
        for r in world.emu.records("Fulfillment_Task__c")
    }
    with ctx.sessions() as session:
        steps = {t.step_id: t.depends_on for t in session.query(Task)}
    assert set(shown) == set(steps)
    assert any(deps for deps in steps.values()), "the plan has dependencies to order"
    for step, deps in steps.items():
        assert shown[step] == 1 + max((shown[d] for d in deps), default=0), step
