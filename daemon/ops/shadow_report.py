"""The shadow report: what Orderflow would have sent beside what the legacy side did.

- **Orderflow's side** is ``shadow_sends`` (daemon.cycle.shadow): each callout a shadow run did
  not make, recorded in the range, with the payload as the system would have had it.
- **The legacy side**, per system: a CSV export (``--legacy SYSTEM=FILE.csv``: a header
  with ``order_id`` and ``action``, then any payload fields, nested ones dotted as
  ``lines.0.quantity``; one row per call), or else the system's own ``documents`` listing
  (a document names the record it came from: presence is compared, not fields).
- **Legacy ids compared as standard ones.** An id in an export (the order, or a field's
  value) the crosswalk maps from a legacy CPQ id is replaced by its standard id first.
- **Per order and system**, each legacy call is paired with the most alike call of the same
  action: *matched* (every field the export has is equal), *different* (field by field),
  *missing in Orderflow* (no call to pair), and each call left over of a system with an
  export is *extra in Orderflow* (a documents listing is not every call). Numbers compare
  as numbers (``5`` equals ``5.0``).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cycle import crosswalk
from daemon.store.models import ShadowSend
from downstream.protocol import Document
from orchestration.errors import ConfigError
from remap.ids import is_id, to18

MATCHED = "matched"
DIFFERENT = "different"
MISSING = "missing in Orderflow"
EXTRA = "extra in Orderflow"
OUTCOMES = (MATCHED, DIFFERENT, MISSING, EXTRA)


@dataclass(frozen=True)
class Call:
    """One call to a system, either side: its order, action (None: any) and flat fields."""

    order_id: str
    system: str
    action: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class Finding:
    order_id: str
    system: str
    action: str
    outcome: str
    detail: str = ""


@dataclass
class Report:
    since: date
    until: date
    findings: list[Finding] = field(default_factory=list)
    #: Systems with calls in the range but no legacy source to compare with.
    uncompared: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(f.outcome == MATCHED for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {o: sum(f.outcome == o for f in self.findings) for o in OUTCOMES}

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "counts": self.counts(),
            "uncompared_systems": self.uncompared,
            "findings": [asdict(f) for f in self.findings],
        }


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A payload as dotted field names → text values (``lines.0.quantity``)."""
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: _text(value)}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    try:
        return repr(float(value))  # 5, "5" and 5.0 alike
    except (TypeError, ValueError):
        return str(value)


def would_send(session: Session, since: date, until: date) -> list[Call]:
    """Orderflow's side: the calls shadow mode recorded from ``since`` to ``until``."""
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until + timedelta(days=1), time(), UTC)
    rows = session.scalars(
        select(ShadowSend)
        .where(ShadowSend.recorded_at >= start, ShadowSend.recorded_at < end)
        .order_by(ShadowSend.id)
    )
    return [Call(r.order_id, r.system, r.action, flatten(r.payload)) for r in rows]


def read_export(system: str, path: Path) -> list[Call]:
    """A legacy system's CSV export; ConfigError with one line per bad row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise ConfigError(f"--legacy {system}={path}: {exc.strerror or exc}") from None
    if not rows or not {"order_id", "action"} <= set(rows[0]):
        raise ConfigError(f"--legacy {system}={path}: the header must name order_id and action")
    header, problems, calls = rows[0], [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = dict(zip(header, row, strict=False))
        if len(row) != len(header):
            problems.append(f"{path}:{number}: {len(row)} values, the header has {len(header)}")
        elif not values["order_id"].strip() or not values["action"].strip():
            problems.append(f"{path}:{number}: order_id and action must not be empty")
        else:
            fields = {k: _text(v) for k, v in values.items() if k not in ("order_id", "action")}
            calls.append(Call(values["order_id"].strip(), system, values["action"].strip(), fields))
    if problems:
        raise ConfigError("\n".join(problems))
    return calls


def from_documents(system: str, documents: Iterable[Document]) -> list[Call]:
    """A system's documents listing as legacy calls (presence only: any action, no fields)."""
    return [Call(d.source_id or f"?{d.number}", system, None, {}) for d in documents]


def to_standard(session: Session, calls: list[Call]) -> list[Call]:
    """Legacy CPQ ids (order, field values) replaced by the standard ids they map to."""
    ids = {to18(v) for c in calls for v in (c.order_id, *c.fields.values()) if is_id(v)}
    known = {legacy: m.standard_id for legacy, m in crosswalk.by_legacy(session, ids).items()}

    def standard(value: str) -> str:
        return known.get(to18(value), value) if is_id(value) else value

    return [
        Call(
            standard(c.order_id),
            c.system,
            c.action,
            {k: standard(v) for k, v in c.fields.items()},
        )
        for c in calls
    ]


def compare(ours: list[Call], legacy: list[Call]) -> list[Finding]:
    """Every legacy call paired with Orderflow's most alike one (see the module docstring)."""
    pool: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in ours:
        pool[(_order(call.order_id), call.system)].append(call)
    findings = []
    for call in legacy:
        candidates = [
            c
            for c in pool[(_order(call.order_id), call.system)]
            if call.action is None or c.action == call.action
        ]
        if not candidates:
            findings.append(Finding(call.order_id, call.system, call.action or "", MISSING))
            continue
        best = max(
            candidates, key=lambda c: sum(c.fields.get(k) == v for k, v in call.fields.items())
        )
        pool[(_order(call.order_id), call.system)].remove(best)
        diff = list(_differences(call.fields, best.fields))
        outcome = DIFFERENT if diff else MATCHED
        findings.append(
            Finding(call.order_id, call.system, best.action or "", outcome, "; ".join(diff))
        )
    # An export lists every call; a documents listing holds documents, not every call.
    compared = {c.system for c in legacy if c.action is not None}
    for (_, system), left in sorted(pool.items()):
        if system in compared:
            findings.extend(Finding(c.order_id, system, c.action or "", EXTRA) for c in left)
    return sorted(findings, key=lambda f: (f.order_id, f.system, f.action, f.outcome))


def _order(value: str) -> str:
    return to18(value) if is_id(value) else value


def _differences(legacy: dict[str, str], ours: dict[str, str]) -> Iterator[str]:
    for name, value in sorted(legacy.items()):
        mine = ours.get(name)
        if mine != value:
            shown = "(none)" if mine is None else repr(mine)
            yield f"{name}: legacy {value!r}, Orderflow {shown}"
