"""Resync: re-read the Orders and Invoices of a date range and take them in again.

For when the poll may have missed something (a restored org, a watermark moved by hand, a
fault that lasted longer than the overlap). Records come in exactly as a poll takes them,
so the outcome is the poll's own:

- Orders go through :func:`daemon.cycle.poll.ingest_order`: a record whose content hash is the
  stored one changes nothing, a new one is planned, a changed one is handled as a change
  (amended when the poll amends it), a deleted one is cancelled or flagged.
- Invoices and their lines are remembered as the poll remembers them; a posted Invoice
  with no transfer plan gets one through :func:`daemon.cycle.invoices.plan_invoice`.

Safe while the daemon runs: a resync only plans. Dispatch stays with the daemon, which
sends what the resync planned with the same idempotency keys it would have made itself.
Memory is flat in the number of records: one page of a query in memory at a time, each
page committed in its own transaction (rolled back in a dry run). A page that collides
with the daemon taking the same records at the same moment is taken again: it is
idempotent. No watermark moves.

Children are read to their last page first (salesforce.children): a record whose lines
cannot all be read is not taken, logged and counted as ``waiting``; resync again to take it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.cycle.invoices import plan_invoice
from daemon.cycle.poll import PollReport, ingest_order, polled_fields
from daemon.store.models import Plan, SourceRecord, Task
from orchestration.errors import ConfigError, RetriableError
from orchestration.records import parse_datetime
from orchestration.states import FINAL_STATES
from salesforce.children import complete_children
from salesforce.poller import INVOICE, INVOICE_LINE, ORDER, DateRange

log = logging.getLogger(__name__)

FIELDS = ("SystemModstamp", "EffectiveDate", "ActivatedDate")
#: The field each object is read by for each ``--field``: an Invoice's effective date is
#: its InvoiceDate; it has no ActivatedDate.
OBJECT_FIELDS: dict[str, dict[str, str]] = {
    ORDER: {name: name for name in FIELDS},
    INVOICE: {"SystemModstamp": "SystemModstamp", "EffectiveDate": "InvoiceDate"},
}
OBJECTS = tuple(OBJECT_FIELDS)
#: Tries per page when the daemon writes the same rows at the same moment.
CONFLICT_TRIES = 5
_NOT_SENT = [state.value for state in FINAL_STATES]

#: Told after each page: the object, records taken so far, the query's total.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ResyncSpec:
    """What to re-read: days ``since`` to ``until`` (both included, UTC) of ``field``."""

    since: date
    until: date
    field: str = "SystemModstamp"
    objects: tuple[str, ...] = OBJECTS
    dry_run: bool = False


def check(spec: ResyncSpec, today: date) -> None:
    """Raise :class:`ConfigError` (one line) for a range or a choice that cannot be meant."""
    if spec.since > spec.until:
        raise ConfigError(f"--since {spec.since} is after --until {spec.until}")
    if spec.since > today:
        raise ConfigError(f"the range starts in the future: --since {spec.since}, today {today}")
    if spec.field not in FIELDS:
        raise ConfigError(f"--field {spec.field!r}: choose from {', '.join(FIELDS)}")
    if not spec.objects:
        raise ConfigError(f"--objects: name at least one of {', '.join(OBJECTS)}")
    for obj in spec.objects:
        if obj not in OBJECT_FIELDS:
            raise ConfigError(
                f"--objects: unknown object {obj!r}: choose from {', '.join(OBJECTS)}"
            )
        if spec.field not in OBJECT_FIELDS[obj]:
            raise ConfigError(f"--field {spec.field}: {obj} has no such field; leave {obj} out")


def objects_with(field_name: str) -> tuple[str, ...]:
    """The objects a resync by ``field_name`` reads when none are named."""
    return tuple(obj for obj, fields in OBJECT_FIELDS.items() if field_name in fields)


@dataclass
class Tally:
    """What a resync found for one object."""

    read: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    #: Records that made a plan's next revision (daemon.cycle.amend: a change in place, a
    #: cancellation, a change order); other changes leave their plan as it is.
    reorchestrated: int = 0
    deleted: int = 0
    #: Plans made (new orders, posted invoices seen for the first time).
    planned: int = 0
    #: Records not taken because their lines could not all be read.
    waiting: int = 0
    #: Callouts of the plans made or revised, not yet sent, by system.
    would_send: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        names = ("read", "unchanged", "new", "changed", "reorchestrated", "deleted", "waiting")
        for name in names:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.planned += other.planned
        self.would_send.update(other.would_send)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "unchanged": self.unchanged,
            "new": self.new,
            "changed": self.changed,
            "reorchestrated": self.reorchestrated,
            "deleted": self.deleted,
            "planned": self.planned,
            "waiting": self.waiting,
            "would_send": dict(sorted(self.would_send.items())),
        }


@dataclass
class ResyncReport:
    spec: ResyncSpec
    objects: dict[str, Tally] = field(default_factory=dict)

    def total(self) -> Tally:
        total = Tally()
        for tally in self.objects.values():
            total.add(tally)
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.spec.since.isoformat(),
            "until": self.spec.until.isoformat(),
            "field": self.spec.field,
            "dry_run": self.spec.dry_run,
            "objects": {obj: tally.as_dict() for obj, tally in self.objects.items()},
            "total": self.total().as_dict(),
        }


def resync(ctx: Context, spec: ResyncSpec, progress: Progress | None = None) -> ResyncReport:
    """Re-read every object of ``spec`` in its range, page by page; what was found."""
    now = ctx.clock()
    fields = polled_fields(ctx)
    report = ResyncReport(spec)
    for obj in spec.objects:
        if obj not in fields.objects:
            log.info("resync leaves %s out: invoice support is off (ORDERFLOW_SF_INVOICES)", obj)
            continue
        days = DateRange(OBJECT_FIELDS[obj][spec.field], spec.since, spec.until)
        soql = fields.range_query(obj, days)
        total, pages = ctx.gateway.query_sized(soql, include_deleted=True)
        tally = report.objects[obj] = Tally()
        if progress is not None:
            progress(obj, 0, total)
        for page in pages:
            taken = _complete(ctx, obj, page, tally)
            tally.add(_take_page(ctx, obj, taken, now, dry_run=spec.dry_run))
            if progress is not None:
                progress(obj, tally.read, max(total, tally.read))
        log.info(
            "resync %s %s..%s by %s: %d read, %d new, %d changed, %d unchanged%s",
            obj,
            spec.since,
            spec.until,
            days.field,
            tally.read,
            tally.new,
            tally.changed,
            tally.unchanged,
            " (dry run)" if spec.dry_run else "",
        )
    return report


def _complete(
    ctx: Context, obj: str, page: list[dict[str, Any]], tally: Tally
) -> list[dict[str, Any]]:
    """The page's records whose lines were all read; the others are logged and counted."""
    failed = complete_children(ctx.gateway, page, "OrderItems" if obj == ORDER else "InvoiceLines")
    for sf_id, reason in failed.items():
        log.warning("resync: %s %s not taken: %s; resync again to take it", obj, sf_id, reason)
    tally.waiting += len(failed)
    return [record for record in page if str(record["Id"]) not in failed]


def _take_page(
    ctx: Context, obj: str, page: list[dict[str, Any]], now: datetime, *, dry_run: bool
) -> Tally:
    """One page in one transaction, committed (rolled back in a dry run)."""
    take = _take_orders if obj == ORDER else _take_invoices
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            with ctx.sessions() as session:
                tally = take(ctx, session, page, now)
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
            return tally
        except (IntegrityError, OperationalError) as exc:
            # The daemon took some of these records at the same moment (a unique plan or a
            # locked database): the page is taken again, and now finds them taken.
            if attempt == CONFLICT_TRIES:
                raise RetriableError(f"resync of {obj}: the store stayed busy: {exc}") from exc
            log.info("resync of %s: page collided with the daemon; taking it again", obj)
    raise AssertionError("unreachable")


def _take_orders(
    ctx: Context, session: Session, page: list[dict[str, Any]], now: datetime
) -> Tally:
    tally = Tally()
    held = _load(session, ORDER, [str(r["Id"]) for r in page])
    known = {row.sf_id for row in held}
    last_task = _last_task(session)
    for record in page:
        report = PollReport()
        ingest_order(ctx, session, record, now, report)
        tally.read += 1
        if not report.changed:
            tally.unchanged += 1
        elif record.get("IsDeleted"):
            tally.deleted += 1
        elif str(record["Id"]) in known:
            tally.changed += 1
        else:
            tally.new += 1
        tally.planned += report.planned
        tally.reorchestrated += report.amended > 0
    tally.would_send = _unsent_since(session, last_task, now)
    return tally


def _take_invoices(
    ctx: Context, session: Session, page: list[dict[str, Any]], now: datetime
) -> Tally:
    tally = Tally()
    ids = [str(r["Id"]) for r in page]
    held = _load(session, INVOICE, ids)
    known = {row.sf_id for row in held}
    planned = _planned(session, ids)
    last_task = _last_task(session)
    for record in page:
        invoice = dict(record)
        children = invoice.pop("InvoiceLines", None)
        lines = children.get("records", []) if isinstance(children, dict) else []
        sf_id = str(invoice["Id"])
        changed = _remember(session, INVOICE, invoice, now)
        for line in lines:
            changed |= _remember(session, INVOICE_LINE, line, now)
        tally.read += 1
        if sf_id not in planned:
            row = session.get(SourceRecord, (INVOICE, sf_id))
            if row is not None and plan_invoice(ctx, session, row, now) is not None:
                tally.planned += 1
        if not changed:
            tally.unchanged += 1
        elif invoice.get("IsDeleted"):
            tally.deleted += 1
        elif sf_id in known:
            tally.changed += 1  # a transfer plan is never revised: the ERP keeps its document
        else:
            tally.new += 1
    tally.would_send = _unsent_since(session, last_task, now)
    return tally


def _remember(session: Session, sobject: str, record: dict[str, Any], now: datetime) -> bool:
    return store.remember(session, sobject, record, parse_datetime(record["SystemModstamp"]), now)


def _load(session: Session, sobject: str, sf_ids: list[str]) -> list[SourceRecord]:
    """A page's stored rows in one query; while held, ``session.get`` finds them in memory."""
    return list(
        session.scalars(
            select(SourceRecord)
            .where(SourceRecord.sobject == sobject)
            .where(SourceRecord.sf_id.in_(sf_ids))
        )
    )


def _planned(session: Session, sf_ids: list[str]) -> set[str]:
    """Which of these records have a plan."""
    return set(session.scalars(select(Plan.order_id).where(Plan.order_id.in_(sf_ids))))


def _last_task(session: Session) -> int:
    return session.scalar(select(func.max(Task.id))) or 0


def _unsent_since(session: Session, last_task: int, now: datetime) -> Counter[str]:
    """Callouts this page made (new plans, new revisions), by system: what the daemon will
    send. Newer than ``last_task`` and made at ``now``: not the daemon's own, made meanwhile."""
    rows = session.execute(
        select(Task.system, func.count())
        .where(Task.id > last_task)
        .where(Task.created_at == now)
        .where(Task.system.is_not(None))
        .where(Task.state.not_in(_NOT_SENT))
        .where(Task.started_at.is_(None))
        .group_by(Task.system)
    )
    return Counter({str(system): int(n) for system, n in rows})
