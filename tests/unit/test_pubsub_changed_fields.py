"""The change-event header's field bitmaps, and the committed Pub/Sub stubs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from salesforce.pubsub import changed_fields

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [
        {"name": "Street", "type": ["null", "string"]},
        {"name": "City", "type": ["null", "string"]},
    ],
}
SCHEMA = {
    "type": "record",
    "name": "OrderChangeEvent",
    "fields": [
        {"name": "ChangeEventHeader", "type": "string"},
        {"name": "Status", "type": ["null", "string"]},
        {"name": "Description", "type": ["null", "string"]},
        {"name": "BillingAddress", "type": ["null", ADDRESS]},
        *({"name": f"Field{n}__c", "type": ["null", "string"]} for n in range(4, 12)),
    ],
}


def test_top_level_bits_count_from_the_least_significant() -> None:
    # Status is field 1 and Description field 2: bits 1 and 2, 0b110.
    assert changed_fields.decode(["0x06"], SCHEMA) == ["Status", "Description"]
    assert changed_fields.encode(["Description", "Status"], SCHEMA) == ["0x06"]


def test_bitmaps_wider_than_a_byte() -> None:
    assert changed_fields.decode(["0x0802"], SCHEMA) == ["Status", "Field11__c"]
    assert changed_fields.encode(["Field11__c", "Status"], SCHEMA) == ["0x0802"]


def test_a_compound_fields_children_by_parent_position() -> None:
    assert changed_fields.decode(["0x02", "3-0x02"], SCHEMA) == ["Status", "BillingAddress.City"]
    assert changed_fields.encode(["BillingAddress.City", "Status"], SCHEMA) == ["0x02", "3-0x02"]


def test_round_trip_of_every_single_field() -> None:
    for field in SCHEMA["fields"]:
        name = str(field["name"])  # type: ignore[index]
        assert changed_fields.decode(changed_fields.encode([name], SCHEMA), SCHEMA) == [name]


def test_unknown_names_and_positions_are_refused() -> None:
    with pytest.raises(ValueError, match="Nope is not a field"):
        changed_fields.encode(["Nope"], SCHEMA)
    with pytest.raises(ValueError, match="names no field"):
        changed_fields.decode(["40-0x01"], SCHEMA)
    with pytest.raises(ValueError, match="is not compound"):
        changed_fields.decode(["1-0x01"], SCHEMA)


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proto = "salesforce/pubsub/pubsub_api.proto"
    (tmp_path / "salesforce/pubsub").mkdir(parents=True)
    (tmp_path / proto).write_bytes((root / proto).read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            proto,
        ],
        cwd=tmp_path,
        check=True,
    )
    for name in ("pubsub_api_pb2.py", "pubsub_api_pb2.pyi", "pubsub_api_pb2_grpc.py"):
        generated = (tmp_path / "salesforce/pubsub" / name).read_text()
        committed = (root / "salesforce/pubsub" / name).read_text()
        assert generated == committed, f"salesforce/pubsub/{name} is stale: run `make protos`"
