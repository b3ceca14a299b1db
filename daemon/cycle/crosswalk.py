"""The crosswalk in the store, and the remap hooks the cycle calls.

The rules (conflicts, parsing, translation) are pure, in :mod:`remap`; this module reads and
writes the two tables (:class:`daemon.store.models.CrosswalkEntry`, :class:`ExternalKeyEntry`)
and wires the rules into the cycle as :class:`Remapper`'s three hooks:

- ``inbound`` (poll, before decomposition): learn from discovery fields, resolve references;
- ``outbound`` (dispatch, before the call): the payload in the ids the system speaks;
- ``answered`` (dispatch, after the call): a system's reference becomes its external key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.context import Context
from daemon.store.models import CrosswalkEntry, ExternalKeyEntry, SourceRecord, Task
from downstream.protocol import TaskRequest
from orchestration.errors import ConfigError
from orchestration.records import Order
from remap.config import RemapConfig, Speaks
from remap.coverage import Coverage, coverage, resolve_uses
from remap.crosswalk import Candidate, ExternalKey, Mapping, Source, conflicts, fresh
from remap.csvfile import parse_crosswalk
from remap.ids import canonical, is_id
from remap.inbound import Problem, discover, referenced, resolve
from remap.outbound import Lookups, payload_ids, translate

log = logging.getLogger(__name__)

CHUNK = 500
T = TypeVar("T")


def _chunks(values: Iterable[T]) -> Iterable[list[T]]:
    items = list(values)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _mapping(row: CrosswalkEntry) -> Mapping:
    return Mapping(
        legacy_id=row.legacy_id,
        legacy_type=row.legacy_type,
        standard_id=row.standard_id,
        standard_type=row.standard_type,
        source=Source(row.source),
        origin=row.origin,
        learned_at=row.learned_at,
    )


def _key(row: ExternalKeyEntry) -> ExternalKey:
    return ExternalKey(
        system=row.system,
        sf_id=row.sf_id,
        sf_type=row.sf_type,
        kind=row.kind,
        key=row.key,
        source=Source(row.source),
        origin=row.origin,
        learned_at=row.learned_at,
    )


def by_legacy(session: Session, legacy_ids: Iterable[str]) -> dict[str, Mapping]:
    """Canonical legacy id → its mapping, for those the crosswalk has."""
    out: dict[str, Mapping] = {}
    for chunk in _chunks(set(legacy_ids)):
        rows = session.scalars(select(CrosswalkEntry).where(CrosswalkEntry.legacy_id.in_(chunk)))
        out.update((row.legacy_id, _mapping(row)) for row in rows)
    return out


def by_standard(session: Session, standard_ids: Iterable[str]) -> dict[str, list[Mapping]]:
    """Canonical standard id → the mappings that lead to it."""
    out: dict[str, list[Mapping]] = {}
    for chunk in _chunks(set(standard_ids)):
        rows = session.scalars(select(CrosswalkEntry).where(CrosswalkEntry.standard_id.in_(chunk)))
        for row in rows:
            out.setdefault(row.standard_id, []).append(_mapping(row))
    return out


def _related(session: Session, mappings: Sequence[Mapping]) -> list[Mapping]:
    """Stored mappings sharing a legacy or a standard id with ``mappings``."""
    ids = {m.legacy_id for m in mappings} | {m.standard_id for m in mappings}
    found: dict[int, Mapping] = {}
    for chunk in _chunks(ids):
        rows = session.scalars(
            select(CrosswalkEntry).where(
                or_(CrosswalkEntry.legacy_id.in_(chunk), CrosswalkEntry.standard_id.in_(chunk))
            )
        )
        found.update((row.id, _mapping(row)) for row in rows)
    return list(found.values())


def add(session: Session, candidates: Sequence[Candidate]) -> tuple[list[Mapping], list[str]]:
    """Store the candidates, all or none: (added, problems). Known pairs are not added again.

    Problems are conflicts, within the candidates or with the store, one line each; with any,
    nothing is added.
    """
    known = _related(session, [c.mapping for c in candidates])
    problems = conflicts(candidates, known)
    if problems:
        return [], problems
    added = fresh((c.mapping for c in candidates), known)
    session.add_all(
        CrosswalkEntry(
            legacy_id=m.legacy_id,
            legacy_type=m.legacy_type,
            standard_id=m.standard_id,
            standard_type=m.standard_type,
            source=m.source.value,
            origin=m.origin[:255],
            learned_at=m.learned_at,
        )
        for m in added
    )
    session.flush()
    return added, []


@dataclass(frozen=True)
class Imported:
    rows: int
    added: int

    @property
    def known(self) -> int:
        return self.rows - self.added


def import_file(
    sessions: sessionmaker[Session], path: Path, config: RemapConfig, now: datetime
) -> Imported:
    """Import a crosswalk file in one transaction; ConfigError (one line each) refuses it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    candidates = parse_crosswalk(text, str(path), config.prefixes, now)
    with sessions.begin() as session:
        added, problems = add(session, candidates)
        if problems:
            raise ConfigError("\n".join(problems))
    log.info("crosswalk %s imported: %d rows, %d new", path, len(candidates), len(added))
    return Imported(rows=len(candidates), added=len(added))


def learn_key(session: Session, key: ExternalKey) -> None:
    """Record (or update) a system's key for a record; a changed key is logged, not hidden."""
    row = session.scalars(
        select(ExternalKeyEntry).where(
            ExternalKeyEntry.system == key.system,
            ExternalKeyEntry.sf_id == key.sf_id,
            ExternalKeyEntry.kind == key.kind,
        )
    ).one_or_none()
    if row is None:
        session.add(
            ExternalKeyEntry(
                system=key.system,
                sf_id=key.sf_id,
                sf_type=key.sf_type,
                kind=key.kind,
                key=key.key[:255],
                source=key.source.value,
                origin=key.origin[:255],
                learned_at=key.learned_at,
            )
        )
    elif row.key != key.key:
        log.warning(
            "%s now calls %s %s %r (was %r)", key.system, key.sf_type, key.sf_id, key.key, row.key
        )
        row.key, row.origin, row.learned_at = key.key[:255], key.origin[:255], key.learned_at


def own_keys(session: Session, system: str, sf_ids: Iterable[str]) -> dict[str, str]:
    """Canonical id → the system's key for it (the latest learned, when several kinds)."""
    out: dict[str, tuple[datetime, str]] = {}
    for chunk in _chunks(set(sf_ids)):
        rows = session.scalars(
            select(ExternalKeyEntry).where(
                ExternalKeyEntry.system == system, ExternalKeyEntry.sf_id.in_(chunk)
            )
        )
        for row in rows:
            if row.sf_id not in out or out[row.sf_id][0] < row.learned_at:
                out[row.sf_id] = (row.learned_at, row.key)
    return {sf_id: key for sf_id, (_, key) in out.items()}


@dataclass
class Found:
    """What the store knows about one id or key (``orderflow remap lookup``)."""

    query: str
    canonical: str | None
    as_legacy: list[Mapping] = field(default_factory=list)
    as_standard: list[Mapping] = field(default_factory=list)
    keys: list[ExternalKey] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.as_legacy or self.as_standard or self.keys)


def find(session: Session, value: str) -> Found:
    """Everything about ``value``: a Salesforce id (15 or 18 characters), or a system's key."""
    value = value.strip()
    sf_id = canonical(value) if is_id(value) else None
    found = Found(query=value, canonical=sf_id)
    if sf_id is not None:
        found.as_legacy = list(by_legacy(session, [sf_id]).values())
        found.as_standard = by_standard(session, [sf_id]).get(sf_id, [])
    rows = session.scalars(
        select(ExternalKeyEntry)
        .where(or_(ExternalKeyEntry.sf_id == (sf_id or ""), ExternalKeyEntry.key == value))
        .order_by(ExternalKeyEntry.system, ExternalKeyEntry.kind)
    )
    found.keys = [_key(row) for row in rows]
    return found


def polled_orders(session: Session) -> Iterator[Order]:
    """The orders as last polled (the store's source records), readable ones only."""
    rows = session.scalars(
        select(SourceRecord).where(SourceRecord.sobject == "Order").execution_options(yield_per=500)
    )
    for row in rows:
        if row.data.get("IsDeleted"):
            continue
        try:
            yield Order.from_record(row.data)
        except (ValidationError, KeyError, ValueError):
            continue  # a malformed order is fallout of its own


def coverage_report(session: Session, config: RemapConfig) -> Coverage:
    """Which legacy ids the polled orders use, each with its mapping if the crosswalk has one."""
    report = coverage(polled_orders(session), config)
    resolve_uses(report, by_legacy(session, report.uses))
    return report


class Remapper:
    """The remap hooks of a daemon context (see the module docstring)."""

    def __init__(self, config: RemapConfig, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx  # its sessions and clock, read at each call (tests swap the clock)

    def attach(self) -> None:
        """Install the hooks on the context; nothing configured, nothing installed."""
        if self.config.enabled:
            self.ctx.inbound = self.inbound
            self.ctx.outbound = self.outbound
            self.ctx.answered = self.answered

    def inbound(self, session: Session, order: Order) -> Order:
        """Learn from the order's discovery fields, then resolve its references.

        Raises :class:`remap.inbound.Unresolved` (a RecordError) when a reference has no
        mapping or a discovered mapping contradicts the crosswalk.
        """
        if not (self.config.discovery or self.config.references):
            return order
        discovered, problems = discover(order, self.config, self.ctx.clock())
        for found, candidate in discovered:
            _, refused = add(session, [candidate])
            problems.extend(Problem(found.field, found.line, reason) for reason in refused)
        known = by_legacy(session, referenced(order, self.config))
        return resolve(order, self.config, known, problems)

    def outbound(self, request: TaskRequest, now: datetime) -> TaskRequest:
        """The request with its payload in the ids its system speaks at ``now``."""
        rule = self.config.outbound.get(request.system)
        if rule is None:
            return request
        speaks = rule.at(now)
        prefixes = self.config.prefixes
        ids = payload_ids(request.payload, rule, prefixes)
        if not ids:
            return request
        with self.ctx.sessions() as session:
            to_standard = by_legacy(session, ids)
            standard = {to_standard[i].standard_id if i in to_standard else i for i in ids}
            lookups = Lookups(
                to_standard=to_standard,
                to_legacy=by_standard(session, standard) if speaks is Speaks.LEGACY else {},
                own=own_keys(session, request.system, standard) if speaks is Speaks.OWN else {},
            )
        payload = translate(request.payload, rule, speaks, lookups, prefixes)
        if payload == request.payload:
            return request
        return request.model_copy(update={"payload": payload})

    def answered(self, session: Session, order_id: str, task: Task, now: datetime) -> None:
        """A system's reference for a step becomes its key for the step's order or line."""
        if not task.external_ref or not task.system:
            return
        sf_id, sf_type = (task.line_id, "OrderItem") if task.line_id else (order_id, "Order")
        if not is_id(sf_id):
            return
        learn_key(
            session,
            ExternalKey(
                system=task.system,
                sf_id=canonical(sf_id),
                sf_type=sf_type,
                kind=task.action or task.key,
                key=task.external_ref,
                source=Source.DOWNSTREAM,
                origin=f"{task.system} answer to {task.step_id}",
                learned_at=now,
            ),
        )
