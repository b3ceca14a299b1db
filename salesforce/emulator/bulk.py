"""Bulk API 2.0 ingest (``/jobs/ingest``): update and upsert jobs of CSV records.

Each request is one API call, as on a real org. A job goes Open → (data uploaded, ``PATCH``
state ``UploadComplete``) → processed → ``JobComplete``, or ``Aborted``; a job whose data
cannot be read (no data, a column the API user cannot see) ends ``Failed`` with an
``errorMessage``, its records unprocessed.

Records are checked exactly as sObject Collections check them: each is saved through
:func:`salesforce.emulator.sobject_collections.run_batch` with the same update or upsert
operation, so restricted picklists, lengths, lookups, required fields and field permissions
refuse the same values with the same codes. A refused record is a row of ``failedResults``
(``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``, then the columns uploaded).

CSV as Salesforce reads it: the first row names the fields; an empty value leaves the field
as it is, ``#N/A`` sets it to null; ``true``/``false`` for checkboxes.

A lock fault drawn for any request of a job makes some of its records fail with
``UNABLE_TO_LOCK_ROW`` (as records of a collections call do), the rest saved.

Processing starts when the upload is complete and runs in the background, 200 records a
transaction (as Salesforce saves a job in chunks), the job ``InProgress`` meanwhile;
:meth:`BulkIngest.wait_idle` lets a test wait for it. :attr:`BulkIngest.pending_polls`
makes the first job-info reads after that still answer ``InProgress``; clearing
:attr:`BulkIngest.processing` keeps every closed job ``InProgress``, its records unsaved,
until it is set again (a real org's queue, slow or busy, still saving a job after the
client that sent it died or gave up on it).
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from salesforce.emulator import sobject_collections as coll
from salesforce.emulator.errors import bad_request, not_found
from salesforce.emulator.ids import make_id
from salesforce.emulator.org import Org
from salesforce.emulator.values import format_datetime, now_ms

JOB_PREFIX = "750"
NULL = "#N/A"
OPERATIONS = ("update", "upsert")
MAX_UPLOAD = 100 * 1024 * 1024  # bytes of CSV in one PUT (150 MB once base64-encoded)


@dataclass
class Job:
    """One ingest job and, once processed, its records' outcomes."""

    id: str
    sobject: str
    operation: str
    ext_field: str | None
    state: str = "Open"
    created: str = ""
    data: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    succeeded: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str = ""
    polls_left: int = 0
    #: Some records fail with UNABLE_TO_LOCK_ROW (a lock fault drawn for the job).
    locks: bool = False

    def info(self, api_version: str) -> dict[str, Any]:
        processed = len(self.failed) + len(self.succeeded)
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdDate": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(api_version),
            "jobType": "V2Ingest",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "contentUrl": f"services/data/v{api_version}/jobs/ingest/{self.id}/batches",
            "numberRecordsProcessed": processed,
            "numberRecordsFailed": len(self.failed),
        }
        if self.ext_field:
            out["externalIdFieldName"] = self.ext_field
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out


class BulkIngest:
    """The ingest jobs of one org; thread-safe."""

    def __init__(self, org: Org, api_version: str, pick_locked: Callable[[int], set[int]]) -> None:
        self.org = org
        self.pick_locked = pick_locked
        self.api_version = api_version
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._count = 0
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        #: Job-info reads answered ``InProgress`` after the upload completes, per job.
        self.pending_polls = 0
        #: Cleared: closed jobs stay ``InProgress``, nothing saved, until it is set again.
        self.processing = threading.Event()
        self.processing.set()

    def handle(
        self, method: str, rest: list[str], body: Any, lock_fault: bool = False
    ) -> tuple[int, Any, str]:
        """(status, body, content type) for ``jobs/ingest/...``; ``body`` is the parsed
        JSON, or the raw text for a CSV upload."""
        if not rest:
            if method != "POST":
                raise not_found()
            created = self._create(body)
            created.locks = lock_fault
            return 200, created.info(self.api_version), "json"
        job = self._job(rest[0])
        job.locks = job.locks or lock_fault
        if len(rest) == 1:
            if method == "GET":
                return 200, self._poll(job), "json"
            if method == "PATCH":
                return 200, self._close(job, body).info(self.api_version), "json"
            raise not_found()
        if len(rest) == 2 and rest[1] == "batches" and method == "PUT":
            self._upload(job, body)
            return 201, None, "json"
        if len(rest) == 2 and method == "GET":
            return 200, self._results(job, rest[1]), "csv"
        raise not_found()

    # -- the job's life ---------------------------------------------------------------------
    def _create(self, body: Any) -> Job:
        if not isinstance(body, dict):
            raise bad_request("JSON_PARSER_ERROR", "expected a JSON object")
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise bad_request("INVALIDJOB", f"InvalidJob : operation not supported: {operation}")
        if body.get("contentType", "CSV") != "CSV" or body.get("lineEnding", "LF") != "LF":
            raise bad_request("INVALIDJOB", "InvalidJob : only CSV with LF line endings")
        if body.get("columnDelimiter", "COMMA") != "COMMA":
            raise bad_request("INVALIDJOB", "InvalidJob : only COMMA-delimited CSV")
        odef = self.org.api_schema().obj(str(body.get("object") or ""))  # 404 when unknown
        ext_field = body.get("externalIdFieldName")
        if operation == "upsert":
            fdef = odef.field(str(ext_field or ""))
            if fdef is None or not (fdef.external_id or fdef.name == "Id"):
                raise bad_request(
                    "INVALIDJOB", f"InvalidJob : External ID was blank or invalid: {ext_field}"
                )
            ext_field = fdef.name
        with self._lock:
            self._count += 1
            job = Job(
                id=make_id(JOB_PREFIX, self._count),
                sobject=odef.name,
                operation=str(operation),
                ext_field=str(ext_field) if operation == "upsert" else None,
                created=format_datetime(now_ms()),
            )
            self._jobs[job.id] = job
        return job

    def _job(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found(f"Job not found: {job_id}")
        return job

    def _upload(self, job: Job, text: Any) -> None:
        if job.state != "Open":
            raise bad_request("INVALIDJOBSTATE", f"Job is {job.state}: data not accepted")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("INVALIDBATCH", "InvalidBatch : no CSV data")
        if len(text.encode()) > MAX_UPLOAD:
            raise bad_request("INVALIDBATCH", "InvalidBatch : upload larger than 100 MB")
        job.data.append(text)

    def _close(self, job: Job, body: Any) -> Job:
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted" and job.state in ("Open", "UploadComplete"):
            job.state = "Aborted"
            return job
        if state != "UploadComplete" or job.state != "Open":
            raise bad_request("INVALIDJOBSTATE", f"Cannot move a {job.state} job to {state}")
        job.state = "UploadComplete"
        job.polls_left = self.pending_polls
        with self._lock:
            self._busy += 1
        threading.Thread(target=self._run, args=(job,), name=f"bulk-{job.id}", daemon=True).start()
        return job

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no job is processing; False if one still is after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _run(self, job: Job) -> None:
        try:
            job.state = "InProgress"
            self.processing.wait()
            self._process(job)
        except Exception as exc:  # the job fails, as a real one can; the emulator serves on
            self._fail(job, job.header, job.unprocessed, f"InternalServerError : {exc}")
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _poll(self, job: Job) -> dict[str, Any]:
        info = job.info(self.api_version)
        if job.polls_left > 0 and info["state"] in ("JobComplete", "Failed"):
            job.polls_left -= 1
            info.update(state="InProgress", numberRecordsProcessed=0, numberRecordsFailed=0)
        return info

    # -- processing -------------------------------------------------------------------------
    def _process(self, job: Job) -> None:
        rows: list[list[str]] = []
        header: list[str] = []
        for text in job.data:
            part = list(csv.reader(io.StringIO(text)))
            if not part:
                continue
            if header and part[0] != header:
                return self._fail(job, header, rows, "InvalidBatch : uploads differ in columns")
            header = part[0]
            rows.extend(part[1:])
        job.header = header
        odef = self.org.api_schema().obj(job.sobject)
        unknown = [name for name in header if odef.field(name) is None]
        if not header or unknown:
            names = ", ".join(unknown) or "(none)"
            return self._fail(job, header, rows, f"InvalidBatch : Field name not found : {names}")
        key = job.ext_field or "Id"
        if key not in header and key.lower() not in (h.lower() for h in header):
            return self._fail(job, header, rows, f"InvalidBatch : missing column {key}")
        types = {name: odef.field(name).type for name in header}  # type: ignore[union-attr]
        records = [_record(job.sobject, header, row, types) for row in rows]
        if job.operation == "upsert":
            op = coll.upsert_op(self.org, job.sobject, str(job.ext_field))
        else:
            op = coll.update_op(self.org)
        results: list[dict[str, Any]] = []
        for start in range(0, len(records), coll.MAX_RECORDS):
            chunk = records[start : start + coll.MAX_RECORDS]
            locked = self.pick_locked(len(chunk)) if job.locks else set()
            results += coll.run_batch(self.org, chunk, False, op, locked)
        for row, result in zip(rows, results, strict=True):
            if result["success"]:
                job.succeeded.append((str(result["id"]), bool(result.get("created")), row))
            else:
                error = result["errors"][0]
                fields = ",".join(error.get("fields") or [])
                text = f"{error['statusCode']}:{error['message']}:{fields} --"
                job.failed.append((str(result.get("id") or ""), text, row))
        job.state = "JobComplete"
        return None

    def _fail(self, job: Job, header: list[str], rows: list[list[str]], message: str) -> None:
        job.header, job.unprocessed = header, rows
        job.state, job.error_message = "Failed", message

    def _results(self, job: Job, which: str) -> str:
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise bad_request("INVALIDJOBSTATE", "Job is not complete: no results yet")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if which == "failedResults":
            writer.writerow(["sf__Id", "sf__Error", *job.header])
            writer.writerows([i, e, *row] for i, e, row in job.failed)
        elif which == "successfulResults":
            writer.writerow(["sf__Id", "sf__Created", *job.header])
            writer.writerows([i, str(c).lower(), *row] for i, c, row in job.succeeded)
        elif which == "unprocessedrecords":
            writer.writerow(job.header)
            writer.writerows(job.unprocessed)
        else:
            raise not_found()
        return out.getvalue()


def _record(
    sobject: str, header: list[str], row: list[str], types: Mapping[str, str]
) -> dict[str, Any]:
    """One CSV row as a collections record: blanks left out, ``#N/A`` null, checkboxes."""
    record: dict[str, Any] = {"attributes": {"type": sobject}}
    for name, value in zip(header, row, strict=False):
        if value == "":
            continue
        if value == NULL:
            record[name] = None
        elif types[name] == "boolean":
            record[name] = value.lower() in ("true", "1", "yes")
        else:
            record[name] = value
    return record
