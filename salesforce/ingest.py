"""Bulk API 2.0 ingest: a job's conversation, its CSV, and each record's result read back.

- **Worth it for many records only.** A job is four API calls however many records it
  holds (create, upload, close, job info), more while Salesforce is still processing (one
  per look), one more when some records failed; sObject Collections in Composite calls are
  one call per 1,000 records. :data:`BULK_MIN` records of one object make a job pay.
- **The CSV says what changes, nothing else.** A record leaves blank the columns it does not
  change (Salesforce leaves those fields as they are); a value set to null is ``#N/A``.
  Rows are in the order given (callers sort them by parent: Salesforce processes a job in
  parallel chunks, and children of one parent in two chunks wait on the parent's lock).
- **Results by key.** ``failedResults`` rows carry the columns uploaded, so each refused
  record is found by its key (``Id``, or the upsert's external id) with the code and message
  of ``sf__Error`` (``CODE:message:fields --``). A record neither refused nor unprocessed
  in a completed job was written; for a failed or aborted job, only the refused are known.
- **Every request through the gateway's call wrapper** (:class:`JobCalls`): counted, paced
  by the budget, translated and retried like any other call. A close whose answer was lost
  and is refused when repeated (the job closed already) goes on to the job's results.
- **Waiting is looking.** The job is looked at after its records at :data:`JOB_RATE` (a
  guess: each look too early is one more call), then after each of :data:`JOB_WAITS`.
  After :data:`JOB_PATIENCE` seconds it is given up on: its records are unknown, written
  again by a later pass once the job is over (``on_open`` lets the caller keep the job's
  id for that: daemon.cycle.writeback_bulk).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from simple_salesforce.api import Salesforce

from orchestration.errors import RecordError, RetriableError
from salesforce.results import WriteResult

log = logging.getLogger(__name__)

#: Records of one object in one writeback pass from which a Bulk API 2.0 job is used.
BULK_MIN = 5000
NULL = "#N/A"
#: Job states after which nothing more happens to a job's records.
FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
JOB_RATE = 2000.0  # records a second
JOB_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # the last repeats
JOB_PATIENCE = 900.0


class JobCalls(NamedTuple):
    """What a job's conversation needs of the gateway: its call wrapper (``what``, a
    function of the client), its sleep and its timeout."""

    call: Callable[[str, Callable[[Salesforce], Any]], Any]
    sleep: Callable[[float], None]
    timeout: float


def run_job(
    job: JobCalls,
    sobject: str,
    records: Sequence[dict[str, Any]],
    *,
    ext_field: str | None = None,
    on_open: Callable[[str], None] | None = None,
) -> dict[str, WriteResult]:
    """Update records (each with ``Id``), or upsert them on ``ext_field``, in one job, and
    wait for it: the results known, by ``Id`` or external id. A record left out is unknown
    (unprocessed, or in a job that failed), to be written again. ``on_open`` is told the
    job's id once it exists, before anything can be saved by it."""
    key = ext_field or "Id"
    keys = [str(r[key]) for r in records]
    spec: dict[str, Any] = {
        "object": sobject,
        "operation": "upsert" if ext_field else "update",
        "contentType": "CSV",
        "lineEnding": "LF",
    }
    if ext_field:
        spec["externalIdFieldName"] = ext_field
    t = job.timeout
    created = job.call("bulk job", partial(_json, method="POST", path="", body=spec, timeout=t))
    path = f"/{created['id']}"
    if on_open is not None:
        on_open(str(created["id"]))
    data = to_csv(records, key)
    job.call("bulk upload", partial(_upload, path=f"{path}/batches", data=data, timeout=t))
    done = {"state": "UploadComplete"}
    try:
        job.call("bulk close", partial(_json, method="PATCH", path=path, body=done, timeout=t))
    except RecordError:
        if _info(job, path).get("state") == "Open":
            raise
    info = _finished(job, path, len(records))
    state = str(info.get("state"))
    failed: dict[str, WriteResult] = {}
    if int(info.get("numberRecordsFailed") or 0):
        text = job.call("bulk failed", partial(_text, path=f"{path}/failedResults", timeout=t))
        failed = failed_results(text, key)
    unprocessed: set[str] = set()
    if state == "JobComplete" and int(info.get("numberRecordsProcessed") or 0) < len(keys):
        left = f"{path}/unprocessedrecords"
        unprocessed = unprocessed_keys(
            job.call("bulk left", partial(_text, path=left, timeout=t)), key
        )
    if state != "JobComplete":
        log.warning(
            "Bulk API job %s for %d %s records ended %s: %s",
            created["id"],
            len(records),
            sobject,
            state,
            str(info.get("errorMessage") or "")[:200],
        )
    return results(keys, state, failed, unprocessed)


def job_state(job: JobCalls, job_id: str) -> str:
    """The state of the job ``job_id`` (``Open``, ``UploadComplete``, ``InProgress``, or
    one of :data:`FINAL_STATES`)."""
    return str(_info(job, f"/{job_id}").get("state"))


def _info(job: JobCalls, path: str) -> dict[str, Any]:
    fn = partial(_json, method="GET", path=path, body=None, timeout=job.timeout)
    info: dict[str, Any] = job.call("bulk job info", fn)
    return info


def _finished(job: JobCalls, path: str, records: int) -> dict[str, Any]:
    """The job's info once it is over (see the module's notes on waiting)."""
    waited = 0.0
    for n in range(10_000):
        wait = max(1.0, records / JOB_RATE) if n == 0 else JOB_WAITS[min(n, len(JOB_WAITS)) - 1]
        job.sleep(wait)
        waited += wait
        info = _info(job, path)
        if str(info.get("state")) in FINAL_STATES:
            return info
        if waited >= JOB_PATIENCE:
            break
    raise RetriableError(
        f"Salesforce Bulk API job {path.strip('/')} ({records} records) not finished "
        f"after {waited:g} s"
    )


def _url(sf: Salesforce, path: str) -> str:
    return f"{sf.base_url}jobs/ingest{path}"


def _json(
    sf: Salesforce, *, method: str, path: str, body: dict[str, Any] | None, timeout: float
) -> Any:
    answer = sf._call_salesforce(method, _url(sf, path), json=body, timeout=timeout)
    return answer.json() if answer.content else None


def _upload(sf: Salesforce, *, path: str, data: str, timeout: float) -> None:
    sf._call_salesforce(
        "PUT",
        _url(sf, path),
        data=data.encode("utf-8"),
        headers={"Content-Type": "text/csv"},
        timeout=timeout,
    )


def _text(sf: Salesforce, *, path: str, timeout: float) -> str:
    answer = sf._call_salesforce("GET", _url(sf, path), timeout=timeout)
    return str(answer.content.decode("utf-8"))


def to_csv(records: Sequence[dict[str, Any]], key: str) -> str:
    """The job data: ``key`` first, then every field any record sets, in name order."""
    names = sorted({name for r in records for name in r if name != key})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key, *names])
    for record in records:
        writer.writerow(
            [_cell(record[key]), *(_cell(record[n]) if n in record else "" for n in names)]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None or value == "":
        return NULL  # an empty cell would leave the field as it was
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_error(text: str) -> tuple[str, str]:
    """(status code, message) of an ``sf__Error`` value."""
    code, _, rest = text.partition(":")
    message = rest.removesuffix("--").rstrip()
    head, sep, tail = message.rpartition(":")
    if sep and " " not in tail.strip():
        message = head  # the trailing ":Field__c" (or ":" when no field is named)
    return code.strip(), message.strip()[:255]


def failed_results(text: str, key: str) -> dict[str, WriteResult]:
    """Each refused record of a ``failedResults`` CSV, by its key."""
    out: dict[str, WriteResult] = {}
    for row in csv.DictReader(io.StringIO(text)):
        record_key = row.get(key) or row.get("sf__Id") or ""
        code, message = parse_error(row.get("sf__Error") or "")
        out[record_key] = WriteResult(row.get("sf__Id") or record_key, False, code, message)
    return out


def unprocessed_keys(text: str, key: str) -> set[str]:
    """The keys of an ``unprocessedrecords`` CSV."""
    return {row.get(key) or "" for row in csv.DictReader(io.StringIO(text))}


def results(
    keys: Sequence[str],
    state: str,
    failed: dict[str, WriteResult],
    unprocessed: set[str],
) -> dict[str, WriteResult]:
    """Every record's result that is known, by key: refused ones from ``failed``; in a
    completed job, the others written unless unprocessed. A record left out is unknown
    (its write is tried again)."""
    out: dict[str, WriteResult] = {}
    for key in keys:
        if key in failed:
            out[key] = failed[key]
        elif state == "JobComplete" and key not in unprocessed:
            out[key] = WriteResult(key, True)
    return out
