"""The field bitmaps of a change event's header (changedFields, nulledFields, diffFields).

Salesforce does not list field names in a change event: each of those header fields is a list
of hex strings. The first, ``0x...``, is a bitmap over the event schema's top-level fields, bit
``i`` (counted from the least significant) standing for the schema's ``i``-th field. Further
entries ``"P-0x..."`` are bitmaps over the fields of the compound field at position ``P`` (an
address, a name). Decoding needs the schema the event was written with (GetSchema), so both
directions take the Avro schema as parsed JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = Mapping[str, Any]


def _fields(schema: Schema) -> list[Mapping[str, Any]]:
    return list(schema.get("fields", []))


def _record_of(field_type: Any) -> Schema | None:
    """The record schema inside a field's type (``["null", {record}]`` or ``{record}``)."""
    candidates = field_type if isinstance(field_type, list) else [field_type]
    for candidate in candidates:
        if isinstance(candidate, Mapping) and candidate.get("type") == "record":
            return candidate
    return None


def _names_in(bitmap: str, fields: list[Mapping[str, Any]]) -> list[str]:
    bits = int(bitmap, 16)
    return [str(field["name"]) for index, field in enumerate(fields) if bits >> index & 1]


def _bitmap(positions: Iterable[int]) -> str:
    value = 0
    for position in positions:
        value |= 1 << position
    digits = format(value, "x")
    return "0x" + digits.zfill(len(digits) + len(digits) % 2).upper()


def decode(bitmaps: Iterable[str], schema: Schema) -> list[str]:
    """Field names a header bitmap list marks; a compound's fields as ``Parent.Child``."""
    fields = _fields(schema)
    names: list[str] = []
    for entry in bitmaps:
        if entry.startswith("0x"):
            names.extend(_names_in(entry, fields))
            continue
        position, _, child_bitmap = entry.partition("-")
        if not position.isdigit() or int(position) >= len(fields):
            raise ValueError(f"change event bitmap {entry!r} names no field of the schema")
        parent = fields[int(position)]
        child = _record_of(parent["type"])
        if child is None:
            raise ValueError(f"change event bitmap {entry!r}: {parent['name']} is not compound")
        names.extend(f"{parent['name']}.{name}" for name in _names_in(child_bitmap, _fields(child)))
    return names


def encode(names: Iterable[str], schema: Schema) -> list[str]:
    """The bitmap list marking ``names`` (``Parent.Child`` for a compound's field)."""
    fields = _fields(schema)
    position = {str(field["name"]): index for index, field in enumerate(fields)}
    top: set[int] = set()
    nested: dict[int, set[int]] = {}
    for name in names:
        parent, _, child_name = name.partition(".")
        if parent not in position:
            raise ValueError(f"{parent} is not a field of the change event schema")
        if not child_name:
            top.add(position[parent])
            continue
        child = _record_of(fields[position[parent]]["type"])
        child_fields = [str(field["name"]) for field in _fields(child or {})]
        if child_name not in child_fields:
            raise ValueError(f"{name} is not a field of the change event schema")
        nested.setdefault(position[parent], set()).add(child_fields.index(child_name))
    result = [_bitmap(top)] if top else []
    result.extend(f"{parent}-{_bitmap(children)}" for parent, children in sorted(nested.items()))
    return result
