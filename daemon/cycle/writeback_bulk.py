"""Writeback's Bulk API 2.0 jobs: the records of one object that a pass has many of.

A pass with :data:`salesforce.ingest.BULK_MIN` or more records of one object to write (the
first pass's thousands of new ``Fulfillment_Task__c``, a pass where thousands of steps
finished) sends them in one job, a few calls however many records
(:meth:`salesforce.gateway.SalesforceGateway.bulk_write`), instead of a Composite call per
1,000. The records and fields are the ones the pass would have sent in Composite calls, and
each record's answer is remembered the same way (:mod:`daemon.cycle.writeback_results`): a
job changes how many calls a pass spends, not what it writes.

**A job outlives its pass.** Salesforce goes on saving a job whose pass gave up waiting
for it (``salesforce.ingest.JOB_PATIENCE``) or whose daemon was killed meanwhile; its
records' results were never read, so a later pass sends them again, newer values and all,
and the job could then land its older ones on top, for good (writeback would think them
written). So a job's id is kept in the store (``sf_budget`` row :data:`OPEN_JOB`) from
the moment it exists until its results are read, and while one is kept no pass sends
anything (:func:`earlier_job_over`, one call a pass to look at it): the pass after it is
over writes what changed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.context import Context
from daemon.cycle.writeback_results import Change
from daemon.store.models import SfBudget
from orchestration.errors import BudgetExhausted, RecordError, RetriableError
from salesforce.batches import CollectionRequest, results_by_record
from salesforce.fields import ORDER, StatusFields
from salesforce.results import WriteResult

log = logging.getLogger("daemon.cycle.writeback")

#: The ``sf_budget`` row naming a job sent and not yet known to be over.
OPEN_JOB = "bulk job"


@dataclass(frozen=True)
class BulkJob:
    """The records of one object a pass writes in one Bulk API 2.0 job."""

    sobject: str
    ext_field: str | None
    records: list[dict[str, Any]]
    changes: list[Change]


def bulk_jobs(
    changes: Sequence[Change], names: StatusFields, stamp: str, least: int
) -> tuple[list[BulkJob], list[Change]]:
    """A job per object with ``least`` records or more to write, its rows sorted by parent
    (Salesforce processes a job in parallel chunks; a parent's children in one chunk do
    not wait on each other's lock); the changes left for Composite calls."""
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.sobject] = counts.get(c.sobject, 0) + 1
    bulky = {sobject for sobject, n in counts.items() if n >= least}
    if not bulky:
        return [], list(changes)
    jobs = []
    for sobject in sorted(bulky):
        mine = sorted(
            (c for c in changes if c.sobject == sobject),
            key=lambda c: (c.parent_id or c.sf_id, c.sf_id),
        )
        is_task = sobject == names.task_object
        key = names.task_key if is_task else "Id"
        records = [{key: c.sf_id, **c.fields} for c in mine]
        if sobject == ORDER:
            for record in records:
                record[names.order_updated] = stamp
        jobs.append(BulkJob(sobject, names.task_key if is_task else None, records, mine))
    return jobs, [c for c in changes if c.sobject not in bulky]


def send_job(
    ctx: Context, job: BulkJob, fallback: Callable[[list[Change]], list[CollectionRequest]]
) -> dict[tuple[str, str], WriteResult]:
    """The job's results known, by object and key; none when it could not be sent or
    finished (its records are tried again, like those of a Composite call with no answer).
    A job Salesforce refuses (the object not open to the Bulk API, the user without it) is
    sent in Composite calls instead."""

    def opened(job_id: str) -> None:
        _keep(ctx, {"id": job_id, "object": job.sobject, "records": len(job.records)})

    try:
        answers = ctx.gateway.bulk_write(
            job.sobject, job.records, ext_field=job.ext_field, on_open=opened
        )
    except RetriableError as exc:
        level = logging.WARNING if isinstance(exc, BudgetExhausted) else logging.INFO
        log.log(level, "bulk writeback of %d %s put off: %s", len(job.records), job.sobject, exc)
        return {}
    except RecordError as exc:
        log.warning(
            "bulk job for %d %s refused, sent in Composite calls: %s",
            len(job.records),
            job.sobject,
            exc,
        )
        _keep(ctx, None)  # refused: it saves nothing
        return _composite_write(ctx, fallback(job.changes))
    _keep(ctx, None)
    return {(job.sobject, key): result for key, result in answers.items()}


def earlier_job_over(ctx: Context) -> bool:
    """Whether no job of an earlier pass can still save anything (see the module's
    docstring); False while one is saving (looked at once: the next pass looks again)."""
    with ctx.sessions() as session:
        row = session.get(SfBudget, OPEN_JOB)
        kept = dict(row.data) if row is not None else None
    if kept is None:
        return True
    try:
        state = ctx.gateway.bulk_state(str(kept["id"]))
    except RetriableError as exc:
        log.info("writeback waits: Bulk API job %s could not be looked at: %s", kept["id"], exc)
        return False
    except RecordError:
        state = "unknown"  # Salesforce no longer has it (deleted after seven days)
    if state in ("InProgress", "UploadComplete"):
        log.info(
            "writeback waits for Bulk API job %s (%s %s records, %s), sent by an earlier "
            "pass: its values must not land on newer ones",
            kept["id"],
            kept.get("records"),
            kept.get("object"),
            state,
        )
        return False
    _keep(ctx, None)  # over, or never closed (Open: it saves nothing)
    return True


def _keep(ctx: Context, job: dict[str, Any] | None) -> None:
    """Remember the job a pass sent (None: forget it)."""
    with ctx.sessions.begin() as session:
        row = session.get(SfBudget, OPEN_JOB)
        if job is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(SfBudget(name=OPEN_JOB, data=job, updated_at=ctx.clock()))
        else:
            row.data, row.updated_at = job, ctx.clock()


def _composite_write(
    ctx: Context, requests: list[CollectionRequest]
) -> dict[tuple[str, str], WriteResult]:
    """Send collections requests; every record's result by object and key (none when the
    calls are put off: those records are tried again)."""
    try:
        answers = ctx.gateway.write(requests)
    except RetriableError as exc:
        log.info("writeback of %d requests put off: %s", len(requests), exc)
        return {}
    return results_by_record(requests, answers)
