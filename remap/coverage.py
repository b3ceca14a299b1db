"""The coverage report: which legacy ids polled orders use, and which the crosswalk resolves.

Counted from the orders as polled (before inbound translation): the values of the configured
discovery and reference fields, plus any other field holding an id of a configured CPQ
object. Each legacy id counts once per object type, however many orders use it (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestration.records import Order
from remap.config import FieldRef, RemapConfig
from remap.crosswalk import Mapping as CrosswalkMapping
from remap.ids import InvalidId, canonical, is_id
from remap.inbound import found_in, legacy_type


@dataclass
class LegacyUse:
    """One legacy id: where it is used, and what it maps to (None: unresolved)."""

    legacy_id: str
    legacy_type: str
    fields: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    mapping: CrosswalkMapping | None = None

    @property
    def resolved(self) -> bool:
        return self.mapping is not None

    def row(self) -> dict[str, object]:
        """This id as a flat record, for CSV and JSON."""
        m = self.mapping
        return {
            "legacy_id": self.legacy_id,
            "legacy_type": self.legacy_type,
            "fields": sorted(self.fields),
            "resolved": self.resolved,
            "standard_id": m.standard_id if m else None,
            "standard_type": m.standard_type if m else None,
            "source": m.where() if m else None,
            "orders": sorted(self.orders),
        }


@dataclass
class Coverage:
    orders_scanned: int = 0
    uses: dict[str, LegacyUse] = field(default_factory=dict)

    def by_type(self) -> dict[str, dict[str, int]]:
        """Per legacy object type: ids referenced, resolved, unresolved."""
        out: dict[str, dict[str, int]] = {}
        for use in self.uses.values():
            counts = out.setdefault(
                use.legacy_type, {"referenced": 0, "resolved": 0, "unresolved": 0}
            )
            counts["referenced"] += 1
            counts["resolved" if use.resolved else "unresolved"] += 1
        return dict(sorted(out.items()))

    def unresolved(self) -> list[LegacyUse]:
        return sorted(
            (u for u in self.uses.values() if not u.resolved),
            key=lambda u: (u.legacy_type, u.legacy_id),
        )

    def totals(self) -> dict[str, int]:
        resolved = sum(1 for u in self.uses.values() if u.resolved)
        return {
            "orders_scanned": self.orders_scanned,
            "referenced": len(self.uses),
            "resolved": resolved,
            "unresolved": len(self.uses) - resolved,
        }


def legacy_uses(order: Order, config: RemapConfig) -> list[tuple[FieldRef, str, str]]:
    """(field, canonical legacy id, legacy type) for each legacy id the order uses."""
    configured = (*config.discovery, *config.references)
    out = []
    seen: set[tuple[str, str]] = set()
    for found in found_in(order, configured):
        try:
            legacy_id = found.legacy_id()
        except InvalidId:
            legacy_id = found.raw
        out.append((found.field, legacy_id, legacy_type(found.field, legacy_id, config.prefixes)))
        seen.add((str(found.field), legacy_id))
    # Any other field holding an id of a configured CPQ object is a legacy reference too.
    records = [("Order", order.fields)] + [("OrderItem", line.fields) for line in order.lines]
    for sobject, fields in records:
        for name, value in fields.items():
            if not is_id(value) or not config.prefixes.is_custom(str(value)):
                continue
            ref = FieldRef(sobject=sobject, name=name)
            legacy_id = canonical(str(value))
            if (str(ref), legacy_id) not in seen:
                seen.add((str(ref), legacy_id))
                out.append((ref, legacy_id, legacy_type(ref, legacy_id, config.prefixes)))
    return out


def coverage(
    orders: Iterable[Order],
    config: RemapConfig,
    lookup: Mapping[str, CrosswalkMapping] | None = None,
) -> Coverage:
    """Which legacy ids the orders use; ``lookup`` (legacy id → mapping) resolves them.

    Without ``lookup`` every use is collected unresolved; :func:`resolve_uses` fills it in.
    """
    report = Coverage()
    for order in orders:
        report.orders_scanned += 1
        for ref, legacy_id, kind in legacy_uses(order, config):
            use = report.uses.setdefault(legacy_id, LegacyUse(legacy_id, kind))
            use.fields.add(str(ref))
            use.orders.add(order.number)
    if lookup is not None:
        resolve_uses(report, lookup)
    return report


def resolve_uses(report: Coverage, lookup: Mapping[str, CrosswalkMapping]) -> None:
    for use in report.uses.values():
        use.mapping = lookup.get(use.legacy_id)
