"""What Salesforce answered for each record of a writeback pass, remembered per record
(:class:`daemon.store.models.SfWriteback`):

- success: the values sent are remembered as written;
- transient (UNABLE_TO_LOCK_ROW, ...), or no answer: tried again on a later pass, backing
  off (the first retry on the next pass, then 5 s, 10 s, ... up to five minutes);
- the task's Order lookup refused on update (the task exists already, its create lost to
  us): remembered as set, the rest sent again at once;
- permanent (validation rule, deleted record, missing field): recorded with the values it
  refused, shown in ``orderflow status``; those values are never sent again (a new one is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.context import Context
from daemon.store.models import Plan, SfWriteback
from salesforce.fields import ORDER, StatusFields
from salesforce.results import WriteResult

log = logging.getLogger("daemon.cycle.writeback")

MAX_BACKOFF = 300.0
#: Salesforce's answer when a field may not be written on update (the task's Order lookup).
NOT_UPDATEABLE = "INVALID_FIELD_FOR_INSERT_UPDATE"


@dataclass(frozen=True)
class Change:
    sobject: str
    #: The record's Id; for upserted records (tasks), its external id.
    sf_id: str
    parent_id: str | None
    fields: dict[str, Any]


def record_results(
    ctx: Context,
    changes: list[Change],
    results: dict[tuple[str, str], WriteResult],
    now: datetime,
    names: StatusFields,
) -> int:
    """Remember what each change's answer says (``results`` by object and key); returns the
    records written. Each Order's plan is told its writeback error and written status."""
    written = 0
    with ctx.sessions.begin() as session, session.no_autoflush:
        rows = _rows_of(session, changes)
        plans = _plans_of(session, [c.sf_id for c in changes if c.sobject == ORDER])
        for change in changes:
            result = results.get((change.sobject, change.sf_id))
            row = rows.get((change.sobject, change.sf_id))
            if row is None:
                row = SfWriteback(
                    sobject=change.sobject,
                    sf_id=change.sf_id,
                    parent_id=change.parent_id,
                    written={},
                    attempts=0,
                    updated_at=now,
                )
                session.add(row)
            row.updated_at = now
            if result is not None and result.success:
                row.written = {**row.written, **change.fields}
                row.error = row.error_code = row.failed_values = row.retry_at = None
                row.attempts = 0
                written += 1
            elif result is None or result.transient:
                row.attempts += 1
                row.retry_at = now + _backoff(row.attempts)
            elif _lookup_refused(change, result, names):
                # The task exists already (its write was lost to us): its Order lookup is
                # set and may not be sent again; the rest goes on the next cycle.
                row.written = {**row.written, names.task_order: change.fields[names.task_order]}
                row.attempts += 1
                row.retry_at = now
            else:
                row.error_code = result.code
                row.error = f"{result.code}: {result.message}"[:500]
                row.failed_values, row.retry_at, row.attempts = change.fields, None, 0
                log.warning(
                    "writeback of %s %s refused: %s",
                    change.sobject,
                    change.sf_id,
                    result.code,
                    extra={"sobject": change.sobject, "sf_id": change.sf_id},
                )
            plan = plans.get(change.sf_id) if change.sobject == ORDER else None
            if plan is not None:
                plan.writeback_error = row.error
                if row.error is None and names.order_status in row.written:
                    plan.written_status = row.written[names.order_status]
    return written


_CHUNK = 500  # ids per IN (...) list


def _rows_of(session: Session, changes: Sequence[Change]) -> dict[tuple[str, str], SfWriteback]:
    """The rows of the changed records, a query per object and 500 ids (not one per record)."""
    ids: dict[str, list[str]] = {}
    for change in changes:
        ids.setdefault(change.sobject, []).append(change.sf_id)
    found: dict[tuple[str, str], SfWriteback] = {}
    for sobject, keys in ids.items():
        for start in range(0, len(keys), _CHUNK):
            query = select(SfWriteback).where(
                SfWriteback.sobject == sobject, SfWriteback.sf_id.in_(keys[start : start + _CHUNK])
            )
            found.update(((r.sobject, r.sf_id), r) for r in session.scalars(query))
    return found


def _plans_of(session: Session, order_ids: Sequence[str]) -> dict[str, Plan]:
    found: dict[str, Plan] = {}
    for start in range(0, len(order_ids), _CHUNK):
        query = select(Plan).where(Plan.order_id.in_(order_ids[start : start + _CHUNK]))
        found.update((p.order_id, p) for p in session.scalars(query))
    return found


def _lookup_refused(change: Change, result: WriteResult, names: StatusFields) -> bool:
    return (
        change.sobject == names.task_object
        and result.code == NOT_UPDATEABLE
        and names.task_order in change.fields
    )


def _backoff(attempts: int) -> timedelta:
    """The first retry on the next cycle, then 5 s, 10 s, ... up to five minutes."""
    if attempts <= 1:
        return timedelta(0)
    return timedelta(seconds=min(MAX_BACKOFF, 5.0 * 2 ** (attempts - 2)))
