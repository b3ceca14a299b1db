"""The REST API under ``/services/data/vXX.X/``: routing and the sObject, query and
limits resources. HTTP plumbing lives in ``server.py``; composite in ``composite.py``."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from salesforce.emulator import sobject_collections as coll
from salesforce.emulator.bulk import BulkIngest
from salesforce.emulator.errors import ApiError, bad_request, not_found
from salesforce.emulator.faults import FaultDice
from salesforce.emulator.ids import is_id
from salesforce.emulator.org import Org
from salesforce.emulator.query import QueryEngine, batch_size
from salesforce.emulator.soql_eval import attributes
from salesforce.emulator.values import format_datetime, normalize_datetime, now_ms

DATA_PATH = re.compile(r"^/services/data/v(\d+\.\d+)(?:/(.*))?$")


@dataclass
class Request:
    """One REST request; ``path`` is relative to ``/services/data/vXX.X/``."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    lock_fault: bool = False  # an injected UNABLE_TO_LOCK_ROW for this call


@dataclass
class Response:
    """A REST answer; ``body`` None means no content."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def kind_of(method: str, path: str) -> str:
    """The ``calls_by_kind`` bucket of a request path."""
    parts = path.strip("/").split("/")
    head = parts[0] if parts else ""
    if head in ("query", "queryAll"):
        return "queryMore" if len(parts) > 1 and parts[1] else "query"
    if head == "composite":
        return "composite/sobjects" if len(parts) > 1 and parts[1] == "sobjects" else "composite"
    if head == "sobjects":
        return "sobject"
    if head == "jobs":
        return "jobs/ingest"
    return head or "versions"


class RestApi:
    """Dispatches REST requests to handlers; raises nothing (errors become Responses)."""

    def __init__(
        self, org: Org, engine: QueryEngine, dice: FaultDice, usage: Callable[[], tuple[int, int]]
    ) -> None:
        self.org = org
        self.engine = engine
        self.dice = dice
        self.usage = usage
        self.api_version = engine.api_version
        self._count_lock = threading.Lock()
        self.subrequests: dict[str, int] = {}
        #: Bulk API 2.0 ingest jobs (``jobs/ingest``).
        self.bulk = BulkIngest(org, self.api_version, dice.pick_locked)

    def count_subrequest(self, kind: str) -> None:
        """Count one Composite subrequest by kind (not an API call of its own)."""
        with self._count_lock:
            self.subrequests[kind] = self.subrequests.get(kind, 0) + 1

    def handle(self, req: Request) -> Response:
        """Answer one request."""
        try:
            access = self.org.access
            if access is not None and "ApiEnabled" not in access.grants.user:
                raise ApiError(403, "API_CURRENTLY_DISABLED", "API is disabled for this User")
            if req.lock_fault and not self._is_collection_write(req):
                raise bad_request(
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record or 1 records",
                )
            return self._route(req)
        except ApiError as exc:
            return Response(exc.status, exc.body())

    @staticmethod
    def _is_collection_write(req: Request) -> bool:
        path = req.path.strip("/")
        if path.startswith("jobs/ingest"):
            return True  # a job meets its locks record by record (salesforce.emulator.bulk)
        return path.startswith("composite/sobjects") and req.method in ("PATCH", "POST")

    def _route(self, req: Request) -> Response:
        parts = [unquote(p) for p in req.path.split("/") if p]
        head = parts[0] if parts else ""
        if head in ("query", "queryAll") and req.method == "GET":
            if len(parts) > 1:
                return Response(200, self.engine.more(parts[1]))
            if "q" not in req.params:
                raise bad_request("MALFORMED_QUERY", "missing query parameter q")
            batch = batch_size(req.headers.get("sforce-query-options"))
            include_deleted = head == "queryAll"
            answer = self.engine.run(req.params["q"], include_deleted=include_deleted, batch=batch)
            return Response(200, answer)
        if head == "composite" and len(parts) > 1 and parts[1] == "sobjects":
            return self._collections(req, parts[2:])
        if head == "sobjects":
            return self._sobjects(req, parts[1:])
        if head == "jobs" and len(parts) > 1 and parts[1] == "ingest":
            status, body, kind = self.bulk.handle(req.method, parts[2:], req.body, req.lock_fault)
            if kind == "csv":
                return Response(status, body, {"Content-Type": "text/csv"})
            return Response(status, body)
        if head == "limits" and req.method == "GET":
            used, limit = self.usage()
            daily = {"Max": limit, "Remaining": max(0, limit - used)}
            return Response(200, {"DailyApiRequests": daily})
        if not parts and req.method == "GET":
            return Response(200, self._resources())
        raise not_found()

    def _resources(self) -> dict[str, str]:
        base = f"/services/data/v{self.api_version}"
        names = ("sobjects", "query", "queryAll", "composite", "limits", "jobs")
        return {name: f"{base}/{name}" for name in names}

    def _collections(self, req: Request, rest: list[str]) -> Response:
        org = self.org
        if req.method == "DELETE" and not rest:
            ids = [i for i in req.params.get("ids", "").split(",") if i]
            if len(ids) > coll.MAX_RECORDS:
                raise bad_request("EXCEEDED_ID_LIMIT", "too many ids")
            all_or_none = req.params.get("allOrNone", "false").lower() == "true"
            recs = [{"id": i} for i in ids]
            return Response(200, coll.run_batch(org, recs, all_or_none, coll.delete_op(org)))
        if req.method == "GET" and len(rest) == 1:
            ids = [i for i in req.params.get("ids", "").split(",") if i]
            names = [f for f in req.params.get("fields", "Id").split(",") if f]
            return Response(200, [self._get_or_none(rest[0], i, names) for i in ids])
        if req.method not in ("PATCH", "POST") or len(rest) not in (0, 2):
            raise not_found()
        records, all_or_none = coll.records_of(req.body)
        if rest:
            if req.method != "PATCH":
                raise not_found()
            op = coll.upsert_op(org, rest[0], rest[1])
        else:
            op = coll.update_op(org) if req.method == "PATCH" else coll.create_op(org)
        locked = self.dice.pick_locked(len(records)) if req.lock_fault else set()
        return Response(200, coll.run_batch(org, records, all_or_none, op, locked))

    def _get_or_none(self, sobject: str, record_id: str, names: list[str]) -> Any:
        try:
            return self._record(sobject, record_id, names)
        except ApiError:
            return None

    def _record(self, sobject: str, record_id: str, names: list[str] | None) -> dict[str, Any]:
        if not is_id(record_id):
            raise not_found()
        row = self.org.load(sobject, record_id, deleted_ok=True)
        if row.is_deleted:
            raise not_found("entity is deleted")
        odef = self.org.api_schema().obj(row.sobject)
        out: dict[str, Any] = {"attributes": attributes(odef.name, row.id, self.api_version)}
        if names is None:
            out.update(self.org.public_fields(row, api=True))
            return out
        for name in names:
            fdef = odef.field(name.strip())
            if fdef is None:
                raise bad_request(
                    "INVALID_FIELD", f"No such column '{name}' on entity '{odef.name}'"
                )
            out[fdef.name] = row.fields.get(fdef.name)
        return out

    def _sobjects(self, req: Request, rest: list[str]) -> Response:
        org = self.org
        if not rest:
            return Response(200, self._describe_global())
        odef = org.api_schema().obj(rest[0])
        method = req.method
        if len(rest) == 1:
            if method == "POST":
                if not isinstance(req.body, dict):
                    raise bad_request("JSON_PARSER_ERROR", "expected a JSON object")
                new_id = org.create_many(odef.name, [req.body], api=True)[0]
                return Response(201, {"id": new_id, "success": True, "errors": []})
            if method == "GET":
                return Response(200, {"objectDescribe": self._describe(odef.name)})
            raise not_found()
        action = rest[1]
        if len(rest) == 2 and action == "describe" and method == "GET":
            return Response(200, self._describe(odef.name))
        if len(rest) == 2 and action in ("deleted", "updated") and method == "GET":
            return Response(200, self._changes(odef.name, action, req.params))
        if len(rest) == 2:
            return self._by_id(req, odef.name, action)
        if len(rest) == 3:
            return self._by_external_id(req, odef.name, action, rest[2])
        raise not_found()

    def _by_id(self, req: Request, sobject: str, record_id: str) -> Response:
        if req.method == "GET":
            names = req.params.get("fields")
            return Response(
                200, self._record(sobject, record_id, names.split(",") if names else None)
            )
        if req.method == "PATCH":
            if not isinstance(req.body, dict):
                raise bad_request("JSON_PARSER_ERROR", "expected a JSON object")
            self.org.update(sobject, record_id, req.body, api=True)
            return Response(204)
        if req.method == "DELETE":
            self.org.delete(sobject, record_id, api=True)
            return Response(204)
        raise not_found()

    def _by_external_id(self, req: Request, sobject: str, ext_field: str, value: str) -> Response:
        if req.method == "GET":
            rows = self.org.store.find(sobject, ext_field, value)
            if not rows:
                raise not_found()
            return Response(200, self._record(sobject, rows[0].id, None))
        if req.method != "PATCH" or not isinstance(req.body, dict):
            raise not_found()
        record_id, created = self.org.upsert(sobject, ext_field, value, req.body)
        body = {"id": record_id, "success": True, "errors": [], "created": created}
        return Response(201 if created else 200, body)

    def _changes(self, sobject: str, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            start = normalize_datetime(params["start"])
            end = normalize_datetime(params["end"])
        except (KeyError, ValueError) as exc:
            raise bad_request("INVALID_REPLICATION_DATE", "start and end are required") from exc
        if action == "updated":
            rows = self.org.store.scan(sobject, modstamp=[(">=", start), ("<=", end)])
            return {"ids": [r.id for r in rows], "latestDateCovered": end}
        deleted = self.org.store.deleted_between(sobject, start, end)
        earliest = format_datetime(now_ms() - timedelta(days=30))
        return {
            "deletedRecords": [{"id": r.id, "deletedDate": r.modstamp} for r in deleted],
            "earliestDateAvailable": min([earliest, *(r.modstamp for r in deleted)]),
            "latestDateCovered": end,
        }

    def _describe(self, sobject: str) -> dict[str, Any]:
        odef = self.org.api_schema().obj(sobject)
        base = f"/services/data/v{self.api_version}/sobjects/{odef.name}"
        children = [
            {"childSObject": rel.child, "field": rel.field, "relationshipName": rel.name}
            for rel in odef.children.values()
        ]
        return {
            "name": odef.name,
            "label": odef.name.removesuffix("__c").replace("_", " "),
            "keyPrefix": odef.key_prefix,
            "custom": odef.name.endswith("__c"),
            "createable": odef.createable,
            "updateable": any(f.updateable for f in odef.fields.values()),
            "queryable": True,
            "fields": [f.describe() for f in odef.fields.values()],
            "childRelationships": children,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def _describe_global(self) -> dict[str, Any]:
        objects = [
            {
                "name": o.name,
                "keyPrefix": o.key_prefix,
                "custom": o.name.endswith("__c"),
                "queryable": True,
                "createable": o.createable,
                "urls": {"sobject": f"/services/data/v{self.api_version}/sobjects/{o.name}"},
            }
            for o in self.org.api_schema().objects.values()
        ]
        return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}
