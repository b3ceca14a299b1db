"""The Avro schemas of change events, as GetSchema returns them, and field values in them.

A change event is a record named for its entity (``com.sforce.eventbus.OrderChangeEvent``):
``ChangeEventHeader`` first, then one nullable field per object field in the emulator's
schema order (Id, IsDeleted and SystemModstamp left out: the header carries those). Its id is
a hash of the JSON, so it changes when the object's fields do. Datetimes are epoch
milliseconds (long), dates days since the epoch (int, logical type date), as Salesforce
sends them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from salesforce.emulator.schema import NUMBER_TYPES, FieldDef, ObjectDef
from salesforce.emulator.values import parse_datetime

#: The change event entities Orderflow reads, by the object they follow.
ENTITIES = {"Order": "OrderChangeEvent", "OrderItem": "OrderItemChangeEvent"}
ENTITIES["Invoice"] = "InvoiceChangeEvent"
GAP_TYPES = ("GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW")
_CHANGE_TYPES = ["CREATE", "UPDATE", "DELETE", "UNDELETE", *GAP_TYPES]
_LEFT_OUT = ("Id", "IsDeleted", "SystemModstamp")  # the header carries these
_EPOCH = date(1970, 1, 1)


def _header_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": "string"}
    fields: list[tuple[str, Any]] = [
        ("entityName", "string"),
        ("recordIds", strings),
        ("changeType", {"type": "enum", "name": "ChangeType", "symbols": _CHANGE_TYPES}),
        ("changeOrigin", "string"),
        ("transactionKey", "string"),
        ("sequenceNumber", "int"),
        ("commitTimestamp", "long"),
        ("commitNumber", "long"),
        ("commitUser", "string"),
        ("nulledFields", strings),
        ("diffFields", strings),
        ("changedFields", strings),
    ]
    return {
        "type": "record",
        "name": "ChangeEventHeader",
        "fields": [{"name": name, "type": kind} for name, kind in fields],
    }


def _avro_type(fdef: FieldDef) -> Any:
    if fdef.type == "boolean":
        return "boolean"
    if fdef.type == "int":
        return "int"
    if fdef.type in NUMBER_TYPES:
        return "double"
    if fdef.type == "datetime":
        return "long"  # epoch milliseconds, as Salesforce sends them
    if fdef.type == "date":
        return {"type": "int", "logicalType": "date"}
    return "string"


def avro_value(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if fdef.type == "datetime":
        return int(parse_datetime(str(value)).timestamp() * 1000)
    if fdef.type == "date":
        return (date.fromisoformat(str(value)) - _EPOCH).days
    if fdef.type == "int":
        return int(value)
    if fdef.type in NUMBER_TYPES:
        return float(value)
    return value if fdef.type == "boolean" else str(value)


def event_fields(odef: ObjectDef) -> list[FieldDef]:
    """The object's fields a change event carries, in the schema's order."""
    return [f for f in odef.fields.values() if f.name not in _LEFT_OUT]


def change_schema(odef: ObjectDef) -> dict[str, Any]:
    """The Avro schema of ``odef``'s change event, as GetSchema returns it (parsed)."""
    entity = ENTITIES.get(odef.name, odef.name.removesuffix("__c") + "__ChangeEvent")
    header = {"name": "ChangeEventHeader", "type": _header_schema(), "doc": "Data:Header"}
    fields = [
        {"name": f.name, "type": ["null", _avro_type(f)], "default": None, "doc": f.label}
        for f in event_fields(odef)
    ]
    return {
        "type": "record",
        "name": entity,
        "namespace": "com.sforce.eventbus",
        "fields": [header, *fields],
    }


def schema_id_of(schema: Mapping[str, Any]) -> str:
    """A stable id for a schema: 22 characters of the hash of its canonical JSON."""
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
