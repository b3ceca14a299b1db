"""A writeback pass with many records of one object writes them in one Bulk API 2.0 job,
over real HTTPS against the emulator: a few calls, every record written or its refusal
remembered as a Composite call's would be, nothing lost."""

from __future__ import annotations

from sqlalchemy import select

from daemon.context import Context
from daemon.cycle.advance import advance_plans
from daemon.cycle.dispatch import dispatch
from daemon.cycle.poll import poll
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import Plan, SfWriteback, Task
from orchestration.errors import RecordError
from salesforce import ingest
from salesforce.emulator.faults import Fault
from salesforce.fields import TASK
from tests.integration.test_jeopardy import HOURS, slow_provisioning
from tests.integration.test_salesforce_support import bulk_context
from tests.integration.world import World

#: PLAT-PRO and ADD-SSO: the ERP order, each line's billing and provisioning: 5 tasks.
CODES = ("PLAT-PRO", "ADD-SSO")
TASKS_PER_ORDER = 5


def _polled(world: World, monkeypatch, orders: int) -> Context:
    """``orders`` orders of :data:`CODES`, polled by a :func:`bulk_context`."""
    for _ in range(orders):
        world.add_order(*CODES)
    ctx = bulk_context(world, monkeypatch)
    poll(ctx)
    return ctx


def _rows(ctx, sobject: str) -> dict[str, SfWriteback]:
    with ctx.sessions() as session:
        rows = session.scalars(select(SfWriteback).where(SfWriteback.sobject == sobject))
        return {r.sf_id: r for r in rows}


def _tasks_shown(world: World) -> dict[str, dict]:
    return {r["Task_Key__c"]: r for r in world.emu.records(TASK)}


def test_many_new_tasks_go_in_one_bulk_job_and_every_one_is_written(world: World, monkeypatch):
    orders = [world.add_order(*CODES) for _ in range(6)]
    ctx = bulk_context(world, monkeypatch)
    poll(ctx)
    advance_plans(ctx)
    calls, kinds = world.emu.api_calls, world.emu.calls_by_kind

    written = write_back(ctx, bulk_min=20)

    tasks = len(orders) * TASKS_PER_ORDER
    assert written == len(orders) * (1 + len(CODES)) + tasks  # Orders, lines, tasks
    spent = {k: n - kinds.get(k, 0) for k, n in world.emu.calls_by_kind.items()}
    # Orders and lines in one Composite call; the 30 tasks: create, upload, close, info.
    assert spent["composite"] == 1
    assert spent["jobs/ingest"] == 4
    assert world.emu.api_calls - calls == 5
    shown, rows = _tasks_shown(world), _rows(ctx, TASK)
    assert len(shown) == tasks
    assert {r["Order__c"] for r in shown.values()} == set(orders)
    for key, row in rows.items():
        assert row.error is None
        assert row.written["State__c"] == shown[key]["State__c"]
    assert write_back(ctx, bulk_min=20) == 0  # all remembered as written


def test_a_job_still_processing_is_looked_at_again_until_it_is_complete(world: World, monkeypatch):
    ctx = _polled(world, monkeypatch, 3)
    world.emu.bulk.pending_polls = 2  # InProgress twice, then JobComplete
    kinds = world.emu.calls_by_kind

    write_back(ctx, bulk_min=10)

    assert world.emu.calls_by_kind["jobs/ingest"] - kinds.get("jobs/ingest", 0) == 6
    assert len(_tasks_shown(world)) == 3 * TASKS_PER_ORDER
    assert all(r.error is None for r in _rows(ctx, TASK).values())


def test_records_the_job_refuses_are_remembered_like_a_composite_refusal_the_rest_written(
    world: World, monkeypatch
):
    orders = [world.add_order(*CODES) for _ in range(4)]
    ctx = bulk_context(world, monkeypatch)
    poll(ctx)
    odd = orders[0]
    with ctx.sessions.begin() as session:  # a reference longer than the field's 255
        plan = session.scalars(select(Plan).where(Plan.order_id == odd)).one()
        for task in plan.tasks:
            task.external_ref = "R" * 300
    kinds = world.emu.calls_by_kind

    write_back(ctx, bulk_min=10)

    # create, upload, close, info, and the failed results
    assert world.emu.calls_by_kind["jobs/ingest"] - kinds.get("jobs/ingest", 0) == 5
    rows = _rows(ctx, TASK)
    refused = {k: r for k, r in rows.items() if r.error is not None}
    assert {r.parent_id for r in refused.values()} == {odd}
    assert {r.error_code for r in refused.values()} == {"STRING_TOO_LONG"}
    assert len(refused) == TASKS_PER_ORDER
    assert all(r.failed_values and r.error_code for r in refused.values())
    assert all(r.retry_at is None for r in refused.values())
    shown = _tasks_shown(world)
    assert set(shown) == set(rows) - set(refused)
    calls = world.emu.api_calls
    assert write_back(ctx, bulk_min=10) == 0  # refused values are not sent again
    assert world.emu.api_calls == calls


def test_a_failed_job_leaves_its_records_unknown_and_they_are_written_on_the_next_pass(
    world: World, monkeypatch
):
    ctx = _polled(world, monkeypatch, 3)
    ctx.gateway.bulk_write = _failing(ctx.gateway.bulk_write)  # type: ignore[method-assign]

    write_back(ctx, bulk_min=10)

    rows = _rows(ctx, TASK)
    assert len(rows) == 3 * TASKS_PER_ORDER and not _tasks_shown(world)
    assert all(r.error is None and r.attempts == 1 and not r.written for r in rows.values())
    write_back(ctx, bulk_min=10_000)  # retried at once, here in Composite calls
    assert len(_tasks_shown(world)) == 3 * TASKS_PER_ORDER
    assert all(r.error is None and r.written for r in _rows(ctx, TASK).values())


def _failing(bulk_write):
    """The job gets a column the API user cannot see: Salesforce fails the whole job."""

    def send(sobject, records, *, ext_field=None, on_open=None):
        answers = bulk_write(
            sobject,
            [{**r, "Not_A_Field__c": "x"} for r in records],
            ext_field=ext_field,
            on_open=on_open,
        )
        assert answers == {}
        return answers

    return send


def test_a_job_salesforce_refuses_is_sent_in_composite_calls_in_the_same_pass(
    world: World, monkeypatch
):
    ctx = _polled(world, monkeypatch, 3)

    def refused(sobject, records, *, ext_field=None, on_open=None):
        raise RecordError("Salesforce bulk job: HTTP 400 FEATURENOTENABLED: Bulk API off")

    ctx.gateway.bulk_write = refused  # type: ignore[method-assign]
    kinds = world.emu.calls_by_kind

    write_back(ctx, bulk_min=10)

    assert world.emu.calls_by_kind.get("jobs/ingest", 0) == kinds.get("jobs/ingest", 0)
    assert len(_tasks_shown(world)) == 3 * TASKS_PER_ORDER
    assert all(r.error is None and r.written for r in _rows(ctx, TASK).values())


def test_at_risk_then_late_reach_every_record_when_the_pass_sends_them_in_bulk_jobs(
    world: World, monkeypatch
):
    orders = [world.add_order("PLAT-PRO") for _ in range(3)]
    ctx, clock = slow_provisioning(world, monkeypatch)

    def wait(_seconds: float) -> None:
        world.emu.bulk.wait_idle()

    ctx.gateway.sleep = wait
    for _ in range(4):
        run_cycle(ctx)  # provisioning accepted, silent: In Progress
    with ctx.sessions() as session:
        starts = {t.started_at for t in session.scalars(select(Task)) if t.system == "provisioning"}
    (start,) = starts
    assert start is not None
    kinds = world.emu.calls_by_kind

    # The default rules: callout/provisioning {estimate: 8h, jeopardy: 2h}. Every record
    # that changes goes in a job (an Order update job, a line one, a task upsert one).
    for at, level in ((6 * HOURS, "At Risk"), (8 * HOURS, "Late")):
        clock.now = start + at
        advance_plans(ctx)  # the plans whose SLA threshold came, assessed (as a sweep does)
        assert write_back(ctx, bulk_min=1) > 0
        for order in orders:
            (line,) = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order]
            (task,) = [
                r
                for r in world.emu.records(TASK)
                if r["Order__c"] == order and r["System__c"] == "provisioning"
            ]
            shown = world.emu.get("Order", order)["Jeopardy_Status__c"]
            assert (shown, line["Jeopardy_Status__c"], task["Jeopardy__c"]) == (level,) * 3
    assert world.emu.calls_by_kind["jobs/ingest"] - kinds.get("jobs/ingest", 0) == 2 * 3 * 4


def test_records_a_job_could_not_lock_are_written_by_the_next_pass(world: World, monkeypatch):
    ctx = _polled(world, monkeypatch, 4)
    world.emu.set_faults(Fault(rate_lock=1.0, seed=7))  # every call meets locks

    write_back(ctx, bulk_min=10)

    rows = _rows(ctx, TASK)
    locked = {k for k, r in rows.items() if not r.written}
    assert locked and len(locked) < len(rows)  # some tasks locked, the rest saved
    assert all(rows[k].error is None and rows[k].attempts == 1 for k in locked)
    assert set(_tasks_shown(world)) == set(rows) - locked
    world.emu.set_faults(Fault())

    write_back(ctx, bulk_min=10)  # the locked ones are due again at once

    assert set(_tasks_shown(world)) == set(rows)
    assert all(r.error is None and r.written for r in _rows(ctx, TASK).values())


def test_a_job_still_saving_after_its_pass_gave_up_is_waited_for_before_newer_values_go(
    world: World, monkeypatch
):
    """A pass that gave up on its job (or a daemon killed while it waited) leaves the job
    saving in Salesforce: later passes send nothing until it is over, so its older values
    never land on newer ones, and then write what changed meanwhile."""
    ctx = _polled(world, monkeypatch, 2)
    world.emu.bulk.processing.clear()  # Salesforce's queue is busy: the job stays InProgress
    ctx.gateway.sleep = lambda _seconds: None
    monkeypatch.setattr(ingest, "JOB_PATIENCE", 0.0)
    write_back(ctx, bulk_min=10)  # the tasks, Pending, in a job the pass gives up on
    assert not _tasks_shown(world)
    advance_plans(ctx)
    dispatch(ctx)  # ERP orders and billings answered: newer states to write
    advance_plans(ctx)
    calls = world.emu.calls_by_kind

    assert write_back(ctx, bulk_min=10_000) == 0  # the job is still saving: nothing sent
    spent = {k: n - calls.get(k, 0) for k, n in world.emu.calls_by_kind.items()}
    assert {k: n for k, n in spent.items() if n} == {"jobs/ingest": 1}  # a look at the job

    world.emu.bulk.processing.set()
    assert world.emu.bulk.wait_idle()  # the job saved its Pending tasks
    write_back(ctx, bulk_min=10_000)
    shown, rows = _tasks_shown(world), _rows(ctx, TASK)
    assert len(shown) == len(rows) == 2 * TASKS_PER_ORDER
    assert "Completed" in {r["State__c"] for r in shown.values()}
    for key, row in rows.items():
        assert row.error is None
        assert row.written["State__c"] == shown[key]["State__c"], key
