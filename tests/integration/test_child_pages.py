"""Orders with more lines than Salesforce puts in one child batch, through the real poll.

The emulator pages each Order's OrderItems at 200, as Salesforce does; the poll must read
every line before it plans, and an order whose lines cannot all be read waits.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.commands.main import main
from daemon.context import Context
from daemon.cycle.poll import poll
from daemon.cycle.run import run_cycle
from daemon.ops.resync import ResyncSpec, resync
from daemon.store.models import Plan, SourceRecord, Task
from salesforce.emulator.seed import seed_demo_org, seed_invoices
from tests.integration.test_invoices import add_invoice, until_synced
from tests.integration.test_salesforce_support import RULES as SUPPORT_RULES
from tests.integration.test_salesforce_support import force_poll
from tests.integration.world import World, run_until_settled

LINES = 450

# The shared rules' one ERP sales order carrying every line, and one internal step per line
# (not a callout per line: 450 lines stay a short test).
RULES = (
    SUPPORT_RULES[: SUPPORT_RULES.index("  - name: subscription")]
    + """
  - name: line
    when: {field: line.Quantity, op: ">", value: 0}
    steps:
      - key: note
        kind: auto
        action: log_event
        title: "Note the line"
        payload:
          message: {const: "line noted"}
"""
)


def _context(world: World, monkeypatch: pytest.MonkeyPatch) -> Context:
    rules = Path(world.workdir) / "child-pages-rules.yaml"
    rules.write_text(RULES)
    ctx = world.context(monkeypatch, rules_file=rules)
    ctx.gateway.sleep = lambda _seconds: None
    return ctx


def _big_order(world: World, lines: int, *, stamp: datetime | None = None) -> str:
    """An activated order of ``lines`` lines (all written at ``stamp`` when given)."""
    seed_demo_org(world.emu, orders=0)
    entry = world.emu.records("PricebookEntry")[0]
    account = world.emu.records("Account")[0]["Id"]
    order = world.emu.insert(
        "Order",
        {
            "AccountId": account,
            "Status": "Draft",
            "EffectiveDate": "2026-12-01",
            "Pricebook2Id": entry["Pricebook2Id"],
        },
    )
    line = {
        "OrderId": order,
        "PricebookEntryId": entry["Id"],
        "UnitPrice": 10.0,
        "ServiceDate": "2026-12-01",
        "EndDate": "2027-11-30",
    }
    world.emu.insert_many(
        "OrderItem",
        [{**line, "Quantity": n} for n in range(1, lines + 1)],
        system_modstamp=stamp,
    )
    world.emu.update("Order", order, {"Status": "Activated"}, system_modstamp=stamp)
    return order


def _line_ids(world: World, order: str) -> list[str]:
    return sorted(r["Id"] for r in world.emu.records("OrderItem") if r["OrderId"] == order)


def test_an_order_of_450_lines_is_fulfilled_completely(world: World, monkeypatch):
    order = _big_order(world, LINES)
    ctx = _context(world, monkeypatch)

    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Completed"}, world.emu.get("Order", order)[
        "Fulfillment_Message__c"
    ]
    (sales_order,) = world.stubs["erp"].effects
    sent = sorted(line["line_id"] for line in sales_order.payload["lines"])
    assert len(sent) == LINES
    assert sent == _line_ids(world, order)
    with ctx.sessions() as session:
        notes = session.query(Task).filter(Task.key == "note", Task.state == "Completed").all()
    assert sorted(str(t.line_id) for t in notes) == _line_ids(world, order)
    assert world.emu.calls_by_kind["queryMore"] >= 2, "the child pages were followed"


def test_an_order_whose_lines_cannot_all_be_read_waits_and_is_read_again(
    world: World, monkeypatch, caplog
):
    # Written an hour ago: only a held-back watermark brings it back to a later poll.
    order = _big_order(world, LINES, stamp=datetime.now(UTC) - timedelta(hours=1))
    ctx = _context(world, monkeypatch)
    world.emu.queries.max_cursors = 0  # every child locator is dropped before it is followed

    with caplog.at_level(logging.WARNING, logger="daemon.cycle.poll"):
        report = poll(ctx)

    assert report.waiting == 1
    (warning,) = [r for r in caplog.records if r.getMessage().startswith(f"order {order} waits")]
    assert "OrderItems not read completely" in warning.getMessage()
    assert "INVALID_QUERY_LOCATOR" in warning.getMessage()
    with ctx.sessions() as session:
        assert session.query(Plan).count() == 0, "no plan from the first 200 lines"
        assert session.get(SourceRecord, ("Order", order)) is None, "its version is not seen"
    assert world.stubs["erp"].effects == []

    world.emu.queries.max_cursors = 5000
    force_poll(ctx)
    run_cycle(ctx)

    with ctx.sessions() as session:
        (plan,) = session.query(Plan).all()
        lines = {t.line_id for t in plan.tasks if t.key == "note"}
    assert plan.order_id == order
    assert sorted(str(line) for line in lines) == _line_ids(world, order)


def test_resync_reads_every_line_of_orders_and_invoices_or_leaves_them_waiting(
    world: World, monkeypatch
):
    order = _big_order(world, LINES)
    (invoice,) = seed_invoices(world.emu, every=1)
    ctx = _context(world, monkeypatch)
    today = datetime.now(UTC).date()
    spec = ResyncSpec(today - timedelta(days=1), today)

    world.emu.queries.max_cursors = 0
    dropped = resync(ctx, spec).as_dict()["objects"]
    assert (dropped["Order"]["waiting"], dropped["Order"]["planned"]) == (1, 0)
    assert (dropped["Invoice"]["waiting"], dropped["Invoice"]["read"]) == (1, 0)
    with ctx.sessions() as session:
        assert session.query(SourceRecord).count() == 0, "nothing of a partial read is kept"

    world.emu.queries.max_cursors = 5000
    taken = resync(ctx, spec).objects
    assert (taken["Order"].planned, taken["Invoice"].read, taken["Order"].waiting) == (1, 1, 0)
    with ctx.sessions() as session:
        (plan,) = session.query(Plan).filter(Plan.order_id == order).all()
        lines = {str(t.line_id) for t in plan.tasks if t.key == "note"}
        stored = session.query(SourceRecord).filter(SourceRecord.sobject == "InvoiceLine")
        invoice_lines = {r.sf_id for r in stored if r.data["InvoiceId"] == invoice}
    assert sorted(lines) == _line_ids(world, order)
    assert len(invoice_lines) == LINES


def test_reconcile_compares_every_invoice_line_and_refuses_a_partial_read(
    world: World, monkeypatch, capsys
):
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    invoice_id = add_invoice(world, order_id)
    until_synced(ctx, world, invoice_id)
    run_until_settled(ctx, world)
    capsys.readouterr()
    world.emu.queries.child_batch = 1  # each invoice's second line on a page of its own
    reconcile = ["reconcile", "--since", "2026-12-01", "--until", "2026-12-31"]

    assert main(reconcile) == 0
    assert capsys.readouterr().out == "", "no quantity differs: both lines were compared"

    world.emu.queries.max_cursors = 0
    assert main(reconcile) == 1
    err = capsys.readouterr().err
    assert f"invoice {invoice_id}: InvoiceLines not read completely" in err


def test_an_order_re_read_for_a_changed_line_waits_and_its_line_is_read_again(
    world: World, monkeypatch
):
    now = datetime.now(UTC)
    order = _big_order(world, 250, stamp=now - timedelta(hours=2))
    ctx = _context(world, monkeypatch)
    assert poll(ctx).planned == 1
    line = _line_ids(world, order)[-1]  # on the second child page
    # The line changes a while ago, the Order does not move: only its line brings it back.
    world.emu.update(
        "OrderItem", line, {"Quantity": 999}, system_modstamp=now - timedelta(minutes=5)
    )

    world.emu.queries.max_cursors = 0
    ctx.deep_polled_at = None  # a deep poll reaches the change
    report = poll(ctx)
    assert (report.reread, report.waiting) == (1, 1)
    with ctx.sessions() as session:
        stored = session.get(SourceRecord, ("OrderItem", line))
        assert stored is not None and stored.data["Quantity"] != 999, "not recorded as seen"

    world.emu.queries.max_cursors = 5000
    report = poll(ctx)  # not deep: only the held watermark reaches the line again
    assert (report.reread, report.waiting) == (1, 0)
    with ctx.sessions() as session:
        stored = session.get(SourceRecord, ("OrderItem", line))
        order_row = session.get(SourceRecord, ("Order", order))
        assert stored is not None and stored.data["Quantity"] == 999
        assert order_row is not None
        lines = order_row.data["OrderItems"]["records"]
    assert len(lines) == 250 and any(r["Quantity"] == 999 for r in lines)
