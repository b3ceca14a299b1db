"""Bulk API 2.0 ingest, the pure parts: a job's CSV, and each record's result read back.

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
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from salesforce.results import WriteResult

#: Records of one object in one writeback pass from which a Bulk API 2.0 job is used.
BULK_MIN = 5000
NULL = "#N/A"
#: Job states after which nothing more happens to a job's records.
FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})


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
