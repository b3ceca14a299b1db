"""The crosswalk's entries and the one rule that keeps it trustworthy: no conflicts (pure).

A mapping says "legacy id L (a CPQ subscription, an old Order...) is standard id S (an
OrderItem, an Order...)", where it was learned and when. A conflict is one legacy id mapped
to two different standard ids, or one standard id mapped from two different legacy ids of
the same legacy object type (an OrderItem legitimately comes from one quote line *and* one
subscription). Conflicts are refused, never resolved by last-writer-wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from remap.ids import canonical


class Source(StrEnum):
    """Where a mapping or an external key came from."""

    IMPORT = "import"  # a crosswalk file a migration lead imported
    SALESFORCE = "salesforce"  # a migration field on a polled record
    DOWNSTREAM = "downstream"  # a downstream system's answer


class Mapping(BaseModel):
    """Legacy id ↔ standard id, both in their canonical 18-character form."""

    model_config = ConfigDict(frozen=True)

    legacy_id: str
    legacy_type: str
    standard_id: str
    standard_type: str
    source: Source
    origin: str
    learned_at: datetime

    @classmethod
    def make(
        cls,
        legacy_id: str,
        legacy_type: str,
        standard_id: str,
        standard_type: str,
        source: Source,
        origin: str,
        learned_at: datetime,
    ) -> Mapping:
        """A mapping with both ids canonical; raises InvalidId for a malformed one."""
        return cls(
            legacy_id=canonical(legacy_id),
            legacy_type=legacy_type,
            standard_id=canonical(standard_id),
            standard_type=standard_type,
            source=source,
            origin=origin,
            learned_at=learned_at,
        )

    def same_pair(self, other: Mapping) -> bool:
        return (self.legacy_id, self.standard_id) == (other.legacy_id, other.standard_id)

    def where(self) -> str:
        """Where this mapping came from, for messages."""
        return f"{self.source.value} {self.origin}"


class ExternalKey(BaseModel):
    """The key a downstream system uses for a Salesforce record (an ERP order number)."""

    model_config = ConfigDict(frozen=True)

    system: str
    sf_id: str
    sf_type: str
    kind: str
    key: str
    source: Source
    origin: str
    learned_at: datetime


@dataclass(frozen=True)
class Candidate:
    """A mapping offered to the crosswalk, with the place to name if it is refused."""

    where: str
    mapping: Mapping


def conflicts(candidates: Sequence[Candidate], known: Iterable[Mapping]) -> list[str]:
    """One line per candidate that contradicts another candidate or a known mapping."""
    by_legacy: dict[str, tuple[str, Mapping]] = {}
    by_standard: dict[tuple[str, str], tuple[str, Mapping]] = {}
    for mapping in known:
        by_legacy[mapping.legacy_id] = (mapping.where(), mapping)
        by_standard[(mapping.standard_id, mapping.legacy_type)] = (mapping.where(), mapping)
    problems: list[str] = []
    for cand in candidates:
        new = cand.mapping
        seen = by_legacy.get(new.legacy_id)
        if seen is not None and not seen[1].same_pair(new):
            problems.append(
                f"{cand.where}: legacy {new.legacy_type} {new.legacy_id} is mapped to "
                f"{new.standard_id} here but to {seen[1].standard_id} by {seen[0]}"
            )
            continue
        seen = by_standard.get((new.standard_id, new.legacy_type))
        if seen is not None and not seen[1].same_pair(new):
            problems.append(
                f"{cand.where}: {new.standard_type} {new.standard_id} is mapped from "
                f"{new.legacy_type} {new.legacy_id} here but from {seen[1].legacy_id} by {seen[0]}"
            )
            continue
        by_legacy.setdefault(new.legacy_id, (cand.where, new))
        by_standard.setdefault((new.standard_id, new.legacy_type), (cand.where, new))
    return problems


def fresh(candidates: Iterable[Mapping], known: Iterable[Mapping]) -> list[Mapping]:
    """The candidates not already known (same pair), each once: what an import adds."""
    pairs = {(m.legacy_id, m.standard_id) for m in known}
    out = []
    for mapping in candidates:
        pair = (mapping.legacy_id, mapping.standard_id)
        if pair not in pairs:
            pairs.add(pair)
            out.append(mapping)
    return out
