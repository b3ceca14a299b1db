"""The emulator refuses what a real org with salesforce/metadata deployed refuses.

The API user here is the integration user: it has exactly what the permission sets of
salesforce/metadata grant. Each refusal carries Salesforce's own error code, per record in
collections.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceRefusedRequest

from salesforce.emulator import Emulator
from tests.integration.emulator_helpers import connect, pinned_session, sf_errors


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path / "org")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sf(emu: Emulator) -> Iterator[Any]:
    session = pinned_session(emu)
    yield connect(emu, session)
    session.close()


def _order(emu: Emulator) -> str:
    account = emu.insert("Account", {"Name": "Acme"})
    old = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {"AccountId": account, "Status": "Activated", "EffectiveDate": "2026-01-01"}
    return emu.insert("Order", fields, system_modstamp=old)


def _task(order: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Fulfillment_Task__c"}, "Order__c": order,
            "Task_Key__c": key, **fields}  # fmt: skip


def _upsert(sf: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = sf.restful(
        "composite/sobjects/Fulfillment_Task__c/Task_Key__c",
        method="PATCH",
        json={"records": records},
    )
    return answer


def test_each_field_rule_refuses_its_record_with_salesforces_code(emu: Emulator, sf: Any):
    order = _order(emu)
    results = _upsert(
        sf,
        [
            _task(order, "ok", State__c="Completed", Attempts__c=3),
            _task(order, "picklist", State__c="Done"),
            _task(order, "long", Message__c="x" * 256),
            _task(order, "number", Attempts__c=10_000),
            _task(emu.insert("Account", {"Name": "Not an order"}), "lookup"),
        ],
    )
    assert [r["success"] for r in results] == [True, False, False, False, False]
    errors = [r["errors"][0] for r in results[1:]]
    assert [e["statusCode"] for e in errors] == [
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "STRING_TOO_LONG",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "FIELD_INTEGRITY_EXCEPTION",
    ]
    assert [e["fields"] for e in errors] == [["State__c"], ["Message__c"], ["Attempts__c"],
                                             ["Order__c"]]  # fmt: skip
    assert errors[0]["message"] == "State: bad value for restricted picklist field: Done"
    assert [t["Task_Key__c"] for t in emu.records("Fulfillment_Task__c")] == ["ok"]


def test_an_invoice_write_is_accepted_with_the_real_picklist(emu: Emulator, sf: Any):
    account = emu.insert("Account", {"Name": "Acme"})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Invoice.create({"BillingAccountId": account})  # Invoices are not created by API
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"
    invoice = emu.insert("Invoice", {"Status": "Posted", "BillingAccountId": account})
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Invoice.update(invoice, {"ERP_Sync_Status__c": "Synced"})
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.Invoice.update(invoice, {"ERP_Sync_Status__c": "Transferred"}) == 204
    assert emu.get("Invoice", invoice)["ERP_Sync_Status__c"] == "Transferred"


def test_lookups_on_order_and_order_item_check_their_target(tmp_path: Path):
    with Emulator(tmp_path / "org", admin_api=True) as emu:
        session = pinned_session(emu)
        sf: Any = connect(emu, session)
        order = _order(emu)
        product = emu.insert("Product2", {"Name": "Widget"})
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.Order.update(order, {"AccountId": product})
        error = sf_errors(exc.value)[0]
        assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
        assert error["message"] == f"Account ID: id value of incorrect type: {product}"
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.OrderItem.create({"OrderId": product, "PricebookEntryId": product,
                                 "Quantity": 1, "UnitPrice": 1})  # fmt: skip
        assert sf_errors(exc.value)[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.OrderItem.create({"OrderId": order, "Quantity": 1, "UnitPrice": 1})
        error = sf_errors(exc.value)[0]
        assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
        assert "PricebookEntryId" in error["message"]
        session.close()


def test_the_admin_may_seed_what_the_api_user_may_not(emu: Emulator, sf: Any):
    order = _order(emu)
    emu.update("Order", order, {"Fulfillment_Status__c": "Legacy value"})
    assert emu.get("Order", order)["Fulfillment_Status__c"] == "Legacy value"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Order.update(order, {"Fulfillment_Status__c": "Legacy value"})
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_a_unique_external_id_is_refused_twice_on_create(emu: Emulator, sf: Any):
    order = _order(emu)
    first = sf.restful("composite/sobjects", method="POST", json={"records": [_task(order, "k1")]})
    assert first[0]["success"] is True
    again = sf.restful("composite/sobjects", method="POST", json={"records": [_task(order, "k1")]})
    assert again[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert first[0]["id"] in again[0]["errors"][0]["message"]


def test_fields_the_permission_sets_do_not_grant_are_invisible_and_locked(emu: Emulator, sf: Any):
    order = _order(emu)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, TotalAmount FROM Order")  # granted to no one
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, Name FROM Contract")  # an object it cannot read
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Order.update(order, {"Description": "read, not edit"})
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    described = {f["name"]: f for f in sf.Order.describe()["fields"]}
    assert "TotalAmount" not in described
    assert described["Description"]["updateable"] is False
    assert described["Fulfillment_Status__c"]["updateable"] is True
    assert "Completed" in [v["value"] for v in described["Fulfillment_Status__c"]["picklistValues"]]

    emu.access.revoke("Order.Fulfillment_Status__c")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id, Fulfillment_Status__c FROM Order")
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Order.update(order, {"Fulfillment_Status__c": "Completed"})
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_without_the_invoice_permission_set_invoices_do_not_exist(tmp_path: Path):
    with Emulator(tmp_path / "org", permission_sets=["Orderflow_Integration"]) as emu:
        session = pinned_session(emu)
        sf: Any = connect(emu, session)
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.query("SELECT Id FROM Invoice")
        assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_TYPE"
        names = {o["name"] for o in sf.describe()["sobjects"]}
        assert "Invoice" not in names and "Order" in names
        session.close()


def test_without_api_enabled_nothing_answers(tmp_path: Path):
    with Emulator(tmp_path / "org", permission_sets=[]) as emu:
        session = pinned_session(emu)
        sf: Any = connect(emu, session)
        with pytest.raises(SalesforceRefusedRequest) as exc:
            sf.query("SELECT Id FROM Order")
        assert sf_errors(exc.value)[0]["errorCode"] == "API_CURRENTLY_DISABLED"
        session.close()


def test_composite_subrequests_are_checked_one_by_one(emu: Emulator, sf: Any):
    order = _order(emu)
    base = f"/services/data/v{emu.api_version}/sobjects/Order/{order}"
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {"method": "PATCH", "url": base, "referenceId": "ok",
                 "body": {"Jeopardy_Status__c": "Late"}},
                {"method": "PATCH", "url": base, "referenceId": "bad",
                 "body": {"Jeopardy_Status__c": "Doomed"}},
            ]
        },
    )  # fmt: skip
    ok, bad = answer["compositeResponse"]
    assert ok["httpStatusCode"] == 204
    assert bad["httpStatusCode"] == 400
    assert bad["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emu.get("Order", order)["Jeopardy_Status__c"] == "Late"


def test_the_viewer_set_reads_orderflows_fields_and_writes_none(tmp_path: Path):
    with Emulator(tmp_path / "org", permission_sets=["Orderflow_Viewer"]) as emu:
        # What a sales user's profile gives them already: Orders, and the API the
        # Lightning pages use.
        emu.access.grants.objects["Order"] = {"read", "edit"}
        emu.access.grants.user.add("ApiEnabled")
        order = _order(emu)
        emu.update("Order", order, {"Fulfillment_Status__c": "In Progress"})
        emu.insert(
            "Fulfillment_Task__c", {"Order__c": order, "Task_Key__c": "k1", "State__c": "Ready"}
        )
        session = pinned_session(emu)
        sf: Any = connect(emu, session)
        rows = sf.query(f"SELECT Fulfillment_Status__c FROM Order WHERE Id = '{order}'")
        assert rows["records"][0]["Fulfillment_Status__c"] == "In Progress"
        steps = sf.query(
            "SELECT State__c, Jeopardy__c, Due__c, Message__c FROM Fulfillment_Task__c"
        )
        assert [r["State__c"] for r in steps["records"]] == ["Ready"]
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.Order.update(order, {"Fulfillment_Status__c": "Completed"})
        assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
        answer = sf.restful(
            "composite/sobjects", method="POST", json={"records": [_task(order, "k2")]}
        )
        assert answer[0]["success"] is False
        session.close()


def test_a_parent_field_is_read_through_its_relationship_as_the_user_may(emu: Emulator, sf: Any):
    order = _order(emu)
    (row,) = sf.query(f"SELECT Id, Account.Name FROM Order WHERE Id = '{order}'")["records"]
    assert row["Account"]["Name"] == "Acme"
    assert row["Account"]["attributes"]["type"] == "Account"
    # Account.Name is required, so without field-level security: the object's read grants it.
    name = emu.access.schema.obj("Account").field("Name")
    assert name is not None and not name.permissionable
    # An Account the user cannot read: the relationship is not understood (INVALID_FIELD).
    emu.access.revoke("Account")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(f"SELECT Id, Account.Name FROM Order WHERE Id = '{order}'")
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD"
    assert "Account" not in {o["name"] for o in sf.describe()["sobjects"]}
    (row,) = sf.query(f"SELECT Id, AccountId FROM Order WHERE Id = '{order}'")["records"]
    assert row["AccountId"]
