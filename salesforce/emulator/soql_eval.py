"""Pure SOQL evaluation: bind a parsed query to the schema, filter, sort and shape rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from salesforce.emulator.ids import is_id
from salesforce.emulator.schema import (
    NUMBER_TYPES,
    STRING_TYPES,
    ChildRelationship,
    FieldDef,
    ObjectDef,
    Schema,
)
from salesforce.emulator.soql import (
    And,
    Comparison,
    Condition,
    Count,
    Field,
    In,
    Like,
    Not,
    Or,
    OrderBy,
    Query,
    SoqlError,
    Value,
)
from salesforce.emulator.values import normalize_datetime

_TYPE_NAMES = {"datetime": "dateTime", "date": "date", "boolean": "boolean"}


@dataclass(frozen=True)
class BoundField:
    """A resolved field path: ``key`` is canonical, ``lookup`` set for ``Parent.Field``."""

    key: tuple[str, ...]
    fdef: FieldDef
    lookup: FieldDef | None = None
    parent: ObjectDef | None = None


@dataclass
class Rec:
    """A record being evaluated, with its parents (by relationship) and children."""

    fields: dict[str, Any]
    parents: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    children: dict[str, list[Rec]] = field(default_factory=dict)

    def value(self, key: tuple[str, ...]) -> Any:
        """The value at a canonical field path (None through a null parent)."""
        if len(key) == 1:
            return self.fields.get(key[0])
        parent = self.parents.get(key[0])
        return None if parent is None else parent.get(key[1])


@dataclass
class BoundQuery:
    """A query checked against the schema, ready to run."""

    query: Query
    obj: ObjectDef
    items: list[BoundField | tuple[ChildRelationship, BoundQuery]]
    count: bool
    resolved: dict[tuple[str, ...], BoundField]
    lookups: dict[str, tuple[FieldDef, ObjectDef]]  # relationship name -> (lookup, parent)
    literals: dict[int, Any] = field(default_factory=dict)  # per-condition literal cache

    @property
    def subqueries(self) -> list[tuple[ChildRelationship, BoundQuery]]:
        """The parent-to-child subqueries, in select order."""
        return [item for item in self.items if isinstance(item, tuple)]


def _no_column(name: str, obj: ObjectDef) -> SoqlError:
    return SoqlError(
        f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a "
        "custom field, be sure to append the '__c' after the custom field name. Please "
        "reference your WSDL or the describe call for the appropriate names.",
        "INVALID_FIELD",
    )


def _resolve(schema: Schema, obj: ObjectDef, ref: Field, bq: BoundQuery) -> BoundField:
    lowered = tuple(part.lower() for part in ref.path)
    if lowered in bq.resolved:
        return bq.resolved[lowered]
    if len(ref.path) == 1:
        fdef = obj.field(ref.path[0])
        if fdef is None:
            raise _no_column(ref.path[0], obj)
        bound = BoundField((fdef.name,), fdef)
    elif len(ref.path) == 2:
        lookup = obj.relationship(ref.path[0])
        parent = schema.find(lookup.reference_to) if lookup and lookup.reference_to else None
        if lookup is None or parent is None or lookup.relationship_name is None:
            raise SoqlError(
                f"Didn't understand relationship '{ref.path[0]}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after "
                "the custom relationship name.",
                "INVALID_FIELD",
            )
        fdef = parent.field(ref.path[1])
        if fdef is None:
            raise _no_column(".".join(ref.path), obj)
        bound = BoundField((lookup.relationship_name, fdef.name), fdef, lookup, parent)
        bq.lookups[lookup.relationship_name] = (lookup, parent)
    else:
        raise SoqlError(f"relationship paths deeper than one level: {'.'.join(ref.path)}")
    bq.resolved[lowered] = bound
    return bound


def bind(query: Query, schema: Schema, obj: ObjectDef | None = None) -> BoundQuery:
    """Check ``query`` against ``schema``; raises INVALID_TYPE / INVALID_FIELD / MALFORMED."""
    obj = obj or schema.find(query.sobject)
    if obj is None:
        raise SoqlError(
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use "
            "a custom object, be sure to append the '__c' after the entity name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
            "INVALID_TYPE",
        )
    bq = BoundQuery(query, obj, [], False, {}, {})
    for item in query.items:
        if isinstance(item, Count):
            bq.count = True
        elif isinstance(item, Query):
            rel = obj.children.get(item.sobject.lower())
            if rel is None:
                raise SoqlError(
                    f"Didn't understand relationship '{item.sobject}' in FROM part of query "
                    "call. If you are attempting to use a custom relationship, be sure to "
                    "append the '__r' after the custom relationship name.",
                    "INVALID_TYPE",
                )
            bq.items.append((rel, bind(item, schema, schema.obj(rel.child))))
        else:
            bq.items.append(_resolve(schema, obj, item, bq))
    if bq.count and len(query.items) > 1:
        raise SoqlError("COUNT() must be the only element in the SELECT list")
    if query.where is not None:
        _check_condition(query.where, schema, obj, bq)
    for key in query.order_by:
        _resolve(schema, obj, key.field, bq)
    return bq


def _check_condition(cond: Condition, schema: Schema, obj: ObjectDef, bq: BoundQuery) -> None:
    if isinstance(cond, And | Or):
        for item in cond.items:
            _check_condition(item, schema, obj, bq)
    elif isinstance(cond, Not):
        _check_condition(cond.item, schema, obj, bq)
    elif isinstance(cond, Like):
        bound = _resolve(schema, obj, cond.field, bq)
        if bound.fdef.type not in STRING_TYPES:
            raise SoqlError(
                f"invalid operator on field '{bound.fdef.name}': LIKE",
                "INVALID_QUERY_FILTER_OPERATOR",
            )
    else:
        bound = _resolve(schema, obj, cond.field, bq)
        values = cond.values if isinstance(cond, In) else (cond.value,)
        for value in values:
            _check_literal(bound.fdef, value)


def _check_literal(fdef: FieldDef, value: Value) -> None:
    if value.kind == "null":
        return
    ftype = fdef.type
    if ftype in STRING_TYPES:
        if value.kind != "string":
            raise SoqlError(
                f"value of filter criterion for field '{fdef.name}' must be of type string "
                "and should be enclosed in quotes"
            )
        if ftype in ("id", "reference") and value.value and not is_id(str(value.value)):
            raise SoqlError(f"invalid ID field: {value.value}", "INVALID_QUERY_FILTER_OPERATOR")
        return
    expected = "number" if ftype in NUMBER_TYPES else ftype
    if value.kind != expected:
        quoted = "and should not be enclosed in quotes" if value.kind == "string" else ""
        raise SoqlError(
            f"value of filter criterion for field '{fdef.name}' must be of type "
            f"{_TYPE_NAMES.get(expected, 'double')} {quoted}".rstrip()
        )


def comparable(fdef: FieldDef, raw: Any) -> Any:
    """A stored value (or literal) in a form that compares as Salesforce compares it."""
    if raw is None:
        return None
    ftype = fdef.type
    if ftype in ("id", "reference"):
        return str(raw)[:15]
    if ftype in STRING_TYPES:
        return str(raw).casefold()
    if ftype in NUMBER_TYPES:
        return float(raw)
    if ftype == "datetime":
        text = str(raw)
        # Stored values are already canonical (UTC, fixed width), so they sort by instant.
        return text if len(text) == 28 and text.endswith("+0000") else normalize_datetime(text)
    return raw


def _literal(fdef: FieldDef, value: Value) -> Any:
    raw = value.value
    return comparable(fdef, float(raw) if isinstance(raw, Decimal) else raw)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def matches(cond: Condition, rec: Rec, bq: BoundQuery) -> bool:
    """Whether ``rec`` satisfies ``cond`` (which must have been bound into ``bq``)."""
    if isinstance(cond, And):
        return all(matches(item, rec, bq) for item in cond.items)
    if isinstance(cond, Or):
        return any(matches(item, rec, bq) for item in cond.items)
    if isinstance(cond, Not):
        return not matches(cond.item, rec, bq)
    bound = bq.resolved[tuple(part.lower() for part in cond.field.path)]
    actual = comparable(bound.fdef, rec.value(bound.key))
    if isinstance(cond, Like):
        return actual is not None and bool(_like_regex(cond.pattern).fullmatch(str(actual)))
    if isinstance(cond, In):
        wanted = bq.literals.get(id(cond))
        if wanted is None:
            wanted = bq.literals[id(cond)] = {_literal(bound.fdef, v) for v in cond.values}
        return (actual in wanted) != cond.negated
    assert isinstance(cond, Comparison)
    expected = _literal(bound.fdef, cond.value)
    if cond.op == "=":
        return bool(actual == expected)
    if cond.op == "!=":
        return bool(actual != expected)
    if actual is None or expected is None:
        return False
    return _OPS[cond.op](actual, expected)


def _sort(recs: list[Rec], keys: Iterable[OrderBy], bq: BoundQuery) -> list[Rec]:
    ordered = list(recs)
    for key in reversed(list(keys)):
        bound = bq.resolved[tuple(part.lower() for part in key.field.path)]
        nulls_last = key.descending if key.nulls_last is None else key.nulls_last
        present = [r for r in ordered if r.value(bound.key) is not None]
        missing = [r for r in ordered if r.value(bound.key) is None]
        present.sort(
            key=lambda r, b=bound: comparable(b.fdef, r.value(b.key)),  # type: ignore[misc]
            reverse=key.descending,
        )
        ordered = present + missing if nulls_last else missing + present
    return ordered


def select(recs: Iterable[Rec], bq: BoundQuery) -> list[Rec]:
    """Apply WHERE, ORDER BY, OFFSET and LIMIT."""
    query = bq.query
    chosen = [r for r in recs if query.where is None or matches(query.where, r, bq)]
    if query.order_by:
        chosen = _sort(chosen, query.order_by, bq)
    start = query.offset or 0
    end = None if query.limit is None else start + query.limit
    return chosen[start:end]


def attributes(sobject: str, record_id: str | None, api_version: str) -> dict[str, str]:
    """A record's ``attributes`` entry."""
    url = f"/services/data/v{api_version}/sobjects/{sobject}/{record_id}"
    return {"type": sobject, "url": url}


def project(rec: Rec, bq: BoundQuery, api_version: str) -> dict[str, Any]:
    """Shape ``rec`` as the REST API returns it for ``bq``'s select list."""
    out: dict[str, Any] = {"attributes": attributes(bq.obj.name, rec.fields["Id"], api_version)}
    for item in bq.items:
        if isinstance(item, tuple):
            rel, sub = item
            children = select(rec.children.get(rel.name, []), sub)
            out[rel.name] = (
                {
                    "totalSize": len(children),
                    "done": True,
                    "records": [project(child, sub, api_version) for child in children],
                }
                if children
                else None
            )
        elif item.lookup is None:
            out[item.fdef.name] = rec.fields.get(item.fdef.name)
        else:
            assert item.parent is not None
            rel_name = item.key[0]
            parent = rec.parents.get(rel_name)
            if parent is None:
                out[rel_name] = None
                continue
            nested = out.get(rel_name) or {
                "attributes": attributes(item.parent.name, parent.get("Id"), api_version)
            }
            nested[item.fdef.name] = parent.get(item.fdef.name)
            out[rel_name] = nested
    return out
