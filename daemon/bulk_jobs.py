"""Writeback's Bulk API 2.0 jobs: the records of one object that a pass has many of.

A pass with :data:`salesforce.ingest.BULK_MIN` or more records of one object to write (the
first pass's thousands of new ``Fulfillment_Task__c``, a pass where thousands of steps
finished) sends them in one job, a few calls however many records
(:meth:`salesforce.gateway.SalesforceGateway.bulk_write`), instead of a Composite call per
1,000. The records and fields are the ones the pass would have sent in Composite calls, and
each record's answer is remembered the same way (:mod:`daemon.sf_results`): a job changes
how many calls a pass spends, not what it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.context import Context
from daemon.sf_results import Change
from orchestration.errors import BudgetExhausted, RecordError, RetriableError
from salesforce.batches import CollectionRequest
from salesforce.fields import ORDER, StatusFields
from salesforce.results import WriteResult

log = logging.getLogger("daemon.writeback")


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
    try:
        answers = ctx.gateway.bulk_write(job.sobject, job.records, ext_field=job.ext_field)
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
        return _composite_write(ctx, fallback(job.changes))
    return {(job.sobject, key): result for key, result in answers.items()}


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
    results: dict[tuple[str, str], WriteResult] = {}
    for req, answer in zip(requests, answers, strict=True):
        for record, result in zip(req.records, answer, strict=False):
            key = str(record.get(req.ext_field or "Id") or "")
            results[(req.sobject_of(record), key)] = result
    return results
