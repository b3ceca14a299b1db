"""`orderflow reconcile`: Salesforce against the systems, read-only, exit 0/1/2."""

from __future__ import annotations

import csv
import io

import pytest

from daemon.commands.main import main
from tests.integration.test_invoices import add_invoice, until_synced
from tests.integration.world import World, run_until_settled

RANGE = ["reconcile", "--since", "2026-12-01", "--until", "2026-12-31"]


def test_reconcile_finds_nothing_when_all_match_then_lists_each_difference(
    world: World, monkeypatch, capsys
):
    ctx = world.context(monkeypatch)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    invoice_id = add_invoice(world, order_id)
    until_synced(ctx, world, invoice_id)
    run_until_settled(ctx, world)
    capsys.readouterr()
    calls, erp_requests = world.emu.api_calls, world.stubs["erp"].stats()["requests"]

    assert main(RANGE) == 0
    assert capsys.readouterr().out == ""

    # Differences: an ERP document keyed in by hand, a posted invoice not transferred yet,
    # an amount changed in Salesforce after the transfer, a provisioning effect lost.
    world.stubs["erp"].record(
        "invoices",
        {
            "invoice_id": "3tt5g00000000ZZAAA",
            "invoice_number": '=HYPERLINK("http://evil.example/","INV-9")',
            "total_amount": 5.0,
            "invoice_date": "2026-12-09",
            "lines": [],
        },
    )
    late = add_invoice(world, order_id, day="2026-12-20")
    world.emu.update("Invoice", invoice_id, {"TotalAmount": 999.0})
    lost = next(e for e in world.stubs["provisioning"].effects)
    world.stubs["provisioning"].forget(lost.reference)

    assert main([*RANGE, "--csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    found = {(r["kind"], r["system"], r["reference"]) for r in rows}
    assert found == {
        ("erp_document_without_invoice", "erp", "DOC-000002"),
        ("invoice_without_erp_document", "erp", ""),
        ("amount_differs", "erp", "DOC-000001"),
        ("step_without_effect", "provisioning", lost.reference),
    }
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["invoice_without_erp_document"]["salesforce_id"] == late
    assert by_kind["amount_differs"]["detail"] == "Salesforce 999.00, ERP 1000.0"
    # The hand-keyed number is a formula: the spreadsheet must show it as text.
    hostile = by_kind["erp_document_without_invoice"]["salesforce_number"]
    assert hostile == '\'=HYPERLINK("http://evil.example/","INV-9")'

    # Read-only: the reconcile wrote nothing anywhere (reads only, no submits).
    assert world.stubs["erp"].stats()["requests"] == erp_requests  # no task submitted
    assert world.emu.get("Invoice", late)["ERP_Sync_Status__c"] is None
    assert world.emu.api_calls > calls

    assert main(["reconcile", "--since", "2027-01-01", "--until", "2027-01-31"]) == 0


def test_bad_dates_are_one_line_and_exit_2(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["reconcile", "--since", "yesterday", "--until", "2026-12-31"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "argument --since: 'yesterday' is not a date (YYYY-MM-DD)" in line
    with pytest.raises(SystemExit) as info:
        main(["reconcile", "--since", "2026-12-01", "--until", "9999-12-31"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "argument --until: '9999-12-31' is out of range" in line
    assert main(["reconcile", "--since", "2026-12-31", "--until", "2026-12-01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["orderflow: --since 2026-12-31 is after --until 2026-12-01"]


def test_every_activated_order_is_checked_by_the_configured_status_field(
    world: World, monkeypatch, capsys
):
    import json

    ctx = world.context(monkeypatch)
    order = world.add_order("PLAT-PRO")
    run_until_settled(ctx, world)
    capsys.readouterr()
    assert main([*RANGE, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"differences": []}

    # Activated while the daemon was stopped; an order someone set back by hand.
    unpolled = world.add_order("PLAT-PRO")
    world.emu.update("Order", order, {"Fulfillment_Status__c": "In Progress"})
    assert main([*RANGE, "--json"]) == 1
    found = {
        (d["kind"], d["salesforce_id"], d["detail"])
        for d in json.loads(capsys.readouterr().out)["differences"]
    }
    assert found == {
        ("never_planned", unpolled, "activated in Salesforce, no plan in Orderflow"),
        ("status_differs", order, "Salesforce In Progress, Orderflow Completed"),
    }

    # The org shows the status in another field (ORDERFLOW_SF_WRITEBACK_FIELDS): read there.
    world.emu.access.grant("Order.Description", "edit")
    world.emu.update("Order", order, {"Description": "Completed"})
    monkeypatch.setenv(
        "ORDERFLOW_SF_WRITEBACK_FIELDS", '{"Order.Fulfillment_Status__c": "Description"}'
    )
    assert main([*RANGE, "--json"]) == 1
    (left,) = json.loads(capsys.readouterr().out)["differences"]
    assert (left["kind"], left["salesforce_id"]) == ("never_planned", unpolled)


def _settled_order(world: World, monkeypatch, capsys) -> str:
    ctx = world.context(monkeypatch)
    order = world.add_order("PLAT-PRO")
    run_until_settled(ctx, world)
    capsys.readouterr()
    assert main(RANGE) == 0
    assert capsys.readouterr().out == ""
    return order


def _found(capsys) -> set[tuple[str, str, str, str]]:
    rows = csv.DictReader(io.StringIO(capsys.readouterr().out))
    return {(r["kind"], r["system"], r["salesforce_id"], r["detail"]) for r in rows}


def test_a_document_no_step_made_is_present_downstream_but_not_planned(
    world: World, monkeypatch, capsys
):
    _settled_order(world, monkeypatch, capsys)
    # Keyed in by hand at billing: a subscription Orderflow never planned.
    line = "8025g00000000ZZAAA"
    ref = world.stubs["billing"].record(
        "subscriptions",
        {
            "order_item_id": line,
            "account": "acme",
            "product_code": "PLAT-PRO",
            "quantity": 3,
            "unit_price_cents": 1000,
            "start_date": "2026-12-07",
        },
    )
    assert main([*RANGE, "--csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["kind"], r["system"], r["salesforce_id"], r["reference"]) for r in rows] == [
        ("document_without_plan", "billing", line, ref)
    ]
    # Outside the range it is not listed.
    assert main(["reconcile", "--since", "2026-12-08", "--until", "2026-12-31"]) == 0


def test_a_completed_erp_step_whose_sales_order_is_gone_is_planned_but_missing(
    world: World, monkeypatch, capsys
):
    order = _settled_order(world, monkeypatch, capsys)
    erp = world.stubs["erp"]
    (sales_order,) = [e.reference for e in erp.effects if e.action == "sales-orders"]
    erp.forget(sales_order)  # deleted from the ERP
    assert main([*RANGE, "--csv"]) == 1
    ((kind, system, sf_id, detail),) = _found(capsys)
    assert (kind, system, sf_id) == ("step_without_effect", "erp", order)
    assert detail.endswith(f"erp does not list {sales_order}")


def test_quantities_and_amounts_are_compared_with_the_salesforce_lines(
    world: World, monkeypatch, capsys
):
    import json

    order = _settled_order(world, monkeypatch, capsys)
    (line,) = [r["Id"] for r in world.emu.records("OrderItem") if r["OrderId"] == order]
    world.emu.update("OrderItem", line, {"Quantity": 7})  # changed in Salesforce afterwards
    assert main([*RANGE, "--json"]) == 1
    found = {
        (d["kind"], d["system"], d["detail"])
        for d in json.loads(capsys.readouterr().out)["differences"]
    }
    assert found == {
        ("amount_differs", "erp", "Salesforce 700.00, erp 500.0"),
        ("quantity_differs", "erp", "PLAT-PRO: Salesforce 7.0, erp 5.0"),
        ("amount_differs", "billing", "Salesforce 700.00, billing 500.0"),
        ("quantity_differs", "billing", "PLAT-PRO: Salesforce 7.0, billing 5.0"),
        ("quantity_differs", "provisioning", "PLAT-PRO: Salesforce 7.0, provisioning 5.0"),
    }


def test_the_seats_provisioning_activated_are_compared_with_the_line(
    world: World, monkeypatch, capsys
):
    order = _settled_order(world, monkeypatch, capsys)
    (line,) = [r["Id"] for r in world.emu.records("OrderItem") if r["OrderId"] == order]
    provisioning = world.stubs["provisioning"]
    (activation,) = [e.reference for e in provisioning.effects if e.action == "activations"]
    listed = {d["number"]: d for d in provisioning.documents()}[activation]
    assert listed["quantities"] == {"LIC-PLATFORM-PRO": 5.0}, "the listing says how many"
    # Seats taken away at the provisioning console; Salesforce still says 5.
    provisioning.record("license-changes", {"order_item_id": line, "seats": 3})
    assert main([*RANGE, "--csv"]) == 1
    assert _found(capsys) == {
        ("quantity_differs", "provisioning", order, "PLAT-PRO: Salesforce 5.0, provisioning 3.0")
    }


def test_an_amended_order_matches_and_an_undo_the_system_lost_is_not_planned(
    world: World, monkeypatch, capsys
):
    from tests.integration.amend_world import change_order, lines_of, poll_now

    ctx = world.context(monkeypatch)
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    run_until_settled(ctx, world)
    _, sso = lines_of(world, order)  # PLAT-PRO, ADD-SSO
    change_order(world, order, {sso["Id"]: -5})
    poll_now(ctx)
    run_until_settled(ctx, world)
    capsys.readouterr()
    # Compared with the lines the change left (not the change order's deltas); the
    # follow-ups changed or undid documents and made none of their own.
    assert main(RANGE) == 0

    # Billing restored from a backup taken before the stop: the subscription is back.
    billing = world.stubs["billing"]
    (stop,) = [e.reference for e in billing.effects if e.action == "subscription-stops"]
    billing.forget(stop)
    assert main([*RANGE, "--csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["kind"], r["system"], r["salesforce_id"]) for r in rows] == [
        ("document_without_plan", "billing", sso["Id"])
    ]


def test_an_order_adopted_at_the_cut_over_is_not_a_difference(world: World, monkeypatch, capsys):
    from daemon.commands.run import adopt_history
    from tests.integration.test_golive import CUTOVER_AT, historic

    # Fulfilled by the legacy integrations before the cut-over: adopted, nothing sent, its
    # Salesforce status left alone. Reconcile has nothing to say about it.
    adopted = historic(world, world.add_order("PLAT-PRO"))
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT)
    adopt_history(ctx)
    capsys.readouterr()
    assert main([*RANGE, "--json"]) == 0, capsys.readouterr().out
    assert world.order_statuses()[adopted] is None
