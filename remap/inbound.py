"""Inbound: what a polled order says about legacy ids, and the order with them resolved (pure).

Two kinds of migration field (see :class:`remap.config.RemapConfig`):

- a *discovery* field holds the record's own legacy id (``OrderItem.Legacy_CPQ_Id__c``,
  ``Order.SBQQ__Quote__c``): the crosswalk learns "that legacy id is this record";
- a *reference* field points at another record by its legacy id (an amendment line's
  ``SBQQ__Subscription__c``): it is replaced by the standard id before decomposition, so the
  core only ever sees standard ids. The polled row in the store keeps the original.

A reference that cannot be resolved holds the whole order: rather than fulfil a line against
the wrong subscription, the plan is one fallout step per unresolved id, saying which.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from orchestration.decompose import PlannedStep, fallout_step
from orchestration.errors import RecordError
from orchestration.records import Order, OrderLine
from remap.config import CPQ_TYPES, FieldRef, RemapConfig
from remap.crosswalk import Candidate, Source
from remap.crosswalk import Mapping as CrosswalkMapping
from remap.ids import InvalidId, Prefixes, canonical


@dataclass(frozen=True)
class Found:
    """A legacy id in a polled order: which field, on which line (None: the order)."""

    field: FieldRef
    line: OrderLine | None
    raw: str

    @property
    def record_id(self) -> str | None:
        return self.line.id if self.line else None

    def legacy_id(self) -> str:
        """The canonical id; raises InvalidId when the field holds something else."""
        return canonical(self.raw)


@dataclass(frozen=True)
class Problem:
    """Why an order cannot go on: one unresolved or contradicted legacy id."""

    field: FieldRef
    line: OrderLine | None
    reason: str

    def step(self) -> PlannedStep:
        suffix = f"remap.{self.field.name}"
        if self.line is None:
            return fallout_step(suffix, f"Map legacy {self.field}", self.reason)
        title = f"Map legacy {self.field} (line {self.line.number}, {self.line.product_label})"
        return fallout_step(f"{suffix}@{self.line.id}", title, self.reason, self.line.id)


class Unresolved(RecordError):
    """An order that refers to legacy ids the crosswalk cannot resolve; held as fallout."""

    def __init__(self, order: Order, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.reason for p in problems))
        self.order = order
        self.problems = problems

    @property
    def steps(self) -> list[PlannedStep]:
        return [p.step() for p in self.problems]


def found_in(order: Order, fields: tuple[FieldRef, ...]) -> Iterator[Found]:
    """Every non-empty value of ``fields`` on the order and its lines."""
    for ref in fields:
        if ref.sobject == "Order":
            if order.fields.get(ref.name):
                yield Found(ref, None, str(order.fields[ref.name]))
            continue
        for line in order.lines:
            if line.fields.get(ref.name):
                yield Found(ref, line, str(line.fields[ref.name]))


def legacy_type(field: FieldRef, legacy_id: str, prefixes: Prefixes) -> str:
    """The legacy object an id belongs to: by its key prefix, else by the field's name."""
    by_prefix = prefixes.object_of(legacy_id)
    if by_prefix is not None and by_prefix != "Account":
        return by_prefix
    return field.name if field.name in CPQ_TYPES else "unknown"


def discover(
    order: Order, config: RemapConfig, now: datetime
) -> tuple[list[tuple[Found, Candidate]], list[Problem]]:
    """The mappings the order's discovery fields teach, and the values that are not ids."""
    candidates: list[tuple[Found, Candidate]] = []
    problems: list[Problem] = []
    for found in found_in(order, config.discovery):
        record_id = found.record_id or order.id
        try:
            legacy_id = found.legacy_id()
        except InvalidId as exc:
            problems.append(Problem(found.field, found.line, f"{found.field}: {exc}"))
            continue
        mapping = CrosswalkMapping.make(
            legacy_id,
            legacy_type(found.field, legacy_id, config.prefixes),
            record_id,
            found.field.sobject,
            Source.SALESFORCE,
            f"{found.field} on {canonical(record_id)}",
            now,
        )
        candidates.append((found, Candidate(f"{found.field} on {mapping.standard_id}", mapping)))
    return candidates, problems


def referenced(order: Order, config: RemapConfig) -> set[str]:
    """The legacy ids the order's reference fields point at (canonical, valid ones)."""
    out = set()
    for found in found_in(order, config.references):
        try:
            out.add(found.legacy_id())
        except InvalidId:
            continue
    return out


def resolve(
    order: Order,
    config: RemapConfig,
    known: Mapping[str, CrosswalkMapping],
    problems: list[Problem] | None = None,
) -> Order:
    """The order with every reference replaced by its standard id.

    ``known`` maps canonical legacy ids to their mappings. Raises :class:`Unresolved` with
    every problem (plus the ``problems`` the caller found earlier) when one cannot be.
    """
    problems = list(problems or [])
    order_fields = dict(order.fields)
    line_fields = {line.id: dict(line.fields) for line in order.lines}
    for found in found_in(order, config.references):
        try:
            legacy_id = found.legacy_id()
        except InvalidId as exc:
            problems.append(Problem(found.field, found.line, f"{found.field}: {exc}"))
            continue
        mapping = known.get(legacy_id)
        if mapping is None:
            kind = legacy_type(found.field, legacy_id, config.prefixes)
            reason = f"legacy {kind} {found.raw} has no standard mapping"
            problems.append(Problem(found.field, found.line, reason))
            continue
        target = order_fields if found.line is None else line_fields[found.line.id]
        target[found.field.name] = mapping.standard_id
    if problems:
        raise Unresolved(order, problems)
    if not config.references:
        return order
    lines = tuple(line.model_copy(update={"fields": line_fields[line.id]}) for line in order.lines)
    return order.model_copy(update={"fields": order_fields, "lines": lines})
