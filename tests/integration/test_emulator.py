"""The Salesforce emulator driven by simple-salesforce over real HTTPS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
)

from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org
from tests.integration.emulator_helpers import (
    TIMEOUT,
    connect,
    data_url,
    pinned_session,
    sf_errors,
)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path / "org", admin_api=True)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def session(emu: Emulator) -> Iterator[requests.Session]:
    s = pinned_session(emu)
    yield s
    s.close()


@pytest.fixture
def sf(emu: Emulator, session: requests.Session) -> Any:
    return connect(emu, session)


def _order(emu: Emulator, **fields: Any) -> str:
    account = emu.insert("Account", {"Name": "Acme"})
    return emu.insert(
        "Order", {"AccountId": account, "Status": "Draft", "EffectiveDate": "2026-01-01", **fields}
    )


# -- TLS and OAuth ---------------------------------------------------------------------------


def test_pinned_ca_wins_over_environment_bundles(
    emu: Emulator, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    answer = session.get(f"{emu.url}/services/data/", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json()[0]["version"] == "62.0"
    plain = requests.Session()
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(f"{emu.url}/services/data/", timeout=TIMEOUT)
    plain.close()


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "client_credentials"},
        {"grant_type": "password", "username": "ops@example.com", "password": "demo-password"},
    ],
)
def test_token_grants(emu: Emulator, session: requests.Session, form: dict[str, str]) -> None:
    creds = {"client_id": "orderflow-demo", "client_secret": "demo-secret"}
    answer = session.post(emu.token_url, data={**form, **creds}, timeout=TIMEOUT)
    assert answer.status_code == 200
    body = answer.json()
    assert body["instance_url"] == emu.url
    assert body["token_type"] == "Bearer"
    assert {"access_token", "issued_at", "id", "signature"} <= set(body)
    sf = Salesforce(
        instance_url=emu.url, session_id=body["access_token"], session=session, version="62.0"
    )
    assert sf.query("SELECT Id FROM Order")["totalSize"] == 0
    assert emu.api_calls == 1


def test_jwt_bearer_grant(emu: Emulator, session: requests.Session) -> None:
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    good = _jwt({"iss": "orderflow-demo", "sub": "ops@example.com", "aud": "x"})
    answer = session.post(emu.token_url, data={"grant_type": grant, "assertion": good})
    assert answer.status_code == 200
    bad = _jwt({"iss": "someone-else"})
    answer = session.post(emu.token_url, data={"grant_type": grant, "assertion": bad})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client_id"


def test_bad_client_secret(emu: Emulator, session: requests.Session) -> None:
    form = {"grant_type": "client_credentials", "client_id": "orderflow-demo"}
    answer = session.post(emu.token_url, data={**form, "client_secret": "wrong"})
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }
    assert emu.api_calls == 0


def test_missing_or_unknown_token_is_401(emu: Emulator, session: requests.Session) -> None:
    answer = session.get(data_url(emu, "limits"), timeout=TIMEOUT)
    assert answer.status_code == 401
    assert answer.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    sf = Salesforce(instance_url=emu.url, session_id="nope", session=session, version="62.0")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Order")
    assert emu.api_calls == 0


# -- queries -----------------------------------------------------------------------------------


def test_relationship_fields_and_subqueries(emu: Emulator, sf: Any) -> None:
    seed_demo_org(emu, orders=5)
    result = sf.query(
        "SELECT Id, OrderNumber, Account.Name, TotalAmount, "
        "(SELECT Id, Quantity, UnitPrice, Product2.ProductCode, Product2.Family FROM OrderItems "
        "ORDER BY Product2.ProductCode), (SELECT Id FROM Fulfillment_Tasks__r) "
        "FROM Order WHERE Status = 'Activated' ORDER BY OrderNumber"
    )
    assert result["totalSize"] == 5
    first = result["records"][0]
    assert first["OrderNumber"] == "00000100"
    assert first["attributes"]["type"] == "Order"
    assert first["attributes"]["url"] == f"/services/data/v62.0/sobjects/Order/{first['Id']}"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert first["Account"]["Name"]
    assert first["Fulfillment_Tasks__r"] is None
    lines = first["OrderItems"]
    assert lines["done"] is True
    assert lines["totalSize"] == len(lines["records"]) >= 1
    codes = [line["Product2"]["ProductCode"] for line in lines["records"]]
    assert codes == sorted(codes)
    total = sum(line["Quantity"] * line["UnitPrice"] for line in lines["records"])
    assert first["TotalAmount"] == pytest.approx(total)
    child = sf.query(
        "SELECT Id, Order.OrderNumber FROM OrderItem WHERE Product2.Family = 'Subscription'"
    )
    assert child["totalSize"] == 5
    assert all(r["Order"]["OrderNumber"] for r in child["records"])


def test_pagination_with_batch_size(emu: Emulator, sf: Any) -> None:
    order = _order(emu)
    emu.insert_many(
        "Fulfillment_Task__c", [{"Order__c": order, "Step__c": str(n)} for n in range(5000)]
    )
    options = {"Sforce-Query-Options": "batchSize=1000"}
    first = sf.query("SELECT Id, Step__c FROM Fulfillment_Task__c", headers=options)
    assert first["totalSize"] == 5000
    assert first["done"] is False
    assert len(first["records"]) == 1000
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/")
    # The result set is a snapshot: later inserts do not show up in later pages.
    emu.insert("Fulfillment_Task__c", {"Order__c": order, "Step__c": "late"})
    steps = [r["Step__c"] for r in first["records"]]
    page = first
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        steps.extend(r["Step__c"] for r in page["records"])
    assert steps == [str(n) for n in range(5000)]
    assert emu.calls_by_kind["query"] == 1
    assert emu.calls_by_kind["queryMore"] == 4
    everything = sf.query_all("SELECT Id FROM Fulfillment_Task__c")
    assert everything["totalSize"] == 5001
    assert emu.calls_by_kind["queryMore"] == 6  # default pages of 2000
    assert (
        sum(1 for _ in sf.query_all_iter("SELECT Id FROM Fulfillment_Task__c LIMIT 2500")) == 2500
    )


def test_batch_size_is_clamped(emu: Emulator, sf: Any) -> None:
    order = _order(emu)
    emu.insert_many("Fulfillment_Task__c", [{"Order__c": order}] * 450)
    page = sf.query(
        "SELECT Id FROM Fulfillment_Task__c", headers={"Sforce-Query-Options": "batchSize=10"}
    )
    assert len(page["records"]) == 200


def test_query_all_sees_deleted(emu: Emulator, sf: Any) -> None:
    keep, gone = _order(emu), _order(emu)
    emu.delete("Order", gone)
    live = sf.query("SELECT Id FROM Order")
    assert [r["Id"] for r in live["records"]] == [keep]
    every = sf.query_all("SELECT Id, IsDeleted FROM Order ORDER BY IsDeleted", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(keep, False), (gone, True)]
    assert sf.query("SELECT Id FROM Order WHERE IsDeleted = true")["totalSize"] == 0


def test_modstamp_filter_by_instant(emu: Emulator, sf: Any) -> None:
    base = datetime(2026, 11, 27, 0, 38, tzinfo=UTC)
    early = _order(emu)
    emu.update("Order", early, {"Description": "a"}, system_modstamp=base)
    late = _order(emu)
    emu.update("Order", late, {"Description": "b"}, system_modstamp=base + timedelta(seconds=1))
    assert emu.get("Order", early)["SystemModstamp"] == "2026-11-27T00:38:00.000+0000"
    result = sf.query(
        "SELECT Id, SystemModstamp FROM Order WHERE SystemModstamp > 2026-11-27T01:38:00.000+0100 "
        "ORDER BY SystemModstamp"
    )
    assert [r["Id"] for r in result["records"]] == [late]
    assert result["records"][0]["SystemModstamp"] == "2026-11-27T00:38:01.000+0000"
    both = sf.query("SELECT Id FROM Order WHERE SystemModstamp >= 2026-11-27T00:38:00Z")
    assert both["totalSize"] == 2


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Id FROM Nope__c", "INVALID_TYPE", "sObject type 'Nope__c' is not supported"),
        (
            "SELECT Bogus__c FROM Order",
            "INVALID_FIELD",
            "No such column 'Bogus__c' on entity 'Order'",
        ),
        ("SELECT Id FROM Order WHERE", "MALFORMED_QUERY", "unexpected end"),
        (
            "SELECT Id FROM Order WHERE SystemModstamp > '2026-01-01T00:00:00Z'",
            "MALFORMED_QUERY",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
    ],
)
def test_query_errors(sf: Any, soql: str, code: str, text: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    assert exc.value.status == 400
    error = sf_errors(exc.value)[0]
    assert error["errorCode"] == code
    assert text in error["message"]


def test_removed_field_breaks_queries_and_writes(emu: Emulator, sf: Any) -> None:
    order = _order(emu)
    emu.remove_field("Order", "Fulfillment_Progress__c")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Fulfillment_Progress__c FROM Order")
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Order.update(order, {"Fulfillment_Progress__c": 50})


def test_count_query(emu: Emulator, sf: Any) -> None:
    _order(emu)
    _order(emu)
    assert sf.query("SELECT COUNT() FROM Order")["totalSize"] == 2


def test_invalid_query_locator(emu: Emulator, sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more("/services/data/v62.0/query/01gNOPE-2000", identifier_is_url=True)
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_child_results_are_paged_past_the_child_batch(emu: Emulator, sf: Any) -> None:
    order = _order(emu)
    small = _order(emu)
    emu.insert_many(
        "Fulfillment_Task__c", [{"Order__c": order, "Step__c": f"{n:03d}"} for n in range(450)]
    )
    emu.insert("Fulfillment_Task__c", {"Order__c": small, "Step__c": "only"})
    result = sf.query(
        "SELECT Id, (SELECT Step__c FROM Fulfillment_Tasks__r ORDER BY Step__c) FROM Order "
        "ORDER BY OrderNumber"
    )
    assert result["done"] is True, "the parents fit in one page"
    big, little = (r["Fulfillment_Tasks__r"] for r in result["records"])
    assert little == {"totalSize": 1, "done": True, "records": little["records"]}
    assert big["totalSize"] == 450
    assert big["done"] is False
    assert len(big["records"]) == 200
    steps = [r["Step__c"] for r in big["records"]]
    page = big
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        steps.extend(r["Step__c"] for r in page["records"])
    assert steps == [f"{n:03d}" for n in range(450)]
    assert emu.calls_by_kind["queryMore"] == 2


def test_the_child_batch_is_configurable_and_locators_can_be_dropped(emu: Emulator, sf: Any):
    order = _order(emu)
    emu.insert_many("Fulfillment_Task__c", [{"Order__c": order, "Step__c": "s"}] * 5)
    emu.queries.child_batch = 2
    emu.queries.max_cursors = 0  # Salesforce drops the oldest locators past its limit
    children = sf.query("SELECT Id, (SELECT Id FROM Fulfillment_Tasks__r) FROM Order")["records"][
        0
    ]["Fulfillment_Tasks__r"]
    assert (children["totalSize"], children["done"], len(children["records"])) == (5, False, 2)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more(children["nextRecordsUrl"], identifier_is_url=True)
    assert sf_errors(exc.value)[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
