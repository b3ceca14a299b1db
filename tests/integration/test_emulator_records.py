"""The emulator's Python API, Ids, store, seed data and command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.http import PinnedSession
from salesforce.emulator import Emulator
from salesforce.emulator.errors import ApiError
from salesforce.emulator.ids import is_id, make_id, to18
from salesforce.emulator.seed import seed_demo_org
from tests.integration.emulator_helpers import connect, pinned_session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path / "org", admin_api=True)
    yield emulator
    emulator.stop()


def test_id_checksum() -> None:
    assert to18("001A000000H2vBq") == "001A000000H2vBqIAJ"
    assert to18("001A000000H2vBqXXX") == "001A000000H2vBqIAJ"
    assert is_id("001A000000H2vBqIAJ")
    assert not is_id("001A000000H2vBqAAA")
    assert not is_id("short")
    made = make_id("801", 62**3 + 11)
    assert len(made) == 18
    assert made.startswith("8015g0")
    assert to18(made[:15]) == made


def test_insert_sets_system_fields(emu: Emulator) -> None:
    stamp = datetime(2026, 11, 27, 0, 38, 0, 123456, tzinfo=UTC)
    first = emu.insert("Order", {"Status": "Activated"}, system_modstamp=stamp)
    second = emu.insert("Order", {"Status": "Draft"})
    record = emu.get("Order", first)
    assert record["Id"] == first
    assert first.startswith("801")
    assert record["SystemModstamp"] == "2026-11-27T00:38:00.123+0000"
    assert record["IsDeleted"] is False
    assert record["OrderNumber"] == "00000100"
    assert record["StatusCode"] == "Activated"
    assert emu.get("Order", second)["OrderNumber"] == "00000101"
    emu.update("Order", second, {"Status": "Activated"})
    assert emu.get("Order", second)["StatusCode"] == "Activated"
    emu.delete("Order", first)
    assert [r["Id"] for r in emu.records("Order")] == [second]
    assert emu.get("Order", first)["IsDeleted"] is True


def test_unknown_field_and_bad_value(emu: Emulator) -> None:
    with pytest.raises(ApiError) as info:
        emu.insert("Order", {"Nope__c": 1})
    assert info.value.code == "INVALID_FIELD"
    with pytest.raises(ApiError) as info:
        emu.insert("Order", {"EffectiveDate": "tomorrow"})
    assert info.value.code == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    with pytest.raises(ApiError) as info:
        emu.insert("Nope", {})
    assert info.value.code == "INVALID_TYPE"


def test_order_items_roll_up_and_cascade(emu: Emulator) -> None:
    order = emu.insert("Order", {"Status": "Draft"})
    product = emu.insert("Product2", {"Name": "P", "ProductCode": "P"})
    entry = emu.insert("PricebookEntry", {"Product2Id": product, "UnitPrice": 10.0})
    item = emu.insert(
        "OrderItem", {"OrderId": order, "PricebookEntryId": entry, "Quantity": 3, "UnitPrice": 10}
    )
    assert emu.get("OrderItem", item)["Product2Id"] == product
    assert emu.get("OrderItem", item)["TotalPrice"] == 30.0
    assert emu.get("Order", order)["TotalAmount"] == 30.0
    emu.delete("Order", order)
    assert emu.get("OrderItem", item)["IsDeleted"] is True


def test_seed_is_deterministic(tmp_path: Path) -> None:
    def snapshot(name: str) -> list[tuple[Any, ...]]:
        emulator = Emulator(tmp_path / name)
        seed_demo_org(emulator, orders=20, seed=11)
        rows = [
            (r["Description"], r["EffectiveDate"], r["EndDate"], r["TotalAmount"])
            for r in emulator.records("Order")
        ]
        emulator.stop()
        return rows

    assert snapshot("a") == snapshot("b")


def test_seed_shape(emu: Emulator) -> None:
    seed_demo_org(emu, orders=30)
    assert len(emu.records("Account")) == 10
    products = emu.records("Product2")
    assert {p["Family"] for p in products} == {"Subscription", "License", "Services"}
    assert {
        "PLAT-ENT",
        "PLAT-PRO",
        "ADD-SSO",
        "ADD-AUDIT",
        "SEATS-EXTRA",
        "PS-ONBOARD",
        "PS-TRAIN",
    } <= {p["ProductCode"] for p in products}
    assert len(emu.records("PricebookEntry")) == len(products)
    orders = emu.records("Order")
    assert len(orders) == 30
    assert {o["Status"] for o in orders} == {"Activated"}
    assert all(o["ActivatedDate"].endswith("+0000") for o in orders)
    per_order: dict[str, int] = {}
    for item in emu.records("OrderItem"):
        per_order[item["OrderId"]] = per_order.get(item["OrderId"], 0) + 1
    assert set(per_order) == {o["Id"] for o in orders}
    assert min(per_order.values()) >= 1 and max(per_order.values()) <= 5


def test_bulk_insert_is_fast_enough(emu: Emulator) -> None:
    orders = emu.insert_many("Order", [{"Status": "Activated"}] * 10_000)
    items = [{"OrderId": o, "Quantity": 1.0, "UnitPrice": 5.0} for o in orders for _ in range(3)]
    assert len(emu.insert_many("OrderItem", items)) == 30_000
    assert emu.get("Order", orders[-1])["TotalAmount"] == 15.0


def test_records_survive_a_restart(tmp_path: Path) -> None:
    first = Emulator(tmp_path / "org", admin_api=True)
    order = first.insert("Order", {"Status": "Draft"})
    first.stop()
    second = Emulator(tmp_path / "org", admin_api=True)
    assert second.get("Order", order)["OrderNumber"] == "00000100"
    assert second.get("Order", second.insert("Order", {}))["OrderNumber"] == "00000101"
    second.stop()


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salesforce.emulator", "--workdir", str(tmp_path / "cli"),
         "--port", "0", "--seed-orders", "5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("https://127.0.0.1:")
        assert info["token_url"] == info["url"] + "/services/oauth2/token"
        session = pinned_session_for(Path(info["ca_file"]))
        form = {
            "grant_type": "client_credentials",
            "client_id": "orderflow-demo",
            "client_secret": "demo-secret",
        }
        token = session.post(info["token_url"], data=form, timeout=10).json()["access_token"]
        answer = session.get(
            info["url"] + "/services/data/v62.0/query",
            params={"q": "SELECT Id FROM Order"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.json()["totalSize"] == 5
        session.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def pinned_session_for(ca_file: Path) -> PinnedSession:
    session = PinnedSession()
    session.verify = str(ca_file)
    return session


def test_started_twice_is_an_error(emu: Emulator) -> None:
    emu.start()
    with pytest.raises(RuntimeError):
        emu.start()
    session = pinned_session(emu)
    assert connect(emu, session).query("SELECT Id FROM Order")["totalSize"] == 0
    session.close()
