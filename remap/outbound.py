"""Outbound: a task's payload in the ids its system speaks (pure).

Which values are ids: every string in the payload (at any depth) that is a Salesforce id of
a known object (by key prefix), or, when the system's ``keys`` are configured, only values
under those keys. Each is first brought to its standard id (a legacy id through the
crosswalk; a CPQ id with no mapping is an error, never sent as is), then put in the
system's language:

- ``standard``: the standard id;
- ``legacy``: the legacy id it was migrated from, when it has one (a record created after the
  migration has none, and its standard id is the only name it has);
- ``own``: the system's own key for it, when the system told us one; else the standard id.

When a standard id has several legacy ids (an OrderItem from a quote line and a subscription),
the first legacy object type in :data:`LEGACY_PREFERENCE` wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestration.errors import RecordError
from remap.config import Outbound, Speaks
from remap.crosswalk import Mapping as CrosswalkMapping
from remap.ids import Prefixes, canonical, is_id

LEGACY_PREFERENCE = (
    "Order",
    "Contract",
    "SBQQ__Subscription__c",
    "SBQQ__QuoteLine__c",
    "SBQQ__Quote__c",
)


@dataclass(frozen=True)
class Lookups:
    """What the crosswalk says about the ids of one payload."""

    to_standard: Mapping[str, CrosswalkMapping] = field(default_factory=dict)
    to_legacy: Mapping[str, list[CrosswalkMapping]] = field(default_factory=dict)
    own: Mapping[str, str] = field(default_factory=dict)


def payload_ids(payload: Any, rule: Outbound, prefixes: Prefixes) -> set[str]:
    """The canonical ids in a payload that translation looks at."""
    return {canonical(v) for v in _values(payload, rule.keys, prefixes, inside=rule.keys is None)}


def _values(value: Any, keys: Iterable[str] | None, prefixes: Prefixes, inside: bool) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _values(item, keys, prefixes, inside or (keys is not None and key in keys))
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, keys, prefixes, inside)
    elif inside and _is_object_id(value, prefixes):
        yield value


def _is_object_id(value: Any, prefixes: Prefixes) -> bool:
    return is_id(value) and prefixes.object_of(str(value)) is not None


def to_standard(value: str, lookups: Lookups, prefixes: Prefixes) -> str:
    """The standard id of ``value``; RecordError for a CPQ id the crosswalk does not know."""
    legacy = canonical(value)
    mapping = lookups.to_standard.get(legacy)
    if mapping is not None:
        return mapping.standard_id
    if prefixes.is_custom(legacy):
        kind = prefixes.object_of(legacy)
        raise RecordError(f"legacy {kind} {value} has no standard mapping")
    return value


def translate(
    payload: dict[str, Any],
    rule: Outbound,
    speaks: Speaks,
    lookups: Lookups,
    prefixes: Prefixes,
) -> dict[str, Any]:
    """The payload in ``speaks``; raises RecordError naming an id that cannot be resolved."""

    def one(value: str) -> str:
        standard = to_standard(value, lookups, prefixes)
        key = canonical(standard)
        if speaks is Speaks.LEGACY and lookups.to_legacy.get(key):
            return preferred(lookups.to_legacy[key]).legacy_id
        if speaks is Speaks.OWN and key in lookups.own:
            return lookups.own[key]
        return standard

    def walk(value: Any, inside: bool) -> Any:
        if isinstance(value, dict):
            return {
                k: walk(v, inside or (rule.keys is not None and k in rule.keys))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v, inside) for v in value]
        if inside and _is_object_id(value, prefixes):
            return one(str(value))
        return value

    result: dict[str, Any] = walk(payload, rule.keys is None)
    return result


def preferred(mappings: Iterable[CrosswalkMapping]) -> CrosswalkMapping:
    """The mapping whose legacy id a legacy-speaking system is sent."""

    def rank(m: CrosswalkMapping) -> tuple[int, str, str]:
        order = LEGACY_PREFERENCE.index(m.legacy_type) if m.legacy_type in LEGACY_PREFERENCE else 99
        return order, m.legacy_type, m.legacy_id

    return min(mappings, key=rank)
