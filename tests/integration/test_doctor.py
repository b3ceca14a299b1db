"""`orderflow doctor` against the emulated org, the stubs and a real SQLite file."""

from __future__ import annotations

import json
import logging

import pytest

from daemon.commands.main import main
from tests.integration.world import World


@pytest.fixture(autouse=True)
def _quiet_logging():
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def doctor(capsys, *args: str) -> tuple[int, dict]:
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_everything_passes_in_a_healthy_world(world: World, monkeypatch, capsys):
    world.context(monkeypatch)  # sets the ORDERFLOW_* variables and creates the database
    code, report = doctor(capsys)
    assert code == 0, report
    assert report["ok"] is True
    checks = by_name(report)
    assert set(checks) == {
        "settings",
        "rules",
        "database",
        "cutover",
        "salesforce.login",
        "salesforce.api_budget",
        "salesforce.invoices",
        "salesforce.events",
        "salesforce.describe.Order",
        "salesforce.describe.OrderItem",
        "salesforce.describe.Product2",
        "salesforce.describe.Fulfillment_Task__c",
        "salesforce.describe.Invoice",
        "salesforce.describe.InvoiceLine",
        "downstream.billing",
        "downstream.erp",
        "downstream.provisioning",
    }
    assert all(c["status"] == "pass" for c in checks.values())
    assert "daily API calls used" in checks["salesforce.api_budget"]["detail"]
    cutover = checks["cutover"]["detail"]
    assert cutover.startswith("2000-01-01T00:00:00Z (set by ORDERFLOW_CUTOVER_AT")


def test_events_required_without_a_pubsub_server_fail_the_events_check(
    world: World, monkeypatch, capsys
):
    world.context(monkeypatch)
    monkeypatch.setenv("ORDERFLOW_SF_PUBSUB_ENDPOINT", "127.0.0.1:1")  # nothing listens
    monkeypatch.setenv("ORDERFLOW_SF_EVENTS", "cdc")
    code, report = doctor(capsys)
    events = by_name(report)["salesforce.events"]
    assert code == 1
    assert events["status"] == "fail"
    assert "127.0.0.1:1: /data/OrderChangeEvent: UNAVAILABLE" in events["detail"]
    monkeypatch.setenv("ORDERFLOW_SF_EVENTS", "auto")  # auto polls instead: no failure
    code, report = doctor(capsys)
    assert by_name(report)["salesforce.events"]["status"] == "pass"
    assert "polling only" in by_name(report)["salesforce.events"]["detail"]


def test_a_field_missing_in_the_org_fails_the_describe_check(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    world.emu.remove_field("Order", "Fulfillment_Status__c")
    code, report = doctor(capsys)
    assert code == 1
    assert report["ok"] is False
    order = by_name(report)["salesforce.describe.Order.Fulfillment_Status__c"]
    assert order["status"] == "fail"
    assert "missing or not readable" in order["detail"]
    assert "salesforce.describe.Order" not in by_name(report)
    assert by_name(report)["salesforce.describe.OrderItem"]["status"] == "pass"
    # The text form says the same.
    assert main(["doctor"]) == 1
    text = capsys.readouterr().out
    assert any(
        line.startswith("FAIL") and "salesforce.describe.Order.Fulfillment_Status__c " in line
        for line in text.splitlines()
    )
    assert text.rstrip().endswith("1 of 17 checks failed")


def test_the_permission_sets_grants_are_checked_field_by_field(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    world.emu.access.revoke("OrderItem.Jeopardy_Status__c")  # neither read nor edit
    world.emu.access.grant("Order.Fulfillment_Message__c", "read")  # read, not edit
    world.emu.access.revoke("Product2.Family")  # a polled field
    code, report = doctor(capsys)
    assert code == 1
    failed = {c["name"]: c["detail"] for c in report["checks"] if c["status"] == "fail"}
    assert set(failed) == {
        "salesforce.describe.OrderItem.Jeopardy_Status__c",
        "salesforce.describe.Order.Fulfillment_Message__c",
        "salesforce.describe.Product2.Family",
    }
    assert "not editable by this user" in failed["salesforce.describe.Order.Fulfillment_Message__c"]
    assert "not readable" in failed["salesforce.describe.Product2.Family"]


def test_a_renamed_writeback_field_is_the_one_checked(world: World, monkeypatch, capsys):
    world.context(monkeypatch, sf_writeback_fields='{"Order.Jeopardy_Status__c": "Risk__c"}')
    code, report = doctor(capsys)
    assert code == 1
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    assert failed == ["salesforce.describe.Order.Risk__c"]


def test_a_picklist_value_the_org_does_not_allow_fails(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    # An org that still has the first deploy's values (before Transferred and Cancelled).
    world.emu.schema.set_picklist("Invoice", "ERP_Sync_Status__c", ("Pending", "Synced", "Failed"))
    code, report = doctor(capsys)
    assert code == 1
    check = by_name(report)["salesforce.describe.Invoice.ERP_Sync_Status__c"]
    assert check["detail"] == "picklist does not allow Cancelled, Transferred"


def test_invoices_are_checked_only_when_enabled(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    world.emu.access.revoke("Invoice")  # Orderflow_Integration_Invoices not assigned
    world.emu.access.revoke("InvoiceLine")
    code, report = doctor(capsys)
    assert code == 0, report
    checks = by_name(report)
    assert checks["salesforce.invoices"]["detail"] == "off (ORDERFLOW_SF_INVOICES=auto)"
    assert "salesforce.describe.Invoice" not in checks
    monkeypatch.setenv("ORDERFLOW_SF_INVOICES", "true")
    code, report = doctor(capsys)
    assert code == 1
    invoice = by_name(report)["salesforce.describe.Invoice"]
    assert invoice["status"] == "fail"
    assert "Invoice missing or not readable by this user" in invoice["detail"]


def test_unreachable_system_and_missing_database_fail(world: World, monkeypatch, capsys, tmp_path):
    world.context(monkeypatch)
    world.stubs["billing"].stop()
    monkeypatch.setenv("ORDERFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'nowhere.db'}")
    code, report = doctor(capsys)
    assert code == 1
    checks = by_name(report)
    assert checks["downstream.billing"]["status"] == "fail"
    assert "unreachable" in checks["downstream.billing"]["detail"]
    assert checks["downstream.erp"]["status"] == "pass"
    assert checks["database"]["status"] == "fail"
    assert "orderflow db upgrade" in checks["database"]["detail"]
    assert not (tmp_path / "nowhere.db").exists()  # the doctor looks, it does not create


def test_bad_settings_fail_and_the_rest_is_skipped(monkeypatch, capsys):
    monkeypatch.setenv("ORDERFLOW_POLL_INTERVAL", "soon")
    code, report = doctor(capsys)
    assert code == 1
    checks = by_name(report)
    assert checks["settings"]["status"] == "fail"
    assert "ORDERFLOW_POLL_INTERVAL" in checks["settings"]["detail"]
    assert {c["status"] for n, c in checks.items() if n != "settings"} == {"skip"}


def test_refused_login_fails_without_showing_the_secret(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    monkeypatch.setenv("ORDERFLOW_SF_CLIENT_SECRET", "wrong-secret-value")
    code, report = doctor(capsys)
    assert code == 1
    checks = by_name(report)
    assert checks["salesforce.login"]["status"] == "fail"
    assert checks["salesforce.api_budget"]["status"] == "skip"
    assert "wrong-secret-value" not in json.dumps(report)
