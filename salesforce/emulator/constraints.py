"""The rules a real org applies to every API write, per field, with its own error codes.

Restricted picklists (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST), text length
(STRING_TOO_LONG), number precision (NUMBER_OUTSIDE_VALID_RANGE; extra decimals are rounded
to the scale, as Salesforce does), required fields (REQUIRED_FIELD_MISSING), lookup targets
by key prefix (FIELD_INTEGRITY_EXCEPTION) and unique fields (DUPLICATE_VALUE). Values come in
already coerced to their stored type (``org._coerce``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from salesforce.emulator.errors import ApiError, bad_request
from salesforce.emulator.ids import KEY_PREFIXES
from salesforce.emulator.schema import NUMBER_TYPES, FieldDef, ObjectDef

#: Finds the Ids of live records of an object whose field holds a value.
Finder = Callable[[str, str, Any], list[str]]


def check(
    odef: ObjectDef,
    values: dict[str, Any],
    *,
    record_id: str | None,
    existing: Mapping[str, Any] | None,
    find: Finder,
) -> None:
    """Raise the first rule ``values`` break; round numbers to their scale in place.

    ``record_id`` and ``existing`` are the record being updated (None when creating).
    """
    for name, value in values.items():
        fdef = odef.field(name)
        if fdef is None or value is None:
            continue
        values[name] = _value(fdef, value)
        if fdef.unique:
            others = [i for i in find(odef.name, fdef.name, values[name]) if i != record_id]
            if others:
                raise _error(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {fdef.name} duplicates value on record with id: "
                    f"{others[0]}",
                    fdef,
                )
    after = {**(existing or {}), **values}
    # Creating: every required field; updating: the ones this write empties.
    missing = [
        f.name
        for f in odef.fields.values()
        if f.required and f.createable and after.get(f.name) is None
        if existing is None or f.name in values
    ]
    if missing:
        raise bad_request(
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            fields=missing,
        )


def _value(fdef: FieldDef, value: Any) -> Any:
    if fdef.type == "picklist" and fdef.restricted and value not in fdef.picklist:
        raise _error(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{fdef.label}: bad value for restricted picklist field: {value}",
            fdef,
        )
    if isinstance(value, str) and fdef.length is not None and len(value) > fdef.length:
        raise _error(
            "STRING_TOO_LONG",
            f"{fdef.label}: data value too large: {value[:80]} (max length={fdef.length})",
            fdef,
        )
    if fdef.type in NUMBER_TYPES and fdef.precision is not None:
        scale = fdef.scale or 0
        rounded = round(float(value), scale)
        if abs(rounded) >= 10 ** (fdef.precision - scale):
            raise _error(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fdef.label}: value outside of valid range on numeric field: {value}",
                fdef,
            )
        return rounded
    target = KEY_PREFIXES.get(fdef.reference_to or "")
    if fdef.type == "reference" and target and not str(value).startswith(target):
        raise _error(
            "FIELD_INTEGRITY_EXCEPTION",
            f"{fdef.label}: id value of incorrect type: {value}",
            fdef,
        )
    return value


def _error(code: str, message: str, fdef: FieldDef) -> ApiError:
    return bad_request(code, message, fields=[fdef.name])
