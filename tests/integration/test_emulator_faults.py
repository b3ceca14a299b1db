"""Fault injection and the daily API limit of the emulator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from salesforce.emulator import Emulator, Fault
from tests.integration.emulator_helpers import TIMEOUT, connect, pinned_session, sf_errors


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path / "org", daily_limit=50, admin_api=True)
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


def _orders(emu: Emulator, n: int) -> list[str]:
    return emu.insert_many("Order", [{"Status": "Draft", "EffectiveDate": "2026-01-01"}] * n)


def test_daily_limit(emu: Emulator, sf: Any) -> None:
    for _ in range(50):
        sf.query("SELECT Id FROM Order")
    assert sf.api_usage["api-usage"].used == 50
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM Order")
    assert exc.value.status == 403
    assert sf_errors(exc.value) == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert emu.api_calls == 51


def test_503_with_retry_after(emu: Emulator, sf: Any, session: requests.Session) -> None:
    emu.faults = Fault(rate_503=1.0, seed=1)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.query("SELECT Id FROM Order")
    assert exc.value.status == 503
    assert sf_errors(exc.value)[0]["errorCode"] == "SERVER_UNAVAILABLE"
    raw = session.get(
        f"{emu.url}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {emu.issue_session()}"},
        timeout=TIMEOUT,
    )
    assert raw.status_code == 503
    assert raw.headers["Retry-After"] == "1"
    assert emu.faults.rate_503 == 1.0


def test_lock_fault_fails_records_without_applying_them(emu: Emulator, sf: Any) -> None:
    orders = _orders(emu, 10)
    emu.set_faults(Fault(rate_lock=1.0, seed=3))
    body = {
        "records": [{"attributes": {"type": "Order"}, "id": o, "Description": "x"} for o in orders]
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    failed = [r for r in results if not r["success"]]
    assert failed
    assert {r["errors"][0]["statusCode"] for r in failed} == {"UNABLE_TO_LOCK_ROW"}
    described = {o["Id"]: o["Description"] for o in emu.records("Order")}
    for result in results:
        assert described[result["id"]] == ("x" if result["success"] else None)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Order.update(orders[0], {"Description": "y"})
    assert sf_errors(exc.value)[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert emu.get("Order", orders[0])["Description"] != "y"


def test_invalid_session_fault_revokes_the_token(emu: Emulator, sf: Any) -> None:
    emu.faults = Fault(rate_invalid_session=1.0)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Order")
    emu.faults = Fault()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Order")


def test_limit_fault(emu: Emulator, sf: Any) -> None:
    emu.faults = Fault(rate_limit_exceeded=1.0)
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.limits()
    assert sf_errors(exc.value)[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_faults_are_seeded_and_mixed(emu: Emulator, sf: Any) -> None:
    def outcomes() -> list[str]:
        emu.faults = Fault(rate_503=0.3, rate_lock=0.2, seed=42)
        seen = []
        for _ in range(20):
            try:
                sf.query("SELECT Id FROM Order")
                seen.append("ok")
            except SalesforceGeneralError as exc:
                seen.append(str(exc.status))
            except SalesforceMalformedRequest:
                seen.append("lock")
        return seen

    first = outcomes()
    assert set(first) == {"ok", "503", "lock"}
    assert outcomes() == first


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        Fault(rate_503=0.7, rate_lock=0.7)


def test_stats_endpoint_needs_no_auth_and_is_not_counted(
    emu: Emulator, sf: Any, session: requests.Session
) -> None:
    sf.query("SELECT Id FROM Order")
    stats = session.get(f"{emu.url}/_emulator/stats", timeout=TIMEOUT).json()
    assert stats["api_calls"] == 1
    assert stats["calls_by_kind"]["query"] == 1
    assert emu.api_calls == 1


def test_concurrent_clients(tmp_path: Path) -> None:
    with Emulator(tmp_path / "busy", admin_api=True) as emu:
        orders = _orders(emu, 20)
        errors: list[BaseException] = []

        def work(order: str) -> None:
            session = pinned_session(emu)
            try:
                client: Any = connect(emu, session)
                for n in range(5):
                    client.Order.update(order, {"Description": str(n)})
                    client.query(f"SELECT Id, Description FROM Order WHERE Id = '{order}'")
            except BaseException as exc:
                errors.append(exc)
            finally:
                session.close()

        threads = [threading.Thread(target=work, args=(o,)) for o in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert emu.api_calls == 200
        assert {o["Description"] for o in emu.records("Order")} == {"4"}


def test_both_kinds_of_limit_refusal(emu: Emulator, sf: Any) -> None:
    emu.refuse_next("concurrent")
    emu.refuse_next("limit")
    with pytest.raises(SalesforceRefusedRequest) as concurrent:
        sf.query("SELECT Id FROM Order")
    with pytest.raises(SalesforceRefusedRequest) as spent:
        sf.query("SELECT Id FROM Order")
    assert sf_errors(concurrent.value) == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert sf_errors(spent.value)[0]["message"] == "TotalRequests Limit exceeded."
    assert sf.query("SELECT Id FROM Order")["totalSize"] == 0, "forced faults are used up"
    emu.faults = Fault(rate_concurrent_limit=1.0)
    with pytest.raises(SalesforceRefusedRequest, match="ConcurrentPerOrgLongTxn"):
        sf.limits()


def test_the_rolling_window_frees_calls(emu: Emulator, sf: Any) -> None:
    for _ in range(50):
        sf.query("SELECT Id FROM Order")
    with pytest.raises(SalesforceRefusedRequest):
        sf.limits()
    assert emu.api_usage == (51, 50)
    emu.free_calls(30)
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 50, "Remaining": 28}
    assert sf.api_usage["api-usage"].used == 22
    assert emu.api_calls == 52, "every call is still counted"
    emu.spend_calls(28)  # another integration of the org
    with pytest.raises(SalesforceRefusedRequest, match="TotalRequests"):
        sf.limits()
    assert emu.api_usage == (51, 50)
