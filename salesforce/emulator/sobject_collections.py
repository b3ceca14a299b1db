"""sObject Collections: create, update, upsert and delete up to 200 records in one call."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from salesforce.emulator.errors import ApiError, bad_request
from salesforce.emulator.org import Org

MAX_RECORDS = 200
MAX_CHUNKS = 10  # runs of one object type in one request
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}
_LOCKED = "unable to obtain exclusive access to this record or 1 records: {}"

Op = Callable[[Mapping[str, Any]], dict[str, Any]]


class _Rollback(Exception):
    """Raised inside the transaction to undo an allOrNone batch."""


def records_of(body: Any) -> tuple[list[Mapping[str, Any]], bool]:
    """The ``records`` and ``allOrNone`` of a collections body (400 when malformed)."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise bad_request("JSON_PARSER_ERROR", "expected an object with a 'records' array")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    if not all(isinstance(rec, dict) for rec in records):
        raise bad_request("JSON_PARSER_ERROR", "each record must be an object")
    types = [_type_or_none(rec) for rec in records]
    chunks = sum(1 for n, t in enumerate(types) if n == 0 or t != types[n - 1])
    if chunks > MAX_CHUNKS:
        # Salesforce saves each run of one type as a chunk, at most 10 a request.
        raise bad_request(
            "INVALID_OPERATION",
            "Cannot have more than 10 chunks in a single operation. Please rearrange the "
            "data to reduce chunking.",
        )
    return records, bool(body.get("allOrNone", False))


def _type_or_none(rec: Mapping[str, Any]) -> Any:
    attrs = rec.get("attributes")
    return attrs.get("type") if isinstance(attrs, dict) else None


def _type_of(rec: Mapping[str, Any]) -> str:
    attrs = rec.get("attributes")
    sobject = attrs.get("type") if isinstance(attrs, dict) else None
    if not isinstance(sobject, str):
        raise bad_request("INVALID_TYPE", "No SObject Type defined in the record")
    return sobject


def _id_of(rec: Mapping[str, Any]) -> Any:
    return rec.get("id", rec.get("Id"))


def _fields(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("attributes", "id", "Id")}


def run_batch(
    org: Org,
    records: Sequence[Mapping[str, Any]],
    all_or_none: bool,
    op: Op,
    locked: Collection[int] = (),
) -> list[dict[str, Any]]:
    """Apply ``op`` to each record in its own savepoint; one result per record, in order.

    Records in ``locked`` fail with UNABLE_TO_LOCK_ROW before anything is written.
    """
    results: list[dict[str, Any]] = []
    try:
        with org.store.transaction():
            for index, rec in enumerate(records):
                try:
                    if index in locked:
                        raise bad_request("UNABLE_TO_LOCK_ROW", _LOCKED.format(_id_of(rec)))
                    with org.store.transaction():
                        results.append({**op(rec), "success": True, "errors": []})
                except ApiError as exc:
                    error = exc.record_error()
                    if exc.status == 404:
                        error = {**error, "statusCode": "INVALID_CROSS_REFERENCE_KEY"}
                        error["message"] = "invalid cross reference id"
                    results.append({"id": _id_of(rec), "success": False, "errors": [error]})
            if all_or_none and not all(r["success"] for r in results):
                raise _Rollback
    except _Rollback:
        results = [
            r if not r["success"] else {**r, "success": False, "errors": [_ROLLED_BACK]}
            for r in results
        ]
        for original, result in zip(records, results, strict=True):
            result["id"] = _id_of(original)
    return results


def update_op(org: Org) -> Op:
    """Update one record of a collections PATCH."""

    def op(rec: Mapping[str, Any]) -> dict[str, Any]:
        sobject = _type_of(rec)
        record_id = _id_of(rec)
        if not isinstance(record_id, str):
            raise bad_request("MISSING_ARGUMENT", "Id not specified in an update call")
        row = org.update(sobject, record_id, _fields(rec), api=True)
        return {"id": row.id}

    return op


def create_op(org: Org) -> Op:
    """Create one record of a collections POST."""

    def op(rec: Mapping[str, Any]) -> dict[str, Any]:
        sobject = _type_of(rec)
        if _id_of(rec) is not None:
            raise bad_request("INVALID_FIELD", "cannot specify Id in an insert call")
        return {"id": org.create_many(sobject, [_fields(rec)], api=True)[0]}

    return op


def upsert_op(org: Org, sobject: str, ext_field: str) -> Op:
    """Upsert one record of a ``PATCH composite/sobjects/{Object}/{ExtField}``."""

    def op(rec: Mapping[str, Any]) -> dict[str, Any]:
        if _type_of(rec).lower() != sobject.lower():
            raise bad_request("INVALID_TYPE", f"record type does not match {sobject}")
        value = next((v for k, v in rec.items() if k.lower() == ext_field.lower()), None)
        if not isinstance(value, str) or not value:
            raise bad_request("MISSING_ARGUMENT", f"{ext_field} not specified")
        record_id, created = org.upsert(sobject, ext_field, value, _fields(rec))
        return {"id": record_id, "created": created}

    return op


def delete_op(org: Org) -> Op:
    """Delete one record of a collections DELETE (records are ``{"id": ...}``)."""

    def op(rec: Mapping[str, Any]) -> dict[str, Any]:
        org.delete(None, str(rec["id"]), api=True)
        return {"id": rec["id"]}

    return op
