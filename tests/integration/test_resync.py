"""`orderflow resync`: a date range re-read from the emulator, taken in as a poll takes it."""

from __future__ import annotations

import io
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from daemon.commands.resync import ProgressBar, summary_lines
from daemon.context import Context
from daemon.cycle.poll import poll
from daemon.cycle.run import run_cycle
from daemon.ops.resync import OBJECTS, ResyncReport, ResyncSpec, check, resync
from daemon.service.loop import safe_cycle
from daemon.store.models import Plan, SourceRecord, Task, TaskEvent
from orchestration.errors import ConfigError
from orchestration.records import parse_datetime
from salesforce.emulator.seed import seed_demo_org, seed_invoices
from salesforce.poller import DateRange, PollFields
from tests.integration.world import World, run_until_settled


def today() -> date:
    return datetime.now(UTC).date()


def recent(*, objects: tuple[str, ...] = OBJECTS, dry_run: bool = False) -> ResyncSpec:
    """Yesterday and today by SystemModstamp: everything seeded in this test."""
    since = today() - timedelta(days=1)
    return ResyncSpec(since, today(), objects=objects, dry_run=dry_run)


def rows(ctx: Context) -> dict[str, int]:
    with ctx.sessions() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Plan, Task, TaskEvent, SourceRecord)
        }


def effects(world: World) -> dict[str, tuple[int, int]]:
    """Per system: (effects made, effects made twice for one step)."""
    return {
        name: (stub.stats()["effects"], stub.stats()["duplicates"])
        for name, stub in world.stubs.items()
    }


def test_a_first_resync_plans_every_order_and_a_second_plans_nothing(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=15)
    ctx = world.context(monkeypatch)
    first = resync(ctx, recent(objects=("Order",))).objects["Order"]
    assert (first.read, first.new, first.planned, first.unchanged, first.changed) == (
        15,
        15,
        15,
        0,
        0,
    )
    # What the daemon will send: every callout of the new plans, none sent by the resync.
    with ctx.sessions() as session:
        callouts = Counter(
            session.scalars(select(Task.system).where(Task.system.is_not(None))).all()
        )
    assert first.would_send == callouts and set(callouts) == {"erp", "billing", "provisioning"}
    assert all(requests == (0, 0) for requests in effects(world).values())
    before = rows(ctx)
    second = resync(ctx, recent(objects=("Order",))).objects["Order"]
    assert (second.read, second.unchanged, second.new, second.planned) == (15, 15, 0, 0)
    assert not second.would_send
    assert rows(ctx)["Plan"] == before["Plan"] and rows(ctx)["Task"] == before["Task"]
    # The daemon's own poll finds nothing new either: the resync's plans are its plans.
    assert poll(ctx).planned == 0


def test_after_a_run_edited_orders_are_changed_the_rest_unchanged_nothing_sent_twice(
    world: World, monkeypatch
):
    seed_demo_org(world.emu, orders=8)
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    sent = effects(world)
    orders = world.emu.records("Order")
    for order in orders[:3]:
        world.emu.update("Order", order["Id"], {"Description": "re-typed by a user"})
    added = world.add_order("PLAT-STD")
    found = resync(ctx, recent(objects=("Order",))).objects["Order"]
    assert (found.read, found.changed, found.unchanged, found.new) == (9, 3, 5, 1)
    assert found.planned == 1 and found.reorchestrated <= found.changed
    assert found.would_send["erp"] >= 1  # the new order's sales order, at least
    run_until_settled(ctx, world)
    after = effects(world)
    assert all(dup == 0 for _, dup in after.values())
    if not found.reorchestrated:
        # Plans kept: the new order's effects are the only new ones, each made once.
        with ctx.sessions() as session:
            plan = session.scalars(select(Plan).where(Plan.order_id == added)).one()
            new_callouts = Counter(t.system for t in plan.tasks if t.system)
        assert {n: made for n, (made, _) in after.items()} == {
            n: sent[n][0] + new_callouts[n] for n in sent
        }
    again = resync(ctx, recent(objects=("Order",))).objects["Order"]
    assert (again.unchanged, again.changed, again.new, again.planned) == (9, 0, 0, 0)
    assert not again.would_send
    run_cycle(ctx)
    assert effects(world) == after


def test_a_dry_run_reports_the_same_and_writes_and_sends_nothing(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=6)
    seed_invoices(world.emu, every=2)
    ctx = world.context(monkeypatch)
    calls = world.emu.api_calls
    dry = resync(ctx, recent(dry_run=True))
    assert rows(ctx) == {"Plan": 0, "Task": 0, "TaskEvent": 0, "SourceRecord": 0}
    assert all(requests == (0, 0) for requests in effects(world).values())
    assert world.emu.api_calls > calls  # it did read
    real = resync(ctx, recent())
    assert dry.as_dict()["objects"] == real.as_dict()["objects"]
    assert dry.as_dict()["dry_run"] and not real.as_dict()["dry_run"]
    assert real.objects["Order"].new == 6 and real.objects["Invoice"].planned == 3
    assert rows(ctx)["Plan"] == 9
    assert "dry run: nothing written" in summary_lines(dry)[0]
    assert "would send:" in summary_lines(dry)[-1]


def test_a_range_by_effective_or_activated_date_reads_only_its_days(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=40)
    ctx = world.context(monkeypatch)
    since, until = date(2026, 3, 1), date(2026, 4, 30)
    orders = world.emu.records("Order")
    effective = {
        o["Id"] for o in orders if since <= date.fromisoformat(o["EffectiveDate"]) <= until
    }
    activated = {
        o["Id"] for o in orders if since <= parse_datetime(o["ActivatedDate"]).date() <= until
    }
    assert 0 < len(effective) < 40
    spec = ResyncSpec(since, until, field="EffectiveDate", objects=("Order",))
    assert resync(ctx, spec).objects["Order"].new == len(effective)
    with ctx.sessions() as session:
        assert set(session.scalars(select(Plan.order_id))) == effective
    spec = ResyncSpec(since, until, field="ActivatedDate", objects=("Order",))
    by_activation = resync(ctx, spec).objects["Order"]
    assert by_activation.read == len(activated)
    assert by_activation.new == len(activated - effective)


def test_a_resync_of_invoices_plans_each_posted_invoice_once(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=6)
    invoices = seed_invoices(world.emu, every=2)
    ctx = world.context(monkeypatch)
    year = ResyncSpec(date(2026, 1, 1), today(), field="EffectiveDate", objects=("Invoice",))
    found = resync(ctx, year).objects["Invoice"]
    assert (found.read, found.new, found.planned) == (3, 3, 3)
    assert found.would_send == {"erp": 3}
    with ctx.sessions() as session:
        assert set(session.scalars(select(Plan.order_id).where(Plan.kind == "invoice"))) == set(
            invoices
        )
    run_until_settled(ctx, world)
    transfers = [e for e in world.stubs["erp"].effects if e.action == "invoices"]
    assert len(transfers) == 3 and world.stubs["erp"].stats()["duplicates"] == 0
    world.emu.update("Invoice", invoices[0], {"DueDate": "2027-02-01"})
    again = resync(ctx, year).objects["Invoice"]
    assert (again.changed, again.unchanged, again.planned) == (1, 2, 0)


def test_a_deleted_order_in_the_range_is_cancelled_before_it_started(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=3)
    ctx = world.context(monkeypatch)
    resync(ctx, recent(objects=("Order",)))
    gone = world.emu.records("Order")[0]["Id"]
    world.emu.delete("Order", gone)
    found = resync(ctx, recent(objects=("Order",))).objects["Order"]
    assert (found.deleted, found.unchanged) == (1, 2)
    with ctx.sessions() as session:
        assert session.scalars(select(Plan.status).where(Plan.order_id == gone)).one() == (
            "Cancelled"
        )


def test_a_resync_while_the_daemon_runs_sends_each_step_once(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=30)
    daemon = world.context(monkeypatch)
    operator = world.context(monkeypatch)  # another process's engine on the same file
    done = threading.Event()
    reports: list[ResyncReport] = []

    def resync_twice() -> None:
        try:
            reports.extend(resync(operator, recent(objects=("Order",))) for _ in range(2))
        finally:
            done.set()

    thread = threading.Thread(target=resync_twice)
    thread.start()
    while not done.is_set():
        safe_cycle(daemon)  # as the daemon's loop runs it: a collision waits for the next
    thread.join()
    run_until_settled(daemon, world)
    assert all(dup == 0 for _, dup in effects(world).values())
    with daemon.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Plan)) == 30
        keys = session.scalars(select(Task.idempotency_key)).all()
    assert len(keys) == len(set(keys))
    first, second = (r.objects["Order"] for r in reports)
    assert first.read == second.read == 30
    assert second.unchanged == 30 and second.planned == 0  # whoever planned, once


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ResyncSpec(date(2026, 11, 7), date(2026, 11, 1)), "is after --until"),
        (ResyncSpec(date(2026, 11, 28), date(2026, 11, 30)), "starts in the future"),
        (ResyncSpec(date(2026, 11, 1), date(2026, 11, 7), field="CreatedDate"), "--field"),
        (ResyncSpec(date(2026, 11, 1), date(2026, 11, 7), objects=("Quote",)), "Quote"),
        (
            ResyncSpec(date(2026, 11, 1), date(2026, 11, 7), field="ActivatedDate"),
            "Invoice has no such field",
        ),
    ],
)
def test_ranges_and_choices_that_cannot_be_meant_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        check(spec, date(2026, 11, 27))


def test_a_range_ending_after_today_is_taken():
    check(ResyncSpec(date(2026, 11, 20), date(2026, 12, 31)), date(2026, 11, 27))


def test_the_progress_bar_redraws_one_line_per_object():
    out = io.StringIO()
    bar = ProgressBar(out)
    for done in (0, 2000, 4000):
        bar("Order", done, 4000)
    bar("Invoice", 10, 10)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 2
    assert "Order    [###############---------------] 2000/4000  50%" in text
    assert text.endswith("10/10 100%\n")


def test_a_changed_line_re_orchestrates_its_plan_and_the_new_steps_are_to_send(
    world: World, monkeypatch
):
    seed_demo_org(world.emu, orders=4)
    ctx = world.context(monkeypatch)
    by_effective_date = ResyncSpec(date(2026, 1, 1), today(), field="EffectiveDate")
    resync(ctx, by_effective_date)
    line = world.emu.records("OrderItem")[0]
    world.emu.update("OrderItem", line["Id"], {"Quantity": float(line["Quantity"]) + 7})
    found = resync(ctx, by_effective_date).objects["Order"]
    assert (found.changed, found.reorchestrated, found.unchanged, found.new) == (1, 1, 3, 0)
    with ctx.sessions() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == line["OrderId"])).one()
        live = [t for t in plan.tasks if t.revision == plan.revision and t.system]
        made = Counter(t.system for t in live if t.created_at != plan.created_at)
    assert plan.revision == 2
    assert found.would_send == made and sum(made.values()) >= 1
    again = resync(ctx, by_effective_date).objects["Order"]
    assert (again.changed, again.reorchestrated, again.planned) == (0, 0, 0)


def test_a_date_field_is_compared_with_dates_and_a_datetime_by_whole_utc_days():
    week = (date(2026, 11, 1), date(2026, 11, 7))
    assert DateRange("EffectiveDate", *week).soql() == (
        "EffectiveDate >= 2026-11-01 AND EffectiveDate <= 2026-11-07"
    )
    assert DateRange("SystemModstamp", *week).soql() == (
        "SystemModstamp >= 2026-11-01T00:00:00Z AND SystemModstamp < 2026-11-08T00:00:00Z"
    )
    soql = PollFields().range_query("Invoice", DateRange("InvoiceDate", *week))
    assert "FROM InvoiceLines" in soql and soql.endswith("ORDER BY InvoiceDate, Id")
