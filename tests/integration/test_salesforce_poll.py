"""Incremental polling over real HTTPS against the emulator: nothing missed, nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon import store
from daemon.cycle.poll import DELETED_IN_FLIGHT, poll
from daemon.cycle.run import run_cycle
from daemon.store.models import Plan, SourceRecord, Task, Watermark
from salesforce.emulator.seed import seed_demo_org
from salesforce.poller import OBJECTS
from tests.integration.test_salesforce_support import force_poll, sf_context
from tests.integration.world import World, run_until_settled


def _age(world: World, sobject: str, record_id: str) -> None:
    """Stamp a record an hour ago, before any poll window's overlap reaches."""
    world.emu.update(sobject, record_id, {}, system_modstamp=datetime.now(UTC) - timedelta(hours=1))


def _lines_of(world: World, order: str) -> list[tuple[str, dict]]:
    return [("OrderItem", r) for r in world.emu.records("OrderItem") if r["OrderId"] == order]


def _plans(ctx) -> dict[str, Plan]:
    with ctx.sessions() as session:
        return {p.order_id: p for p in session.query(Plan)}


def test_each_object_has_its_own_watermark_never_past_the_query_start(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch, sf_poll_settle=5)
    now = ctx.clock()
    poll(ctx)
    with ctx.sessions() as session:
        marks = {obj: store.watermark(session, obj) for obj in OBJECTS}
    assert set(marks) == {"Order", "OrderItem", "Invoice", "InvoiceLine"}
    for mark in marks.values():
        assert mark is not None
        assert mark <= now - timedelta(seconds=5)


def test_a_row_committed_late_inside_the_overlap_is_still_picked_up(world: World, monkeypatch):
    first = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    with ctx.sessions() as session:
        mark = store.watermark(session, "Order")
    assert mark is not None
    # A transaction that began before the last poll and committed after it: its
    # SystemModstamp is older than the saved watermark, but inside the 10-minute overlap:
    # the next deep poll reads it.
    late = world.add_order("ADD-SSO")
    world.emu.update("Order", late, {}, system_modstamp=mark - timedelta(minutes=3))
    for line in world.emu.records("OrderItem"):
        if line["OrderId"] == late:
            world.emu.update(
                "OrderItem", line["Id"], {}, system_modstamp=mark - timedelta(minutes=3)
            )
    assert poll(ctx).planned == 0, "a poll reads on from the watermark"
    assert ctx.deep_polled_at is not None
    ctx.deep_polled_at -= ctx.overlap / 2  # the next deep poll is due
    report = poll(ctx)
    assert report.planned == 1
    assert set(_plans(ctx)) == {first, late}


def test_polls_between_deep_ones_do_not_re_read_the_overlap(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5)
    for sobject, row in [("Order", {"Id": order}), *_lines_of(world, order)]:
        world.emu.update(sobject, row["Id"], {}, system_modstamp=five_minutes_ago)
    ctx = sf_context(world, monkeypatch)
    records = 1 + len(_lines_of(world, order))
    assert poll(ctx).seen == records, "the first poll of a start is deep"
    assert poll(ctx).seen == 0, "nothing changed since the watermark, five minutes are past"
    assert ctx.deep_polled_at is not None
    ctx.deep_polled_at -= ctx.overlap / 2
    again = poll(ctx)
    assert (again.seen, again.changed) == (records, 0), "a deep poll reads the overlap again"


def test_seeing_the_same_record_version_again_changes_nothing(world: World, monkeypatch):
    world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = sf_context(world, monkeypatch)
    assert poll(ctx).planned == 1
    with ctx.sessions.begin() as session:
        session.query(Watermark).delete()  # forgotten: the next poll reads everything again
    again = poll(ctx)
    assert again.seen >= 3 and (again.changed, again.planned) == (0, 0)
    with ctx.sessions() as session:
        assert session.query(Plan).count() == 1
        assert session.query(Task).filter(Task.revision == 1).count() == 5


def test_a_changed_line_re_reads_its_order_though_the_order_did_not_move(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    _age(world, "Order", order)  # outside the overlap: only the line's change shows it
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    with ctx.sessions() as session:
        before = session.get(SourceRecord, ("Order", order))
        assert before is not None
        old_hash = before.content_hash
    line = next(r for r in world.emu.records("OrderItem") if r["OrderId"] == order)
    order_stamp = world.emu.get("Order", order)["SystemModstamp"]
    world.emu.update("OrderItem", line["Id"], {"Quantity": 42})
    assert world.emu.get("Order", order)["SystemModstamp"] == order_stamp
    calls = world.emu.api_calls

    report = poll(ctx)

    assert report.reread == 1
    assert world.emu.api_calls - calls == 2, "one Composite for the four objects, one re-read"
    with ctx.sessions() as session:
        after = session.get(SourceRecord, ("Order", order))
        assert after is not None and after.content_hash != old_hash
        lines = after.data["OrderItems"]["records"]
        assert [r["Quantity"] for r in lines] == [42]


def test_many_changed_lines_are_re_read_in_few_calls(world: World, monkeypatch):
    seed_demo_org(world.emu, orders=120)
    for order in world.emu.records("Order"):
        _age(world, "Order", order["Id"])
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    for line in world.emu.records("OrderItem"):
        world.emu.update("OrderItem", line["Id"], {"Quantity": 7})
    calls = world.emu.api_calls
    report = poll(ctx)
    assert report.reread == 120
    # 120 ids of 18 characters fit in one URI-sized IN list: 1 poll + 1 re-read call.
    assert world.emu.api_calls - calls == 2


def test_a_deleted_order_that_never_started_is_cancelled(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    world.emu.delete("Order", order)
    report = poll(ctx)
    assert report.cancelled == 1
    with ctx.sessions() as session:
        plan = session.query(Plan).one()
        assert plan.status == "Cancelled"
        assert {t.state for t in plan.tasks} == {"Discarded"}
    force_poll(ctx)
    run_cycle(ctx)
    assert all(s.stats()["requests"] == 0 for s in world.stubs.values())


def test_a_deleted_line_is_not_planned(world: World, monkeypatch):
    # queryAll reads the Recycle Bin, child subqueries included: a line deleted before the
    # order was activated must not be fulfilled.
    order = world.add_order("PLAT-PRO", "ADD-SSO", status="Draft")
    kept, sso = (line["Id"] for _, line in _lines_of(world, order))
    world.emu.delete("OrderItem", sso)
    world.emu.update("Order", order, {"Status": "Activated"})
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    with ctx.sessions() as session:
        plan = session.query(Plan).one()
        lines = {t.line_id for t in plan.tasks if t.line_id}
    assert lines == {kept}, "the deleted line is not planned; the other one is"


def test_a_deleted_order_in_flight_is_flagged_not_cancelled(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    run_cycle(ctx)  # planned and dispatched
    world.emu.delete("Order", order)
    force_poll(ctx)
    run_cycle(ctx)
    with ctx.sessions() as session:
        plan = session.query(Plan).one()
        assert plan.flag == DELETED_IN_FLIGHT
        assert plan.status != "Cancelled"
        from daemon.cycle.org_state import salesforce_status

        flagged = salesforce_status(session)["flagged_orders"]
    assert flagged == [{"order": plan.order_number, "flag": DELETED_IN_FLIGHT}]


def test_invoices_and_their_lines_are_stored_as_source_records(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    account = world.emu.records("Account")[0]["Id"]
    invoice = world.emu.insert(
        "Invoice", {"Status": "Posted", "BillingAccountId": account, "ReferenceEntityId": order}
    )
    world.emu.insert("InvoiceLine", {"InvoiceId": invoice, "Quantity": 1, "ChargeAmount": 10})
    ctx = sf_context(world, monkeypatch)
    poll(ctx)
    with ctx.sessions() as session:
        kinds = {r.sobject for r in session.query(SourceRecord)}
        stored = session.get(SourceRecord, ("Invoice", invoice))
    assert {"Invoice", "InvoiceLine"} <= kinds
    assert stored is not None and stored.data["Status"] == "Posted"


def test_the_status_filter_and_polled_fields_are_settings(world: World, monkeypatch):
    draft = world.add_order("PLAT-PRO", status="Draft")
    ctx = sf_context(
        world,
        monkeypatch,
        sf_order_statuses='["Draft"]',
        sf_order_fields='["Id","OrderNumber","AccountId","Status","EffectiveDate"]',
    )
    poll(ctx)
    with ctx.sessions() as session:
        record = session.get(SourceRecord, ("Order", draft))
    assert record is not None
    assert "Description" not in record.data and record.data["Status"] == "Draft"


def test_after_a_demo_sized_run_another_cycle_calls_nothing_downstream_and_writes_nothing(
    world: World, monkeypatch
):
    seed_demo_org(world.emu, orders=50)
    ctx = sf_context(world, monkeypatch)
    run_until_settled(ctx, world)
    requests = {n: s.stats()["requests"] for n, s in world.stubs.items()}
    writes = world.emu.composite_subrequests.get("composite/sobjects", 0)
    calls = world.emu.api_calls

    force_poll(ctx)  # the poll must run: our own writebacks bumped every SystemModstamp
    report = run_cycle(ctx)

    assert report.polled >= 50, "the poll saw our own writes come back"
    assert (report.planned, report.dispatched, report.written) == (0, 0, 0)
    assert {n: s.stats()["requests"] for n, s in world.stubs.items()} == requests
    assert world.emu.composite_subrequests.get("composite/sobjects", 0) == writes
    assert world.emu.api_calls - calls == 1, "one Composite call polls the four objects"
