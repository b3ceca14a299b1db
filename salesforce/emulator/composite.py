"""The Composite resource: up to 25 subrequests in one API call, with ``@{ref}`` lookups."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from salesforce.emulator.api import DATA_PATH, Request, Response, RestApi, kind_of
from salesforce.emulator.errors import ApiError, bad_request

MAX_SUBREQUESTS = 25
MAX_HEAVY = 5  # queries and collections among them
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_HALTED = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same "
        "transaction failed.",
    }
]


class _Rollback(Exception):
    """Undo an allOrNone composite."""


def _lookup(results: dict[str, Any], match: re.Match[str]) -> Any:
    ref, path = match.group(1), match.group(2)
    if ref not in results:
        raise bad_request("PROCESSING_HALTED", f"Invalid reference specified: {ref}")
    value = results[ref]
    for key, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise bad_request("PROCESSING_HALTED", f"Invalid reference: {match.group()}") from exc
    return value


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(results, whole)
        return _REFERENCE.sub(lambda m: str(_lookup(results, m)), value)
    if isinstance(value, list):
        return [_resolve(item, results) for item in value]
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    return value


def _is_heavy(path: str) -> bool:
    head = path.strip("/")
    return head.startswith(("query", "queryAll", "composite/sobjects"))


def _subrequest(sub: Any, results: dict[str, Any]) -> tuple[str, Request]:
    if not isinstance(sub, dict) or not isinstance(sub.get("url"), str):
        raise bad_request("INVALID_API_INPUT", "each subrequest needs method, url, referenceId")
    url = urlsplit(str(_resolve(sub["url"], results)))
    match = DATA_PATH.match(url.path)
    if match is None:
        raise bad_request("NOT_FOUND", f"The requested resource does not exist: {url.path}")
    headers = {str(k).lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}
    body = _resolve(sub.get("body"), results)
    req = Request(
        str(sub.get("method", "GET")).upper(),
        match.group(2) or "",
        dict(parse_qsl(url.query)),
        headers,
        body,
    )
    return str(sub.get("referenceId", "")), req


def _check(body: Any) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise bad_request("JSON_PARSER_ERROR", "expected an object with compositeRequest")
    subs: list[Any] = body["compositeRequest"]
    if len(subs) > MAX_SUBREQUESTS:
        raise bad_request(
            "LIMIT_EXCEEDED", f"Composite requests are limited to {MAX_SUBREQUESTS} subrequests"
        )
    heavy = sum(1 for s in subs if isinstance(s, dict) and _is_heavy(_path_of(s)))
    if heavy > MAX_HEAVY:
        raise bad_request(
            "LIMIT_EXCEEDED",
            f"Composite requests may hold at most {MAX_HEAVY} query or collections subrequests",
        )
    return subs


def _is_collection_write(sub: Any) -> bool:
    if not isinstance(sub, dict):
        return False
    method = str(sub.get("method", "GET")).upper()
    return _path_of(sub).strip("/").startswith("composite/sobjects") and method in (
        "PATCH",
        "POST",
    )


def _path_of(sub: dict[str, Any]) -> str:
    match = DATA_PATH.match(urlsplit(str(sub.get("url", ""))).path)
    return (match.group(2) or "") if match else ""


def run_composite(api: RestApi, req: Request) -> Response:
    """Run a ``POST composite`` request; the caller has already counted one API call."""
    try:
        subs = _check(req.body)
        # An injected lock lands on the records of the collections writes inside, as
        # Salesforce reports it (per record); a composite without any fails as a whole.
        lock_records = req.lock_fault and any(_is_collection_write(s) for s in subs)
        if req.lock_fault and not lock_records:
            raise bad_request("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")
    except ApiError as exc:
        return Response(exc.status, exc.body())
    all_or_none = bool(req.body.get("allOrNone", False))
    answers: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    failed = False
    try:
        with api.org.store.transaction():
            for sub in subs:
                ref = str(sub.get("referenceId", "")) if isinstance(sub, dict) else ""
                if failed and all_or_none:
                    answers.append(_answer(ref, Response(400, _HALTED)))
                    continue
                try:
                    ref, sub_req = _subrequest(sub, results)
                    if sub_req.path.strip("/").startswith("composite") and not _is_heavy(
                        sub_req.path
                    ):
                        raise bad_request("INVALID_API_INPUT", "composite cannot be nested")
                    sub_req.lock_fault = lock_records and _is_collection_write(sub)
                    api.count_subrequest(kind_of(sub_req.method, sub_req.path))
                    resp = api.handle(sub_req)
                except ApiError as exc:
                    resp = Response(exc.status, exc.body())
                failed = failed or resp.status >= 400
                if resp.status < 400:
                    results[ref] = resp.body
                answers.append(_answer(ref, resp))
            if failed and all_or_none:
                raise _Rollback
    except _Rollback:
        answers = [
            a if a["httpStatusCode"] >= 400 else {**a, "body": _HALTED, "httpStatusCode": 400}
            for a in answers
        ]
    return Response(200, {"compositeResponse": answers})


def _answer(ref: str, resp: Response) -> dict[str, Any]:
    return {
        "body": resp.body,
        "httpHeaders": resp.headers,
        "httpStatusCode": resp.status,
        "referenceId": ref,
    }
