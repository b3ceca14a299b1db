"""`orderflow doctor` against the emulated org, the stubs and a real SQLite file."""

from __future__ import annotations

import json
import logging

import pytest

from daemon.cli import main
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
        "salesforce.describe.Order",
        "salesforce.describe.OrderItem",
        "salesforce.describe.Product2",
        "salesforce.describe.Fulfillment_Task__c",
        "downstream.billing",
        "downstream.erp",
        "downstream.provisioning",
    }
    assert all(c["status"] == "pass" for c in checks.values())
    assert "daily API calls used" in checks["salesforce.api_budget"]["detail"]
    cutover = checks["cutover"]["detail"]
    assert cutover.startswith("2000-01-01T00:00:00Z (set by ORDERFLOW_CUTOVER_AT")


def test_a_field_missing_in_the_org_fails_the_describe_check(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    world.emu.remove_field("Order", "Fulfillment_Status__c")
    code, report = doctor(capsys)
    assert code == 1
    assert report["ok"] is False
    order = by_name(report)["salesforce.describe.Order"]
    assert order["status"] == "fail"
    assert "Fulfillment_Status__c" in order["detail"]
    assert by_name(report)["salesforce.describe.OrderItem"]["status"] == "pass"
    # The text form says the same.
    assert main(["doctor"]) == 1
    text = capsys.readouterr().out
    assert any(
        line.startswith("FAIL")
        and "salesforce.describe.Order " in line
        and "Fulfillment_Status__c" in line
        for line in text.splitlines()
    )
    assert text.rstrip().endswith("1 of 13 checks failed")


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
