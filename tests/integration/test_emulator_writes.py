"""Writes against the emulator: sObject rows, collections, upserts and Composite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from salesforce.emulator import Emulator
from tests.integration.emulator_helpers import connect, pinned_session, sf_errors


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path / "org", admin_api=True)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sf(emu: Emulator) -> Iterator[Any]:
    session = pinned_session(emu)
    yield connect(emu, session)
    session.close()


def _orders(emu: Emulator, n: int) -> list[str]:
    account = emu.insert("Account", {"Name": "Acme"})
    old = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"AccountId": account, "Status": "Draft", "EffectiveDate": "2026-01-01"}] * n
    return emu.insert_many("Order", rows, system_modstamp=old)


def _update(sobject: str, record_id: str, **fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, "id": record_id, **fields}


# -- sObject rows -----------------------------------------------------------------------------


def test_sobject_crud(emu: Emulator, sf: Any) -> None:
    (order,) = _orders(emu, 1)
    before = emu.get("Order", order)["SystemModstamp"]
    assert sf.Order.update(order, {"Fulfillment_Status__c": "In Progress"}) == 204
    fetched = sf.Order.get(order)
    assert fetched["Fulfillment_Status__c"] == "In Progress"
    assert fetched["SystemModstamp"] > before
    assert fetched["attributes"]["type"] == "Order"
    created = sf.Account.create({"Name": "Globex"})
    assert created["success"] is True
    assert emu.get("Account", created["id"])["Name"] == "Globex"
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Order.update(order, {"OrderNumber": "1"})
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert emu.calls_by_kind["sobject"] == 6


def test_sobject_upsert_by_external_id(emu: Emulator, sf: Any) -> None:
    (order,) = _orders(emu, 1)
    first = sf.Fulfillment_Task__c.upsert(
        "Task_Key__c/ORD-1:erp", {"Order__c": order, "State__c": "Pending"}, raw_response=True
    )
    assert first.status_code == 201
    assert first.json()["created"] is True
    again = sf.Fulfillment_Task__c.upsert(
        "Task_Key__c/ORD-1:erp", {"State__c": "Completed"}, raw_response=True
    )
    assert again.status_code == 200
    assert again.json()["created"] is False
    (task,) = emu.records("Fulfillment_Task__c")
    assert task["State__c"] == "Completed"
    assert task["Name"] == "FT-000001"
    assert sf.Fulfillment_Task__c.get_by_custom_id("Task_Key__c", "ORD-1:erp")["Id"] == task["Id"]


def test_describe_and_deleted(emu: Emulator, sf: Any) -> None:
    described = sf.Fulfillment_Task__c.describe()
    assert described["keyPrefix"] == "a0F"
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["Task_Key__c"]["externalId"] is True
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["Order__c"]["referenceTo"] == ["Order"]
    order_rels = {r["relationshipName"] for r in sf.Order.describe()["childRelationships"]}
    assert order_rels == {"OrderItems", "Fulfillment_Tasks__r"}
    assert {o["name"] for o in sf.describe()["sobjects"]} >= {"Order", "InvoiceLine"}

    (order,) = _orders(emu, 1)
    emu.delete("Order", order)
    now = datetime.now(UTC)
    answer = sf.Order.deleted(now - timedelta(hours=1), now + timedelta(hours=1))
    assert [r["id"] for r in answer["deletedRecords"]] == [order]
    assert {"earliestDateAvailable", "latestDateCovered"} <= set(answer)


def test_limits_resource_and_usage_header(emu: Emulator, sf: Any) -> None:
    sf.query("SELECT Id FROM Order")
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 1_000_000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 1_000_000, "Remaining": 999_998}
    assert emu.calls_by_kind["limits"] == 1


# -- collections ------------------------------------------------------------------------------


def test_collection_update_with_per_record_errors(emu: Emulator, sf: Any) -> None:
    ok, deleted, locked_field, unknown = _orders(emu, 4)
    emu.delete("Order", deleted)
    body = {
        "allOrNone": False,
        "records": [
            _update("Order", ok, Fulfillment_Status__c="Completed"),
            _update("Order", deleted, Fulfillment_Status__c="Completed"),
            _update("Order", locked_field, TotalAmount=5),
            _update("Order", unknown, Bogus__c=1),
        ],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [True, False, False, False]
    assert [r["id"] for r in results] == [ok, deleted, locked_field, unknown]
    codes = [r["errors"][0]["statusCode"] for r in results[1:]]
    assert codes == ["ENTITY_IS_DELETED", "INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_FIELD"]
    assert results[2]["errors"][0]["fields"] == ["TotalAmount"]
    assert emu.get("Order", ok)["Fulfillment_Status__c"] == "Completed"
    assert emu.get("Order", ok)["SystemModstamp"] > "2026-01-01T00:00:00.000+0000"
    assert emu.get("Order", unknown)["SystemModstamp"] == "2026-01-01T00:00:00.000+0000"


def test_collection_all_or_none_rolls_back(emu: Emulator, sf: Any) -> None:
    good, bad = _orders(emu, 2)
    body = {
        "allOrNone": True,
        "records": [
            _update("Order", good, Description="changed"),
            _update("Order", bad, OrderNumber="x"),
        ],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert emu.get("Order", good)["Description"] is None


def test_collection_limit_of_200(emu: Emulator, sf: Any) -> None:
    orders = _orders(emu, 201)
    body = {"records": [_update("Order", o, Description="x") for o in orders]}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="PATCH", json=body)
    assert sf_errors(exc.value)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert all(r["Description"] is None for r in emu.records("Order"))


def test_collection_of_mixed_objects_at_most_10_chunks(emu: Emulator, sf: Any) -> None:
    orders = _orders(emu, 6)
    items = [
        emu.insert("OrderItem", {"OrderId": o, "Quantity": 1, "UnitPrice": 1.0}) for o in orders
    ]
    # Orders and lines alternating: 12 runs of one type, 12 chunks for Salesforce.
    mixed = [
        record
        for order, item in zip(orders, items, strict=True)
        for record in (
            _update("Order", order, Description="x"),
            _update("OrderItem", item, Description="y"),
        )
    ]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="PATCH", json={"records": mixed})
    assert "10 chunks" in sf_errors(exc.value)[0]["message"]
    assert all(r["Description"] is None for r in emu.records("Order"))
    # The same records a run per object: 2 chunks, saved.
    grouped = sorted(mixed, key=lambda r: r["attributes"]["type"])
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": grouped})
    assert all(r["success"] for r in results)
    assert {r["Description"] for r in emu.records("OrderItem")} == {"y"}


def test_collection_create_and_upsert(emu: Emulator, sf: Any) -> None:
    (order,) = _orders(emu, 1)
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "Account"}, "Name": f"A{n}"} for n in range(3)]},
    )
    assert all(r["success"] for r in created)
    assert [a["Name"] for a in emu.records("Account")][-3:] == ["A0", "A1", "A2"]
    task = {"attributes": {"type": "Fulfillment_Task__c"}, "Order__c": order}
    body = {
        "records": [
            {**task, "Task_Key__c": "k1", "State__c": "Pending"},
            {**task, "Task_Key__c": "k2", "Due__c": "2026-12-01T10:00:00Z"},
        ]
    }
    first = sf.restful(
        "composite/sobjects/Fulfillment_Task__c/Task_Key__c", method="PATCH", json=body
    )
    assert [r["created"] for r in first] == [True, True]
    body["records"][0] = {
        "attributes": {"type": "Fulfillment_Task__c"},
        "Task_Key__c": "k1",
        "State__c": "Completed",
    }
    body["records"][1] = {**body["records"][1], "State__c": "Done"}
    second = sf.restful(
        "composite/sobjects/Fulfillment_Task__c/Task_Key__c", method="PATCH", json=body
    )
    assert second[0]["created"] is False
    assert second[1]["success"] is False  # not a value of the restricted picklist
    assert second[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    tasks = {t["Task_Key__c"]: t for t in emu.records("Fulfillment_Task__c")}
    assert tasks["k1"]["State__c"] == "Completed"
    assert tasks["k2"]["Due__c"] == "2026-12-01T10:00:00.000+0000"


# -- composite -------------------------------------------------------------------------------


def test_composite_counts_as_one_call(emu: Emulator, sf: Any) -> None:
    orders = _orders(emu, 3)
    base = "/services/data/v62.0"
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": f"{base}/query?q=SELECT+Id+FROM+Order+ORDER+BY+Id",
                "referenceId": "q",
            },
            {
                "method": "PATCH",
                "url": f"{base}/sobjects/Order/@{{q.records[0].Id}}",
                "referenceId": "u",
                "body": {"Description": "via composite"},
            },
            {
                "method": "PATCH",
                "url": f"{base}/composite/sobjects",
                "referenceId": "c",
                "body": {"records": [_update("Order", orders[1], Description="batch")]},
            },
            {"method": "GET", "url": f"{base}/sobjects/Order/{orders[2]}", "referenceId": "g"},
            {
                "method": "GET",
                "url": f"{base}/sobjects/Order/8015g00000000ZZAAA",
                "referenceId": "missing",
            },
        ],
    }
    answer = sf.restful("composite", method="POST", json=body)
    statuses = [(r["referenceId"], r["httpStatusCode"]) for r in answer["compositeResponse"]]
    assert statuses == [("q", 200), ("u", 204), ("c", 200), ("g", 200), ("missing", 404)]
    assert emu.api_calls == 1
    assert emu.calls_by_kind["composite"] == 1
    assert emu.calls_by_kind["query"] == 0
    assert emu.get("Order", orders[0])["Description"] == "via composite"
    assert emu.get("Order", orders[1])["Description"] == "batch"


def test_composite_all_or_none(emu: Emulator, sf: Any) -> None:
    good, _ = _orders(emu, 2)
    base = "/services/data/v62.0/sobjects/Order"
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"{base}/{good}",
                "referenceId": "a",
                "body": {"Description": "x"},
            },
            {
                "method": "PATCH",
                "url": f"{base}/{good}",
                "referenceId": "b",
                "body": {"Nope__c": "x"},
            },
            {
                "method": "PATCH",
                "url": f"{base}/{good}",
                "referenceId": "c",
                "body": {"Description": "y"},
            },
        ],
    }
    answer = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in answer] == [400, 400, 400]
    assert answer[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert answer[1]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert emu.get("Order", good)["Description"] is None


@pytest.mark.parametrize(
    ("count", "url"), [(26, "sobjects/Order/x"), (6, "query?q=SELECT+Id+FROM+Order")]
)
def test_composite_limits(emu: Emulator, sf: Any, count: int, url: str) -> None:
    subs = [
        {"method": "GET", "url": f"/services/data/v62.0/{url}", "referenceId": f"r{n}"}
        for n in range(count)
    ]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": subs})


def test_raw_json_errors(emu: Emulator) -> None:
    session = pinned_session(emu)
    headers = {"Authorization": f"Bearer {emu.issue_session()}", "Content-Type": "application/json"}
    url = f"{emu.url}/services/data/v62.0/composite/sobjects"
    answer = session.patch(url, data=b"{not json", headers=headers, timeout=10)
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert answer.headers["Sforce-Limit-Info"] == "api-usage=1/1000000"
    session.close()
