"""Retention: plans settled longer than ORDERFLOW_RETENTION_DAYS ago lose their history."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bench.common import CALLOUT_RULES
from daemon.context import Context
from daemon.service import retention
from daemon.store.models import Plan, SourceRecord, Task, TaskEvent
from downstream.stubs import StubFaults
from tests.integration.downstream_world import swap_stub
from tests.integration.world import World, run_until_settled


def counts(ctx: Context, plan_ids: list[int]) -> dict[str, int]:
    with ctx.sessions() as session:
        tasks = select(Task.id).where(Task.plan_id.in_(plan_ids))
        orders = select(Plan.order_id).where(Plan.id.in_(plan_ids))
        lines = select(Task.line_id).where(Task.plan_id.in_(plan_ids))
        return {
            "events": session.scalar(
                select(func.count()).select_from(TaskEvent).where(TaskEvent.task_id.in_(tasks))
            )
            or 0,
            "records": session.scalar(
                select(func.count())
                .select_from(SourceRecord)
                .where(SourceRecord.sf_id.in_(orders) | SourceRecord.sf_id.in_(lines))
            )
            or 0,
            "tasks": session.scalar(
                select(func.count()).select_from(Task).where(Task.id.in_(tasks))
            )
            or 0,
        }


def test_settled_plans_lose_their_history_after_the_retention_in_batches(world: World, monkeypatch):
    swap_stub(
        world, "provisioning", faults=StubFaults(reject_skus=frozenset({"LIC-PLATFORM-STARTER"}))
    )
    world.add_order("PLAT-PRO", "ADD-SSO")
    world.add_order("PLAT-ENT")
    world.add_order("PLAT-STD")  # Fallout: waits for a person, never pruned
    ctx = world.context(monkeypatch, rules_file=CALLOUT_RULES)
    run_until_settled(ctx, world)
    with ctx.sessions() as session:
        by_status = {p.status: p.id for p in session.scalars(select(Plan))}
        done = [p.id for p in session.scalars(select(Plan).where(Plan.status == "Completed"))]
    assert len(done) == 2 and "Fallout" in by_status
    before = counts(ctx, done)
    assert before["events"] > 0 and before["records"] >= 5  # 2 Orders, 3 lines
    fallout_before = counts(ctx, [by_status["Fallout"]])

    clock = ctx.clock
    ctx.clock = lambda: clock() + timedelta(days=89)
    assert retention.prune_history(ctx, 90).plans == 0, "not yet 90 days"

    ctx.clock = lambda: clock() + timedelta(days=91)
    monkeypatch.setattr(retention, "BATCH", 1)  # one plan a transaction
    report = retention.prune_history(ctx, 90)
    assert (report.plans, report.events, report.records) == (
        2,
        before["events"],
        before["records"],
    )
    assert counts(ctx, done) == {"events": 0, "records": 0, "tasks": before["tasks"]}
    assert counts(ctx, [by_status["Fallout"]]) == fallout_before
    with ctx.sessions() as session:
        assert all(session.get(Plan, i).pruned_at is not None for i in done)  # type: ignore[union-attr]
    assert retention.prune_history(ctx, 90).plans == 0, "each plan once"
