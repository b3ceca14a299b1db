"""What the remap workstream is told: prefixes, migration fields, how each system speaks.

Built once from the settings (``ORDERFLOW_REMAP_*``) and passed down; pure and immutable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from remap.ids import Prefixes

#: The standard objects a legacy id can be mapped to.
STANDARD_TYPES = ("Order", "OrderItem", "Contract", "Asset")
#: The CPQ objects a legacy id usually belongs to (old Order and Contract ids come too).
CPQ_TYPES = ("SBQQ__Quote__c", "SBQQ__QuoteLine__c", "SBQQ__Subscription__c")
#: The polled objects whose fields can hold legacy ids, as the rules name their scope.
POLLED_OBJECTS = {"Order": "order", "OrderItem": "line"}


class Speaks(StrEnum):
    """Which ids a downstream system understands."""

    STANDARD = "standard"  # Salesforce's standard Order/OrderItem/Contract/Asset ids
    LEGACY = "legacy"  # the CPQ-era ids it was built with
    OWN = "own"  # its own keys (an ERP order number), learned from its answers


class Outbound(BaseModel):
    """How one system is spoken to: ``{"speaks": "legacy", "until": "2027-01-01"}``.

    ``until`` is the cut-over: from that moment (a date means its midnight UTC) the system
    speaks standard ids. ``keys`` limits translation to these payload keys (at any depth);
    without it every payload value that is a crosswalked id is translated.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    speaks: Speaks = Speaks.STANDARD
    until: datetime | None = None
    keys: tuple[str, ...] | None = None

    @field_validator("until", mode="before")
    @classmethod
    def _date_is_midnight(cls, value: object) -> object:
        if isinstance(value, str) and len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        return value

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def at(self, now: datetime) -> Speaks:
        """What the system speaks at ``now``: standard ids once its cut-over has passed."""
        if self.until is not None and now >= self.until:
            return Speaks.STANDARD
        return self.speaks


class FieldRef(BaseModel):
    """``OrderItem.Legacy_CPQ_Id__c``: a field of a polled object."""

    model_config = ConfigDict(frozen=True)

    sobject: str
    name: str

    @classmethod
    def parse(cls, text: str) -> FieldRef:
        sobject, dot, name = text.strip().partition(".")
        if not dot or not name or "." in name or sobject not in POLLED_OBJECTS:
            objects = " or ".join(POLLED_OBJECTS)
            raise ValueError(f"{text!r} must be Object.Field with Object {objects}")
        return cls(sobject=sobject, name=name)

    def __str__(self) -> str:
        return f"{self.sobject}.{self.name}"


class RemapConfig(BaseModel):
    """Everything remap needs to know, validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    prefixes: Prefixes
    #: Fields holding the record's own legacy id: the record *is* that legacy record.
    discovery: tuple[FieldRef, ...] = ()
    #: Fields pointing at another record by its legacy id: resolved before decomposition.
    references: tuple[FieldRef, ...] = ()
    outbound: Mapping[str, Outbound] = {}

    @classmethod
    def build(
        cls,
        prefixes: Mapping[str, str] | None = None,
        discovery: Sequence[str] = (),
        references: Sequence[str] = (),
        outbound: Mapping[str, Outbound] | None = None,
    ) -> RemapConfig:
        """Raises ValueError with the problem (the settings name the variable)."""
        found = tuple(FieldRef.parse(f) for f in discovery)
        refs = tuple(FieldRef.parse(f) for f in references)
        both = sorted(str(f) for f in set(found) & set(refs))
        if both:
            raise ValueError(f"{both[0]} is both a discovery and a reference field")
        return cls(
            prefixes=Prefixes(prefixes),
            discovery=found,
            references=refs,
            outbound=dict(outbound or {}),
        )

    @property
    def enabled(self) -> bool:
        """False when nothing is configured: the hooks then leave everything as it is."""
        return bool(self.discovery or self.references or self.outbound)

    def fields_of(self, sobject: str) -> tuple[str, ...]:
        """The migration fields of ``sobject`` that must be polled."""
        return tuple(f.name for f in (*self.discovery, *self.references) if f.sobject == sobject)
