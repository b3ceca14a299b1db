"""The emulator's change event bus without gRPC: what one committed change becomes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from salesforce.emulator.auth import ADMIN_USER_ID, API_USER_ID
from salesforce.emulator.change_schema import change_schema, schema_id_of
from salesforce.emulator.events import Bus
from salesforce.emulator.schema import Schema
from salesforce.emulator.store import Change
from salesforce.pubsub import changed_fields

ORDERS = "/data/OrderChangeEvent"
STAMP = "2026-11-27T00:38:00.000+0000"
LATER = "2026-11-27T00:39:00.000+0000"


def _order(**fields: Any) -> dict[str, Any]:
    base = {
        "Id": "8015g0000000001AAA",
        "AccountId": "0015g0000000001AAA",
        "Status": "Draft",
        "EffectiveDate": "2026-01-01",
        "IsDeleted": False,
        "CreatedDate": STAMP,
        "LastModifiedDate": STAMP,
        "SystemModstamp": STAMP,
    }
    return {**base, **fields}


@pytest.fixture
def bus() -> Bus:
    return Bus(Schema(), ["OrderChangeEvent", "OrderItemChangeEvent"], "62.0")


def _published(bus: Bus, topic: str = ORDERS) -> list[dict[str, Any]]:
    out = []
    for event in bus.after(topic, bus.forgotten, 100):
        schema = change_schema(bus.schema.obj(event.record["ChangeEventHeader"]["entityName"]))
        assert schema_id_of(schema) == event.schema_id
        record: Any = fastavro.schemaless_reader(io.BytesIO(bus.payload(event)), schema)
        header = record["ChangeEventHeader"]
        header["changed"] = changed_fields.decode(header["changedFields"], schema)
        header["nulled"] = changed_fields.decode(header["nulledFields"], schema)
        out.append(record)
    return out


def test_update_delete_and_undelete(bus: Bus) -> None:
    before = _order(Description="old")
    after = _order(Description=None, Status="Activated", LastModifiedDate=LATER)
    after["SystemModstamp"] = LATER
    bus.publish([Change("Order", before["Id"], before, after, API_USER_ID)])
    deleted = {**after, "IsDeleted": True}
    bus.publish([Change("Order", before["Id"], after, deleted, ADMIN_USER_ID)])
    bus.publish([Change("Order", before["Id"], deleted, after, ADMIN_USER_ID)])
    update, delete, undelete = _published(bus)
    header = update["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert set(header["changed"]) == {"Description", "Status", "LastModifiedDate"}
    assert header["nulled"] == ["Description"]
    assert header["changeOrigin"] == "com/salesforce/api/rest/62.0"
    assert header["commitTimestamp"] == datetime(2026, 11, 27, 0, 39, tzinfo=UTC).timestamp() * 1000
    assert (update["Status"], update["AccountId"]) == ("Activated", None)
    assert delete["ChangeEventHeader"]["changeType"] == "DELETE"
    assert delete["Status"] is None and delete["ChangeEventHeader"]["changeOrigin"] == ""
    assert undelete["ChangeEventHeader"]["changeType"] == "UNDELETE"
    assert undelete["AccountId"] == "0015g0000000001AAA"
    numbers = [r["ChangeEventHeader"]["commitNumber"] for r in (update, delete, undelete)]
    assert numbers == sorted(set(numbers))


def test_a_save_that_changes_no_event_field_publishes_nothing(bus: Bus) -> None:
    order = _order()
    bus.publish([Change("Order", order["Id"], order, {**order, "SystemModstamp": LATER}, None)])
    bus.publish([Change("Account", "0015g0000000001AAA", None, {"Name": "Acme"}, None)])
    assert bus.published == {}


def test_unselected_objects_publish_nothing(bus: Bus) -> None:
    bus.select(["OrderItemChangeEvent"])
    bus.publish([Change("Order", "8015g0000000001AAA", None, _order(), None)])
    assert bus.published == {}
    assert bus.object_of(ORDERS) is None
    with pytest.raises(ValueError, match="not a change event entity"):
        bus.select(["AccountChangeEvent"])


def test_replay_window(bus: Bus) -> None:
    for _ in range(3):
        bus.publish([Change("Order", "8015g0000000001AAA", None, _order(), None)])
    ids = [event.replay_id for event in bus.after(ORDERS, bus.forgotten, 10)]
    assert all(bus.valid_start(i) for i in ids)
    assert not bus.valid_start(ids[-1] + 1)  # not yet published
    bus.forget(before=ids[1])
    assert not bus.valid_start(ids[0])
    assert bus.valid_start(ids[1])
    assert [e.replay_id for e in bus.after(ORDERS, ids[1], 10)] == ids[2:]
    assert [e.replay_id for e in bus.after(ORDERS, bus.forgotten, 10)] == ids[1:]
