"""Posted invoices to the ERP, and its document number back onto the Invoice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from daemon.cycle.advance import advance_plans
from daemon.cycle.dispatch import dispatch
from daemon.cycle.invoices import plan_invoices
from daemon.cycle.poll import poll_orders
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import Plan
from downstream.stubs import StubFaults
from tests.integration.downstream_world import swap_stub
from tests.integration.world import World, run_until_settled


def add_invoice(
    world: World, order_id: str, status: str = "Posted", day: str = "2026-12-05"
) -> str:
    """An Invoice for an order, one line per order line (as Salesforce billing would make)."""
    order = world.emu.get("Order", order_id)
    lines = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order_id]
    invoice_id = world.emu.insert(
        "Invoice",
        {
            "Status": status,
            "BillingAccountId": order["AccountId"],
            "ReferenceEntityId": order_id,
            "InvoiceDate": day,
            "DueDate": "2027-01-04",
            "TotalAmount": sum(float(line["TotalPrice"]) for line in lines),
        },
    )
    for line in lines:
        world.emu.insert(
            "InvoiceLine",
            {
                "InvoiceId": invoice_id,
                "Product2Id": line["Product2Id"],
                "Quantity": line["Quantity"],
                "ChargeAmount": line["TotalPrice"],
                "ReferenceEntityItemId": line["Id"],
            },
        )
    return invoice_id


def until_synced(ctx: Any, world: World, invoice_id: str, cycles: int = 15) -> dict[str, Any]:
    for _ in range(cycles):
        run_cycle(ctx)
        invoice = world.emu.get("Invoice", invoice_id)
        if invoice.get("ERP_Sync_Status__c") in ("Transferred", "Failed"):
            return invoice
    raise AssertionError(f"invoice {invoice_id} not synced: {world.emu.get('Invoice', invoice_id)}")


def test_a_posted_invoice_is_transferred_once_and_its_document_number_written_back(
    world: World, monkeypatch
):
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    posted = add_invoice(world, order_id)
    draft = add_invoice(world, order_id, status="Draft")
    invoice = until_synced(ctx, world, posted)

    assert (invoice["ERP_Document_Number__c"], invoice["ERP_Sync_Status__c"]) == (
        "DOC-000001",
        "Transferred",
    )
    erp = world.stubs["erp"]
    (transfer,) = [e for e in erp.effects if e.action == "invoices"]
    assert transfer.payload["invoice_id"] == posted
    assert transfer.payload["invoice_number"] == invoice["DocumentNumber"]
    assert transfer.payload["total_amount"] == 1000.0
    assert transfer.payload["order_id"] == order_id
    assert sorted(line["quantity"] for line in transfer.payload["lines"]) == [5.0, 5.0]
    assert world.emu.get("Invoice", draft)["ERP_Sync_Status__c"] is None

    run_until_settled(ctx, world)
    requests, calls = erp.stats()["requests"], world.emu.api_calls
    run_cycle(ctx)  # nothing new: no second transfer, no second write
    assert erp.stats()["requests"] == requests
    assert world.emu.api_calls - calls <= 1  # a poll at most, no write
    assert erp.stats()["duplicates"] == 0


def test_an_invoice_the_erp_refuses_shows_failed(world: World, monkeypatch):
    order_id = world.add_order("PLAT-STD")
    product = world.emu.records("OrderItem")[0]["Product2Id"]
    swap_stub(world, "erp", faults=StubFaults(reject_skus=frozenset({product})))
    ctx = world.context(monkeypatch)
    invoice_id = add_invoice(world, order_id)
    invoice = until_synced(ctx, world, invoice_id)
    assert (invoice["ERP_Sync_Status__c"], invoice["ERP_Document_Number__c"]) == ("Failed", None)


def test_without_invoice_support_invoices_are_not_read(world: World, monkeypatch):
    # An org without Revenue Cloud Billing: describe shows this user no Invoice.
    world.emu.access.revoke("Invoice")
    world.emu.access.revoke("InvoiceLine")
    ctx = world.context(monkeypatch)  # ORDERFLOW_SF_INVOICES=auto
    assert ctx.poll_fields.invoices is False
    order_id = world.add_order("PLAT-PRO")
    run_until_settled(ctx, world)  # a poll that queried Invoice would fail: INVALID_TYPE
    assert world.order_statuses()[order_id] == "Completed"


def test_invoice_support_follows_describe_unless_set(world: World, monkeypatch):
    assert world.context(monkeypatch).poll_fields.invoices is True
    assert world.context(monkeypatch, sf_invoices="false").poll_fields.invoices is False


def test_orders_and_invoices_are_counted_apart(world: World, monkeypatch, capsys):
    import json

    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from daemon.commands.main import main
    from daemon.web.listener import Listener, create_app, daemon_routes

    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    until_synced(ctx, world, add_invoice(world, order_id))
    run_until_settled(ctx, world)

    assert main(["status", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["orders_by_status"] == {"Completed": 1}
    assert summary["invoices_by_status"] == {"Completed": 1}
    assert main(["status"]) == 0
    assert "invoices to the ERP by status:\n  Completed" in capsys.readouterr().out

    listener = Listener(create_app(ctx, extra_routes=daemon_routes(ctx)), "127.0.0.1", 0)
    listener.start()
    try:
        metrics = requests.get(f"{listener.url}/metrics", timeout=10).text
        listing = requests.get(f"{listener.url}/canvas/api/orders", timeout=10).json()
        invoices = requests.get(
            f"{listener.url}/canvas/api/orders", params={"tab": "invoices"}, timeout=10
        ).json()
    finally:
        listener.stop()
    gauges = {
        (s.name, s.labels.get("status")): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    assert gauges[("orderflow_orders", "Completed")] == 1
    assert gauges[("orderflow_invoices", "Completed")] == 1
    assert (listing["tab_counts"]["all"], listing["tab_counts"]["completed"]) == (1, 1)
    assert listing["tab_counts"]["invoices"] == 1
    assert [r["order_id"] for r in listing["rows"]] == [order_id]
    assert [r["kind"] for r in invoices["rows"]] == ["invoice"]


def test_a_transfer_finished_while_writeback_wrote_pending_is_written_by_the_next_pass(
    world: World, monkeypatch
):
    """The race a demo met: a writeback pass reads the transfer still Pending; before the
    pass records what it wrote, the ERP's answer is committed, stamped earlier than the
    pass's own time (the recorder read its clock first). The next pass still writes
    Transferred: what a pass saw is the plan's change count, not a time."""
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO")
    invoice_id = add_invoice(world, order_id)
    poll_orders(ctx)
    plan_invoices(ctx)
    advance_plans(ctx)  # the transfer is Ready: Salesforce should show Pending
    write = ctx.gateway.write
    clock = ctx.clock

    def answered_meanwhile(requests: Any) -> Any:
        monkeypatch.setattr(ctx.gateway, "write", write)  # once
        ctx.clock = lambda: clock() - timedelta(seconds=5)  # stamped before this pass
        try:
            assert dispatch(ctx) >= 1
        finally:
            ctx.clock = clock
        return write(requests)

    monkeypatch.setattr(ctx.gateway, "write", answered_meanwhile)
    write_back(ctx)
    assert world.emu.get("Invoice", invoice_id)["ERP_Sync_Status__c"] == "Pending"
    with ctx.sessions() as session:
        (transfer,) = session.scalars(select(Plan).where(Plan.order_id == invoice_id))
        assert transfer.status == "Completed", "answered while the pass wrote Pending"

    write_back(ctx)
    invoice = world.emu.get("Invoice", invoice_id)
    assert (invoice["ERP_Sync_Status__c"], invoice["ERP_Document_Number__c"]) == (
        "Transferred",
        "DOC-000001",
    )
