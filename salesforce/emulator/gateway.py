"""Everything between the HTTP socket and the REST handlers: OAuth, session checks, API
call counting, the daily limit, fault injection and the ``Sforce-Limit-Info`` header."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from salesforce.emulator.api import DATA_PATH, Request, Response, RestApi, kind_of
from salesforce.emulator.auth import API_USER_ID, ORG_ID, OAuthError, Sessions
from salesforce.emulator.composite import run_composite
from salesforce.emulator.faults import FaultDice

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, str], bytes]
_INITIAL_KINDS = ("query", "queryMore", "composite/sobjects", "composite", "sobject", "limits")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    if isinstance(body, str):  # a CSV answer (Bulk API 2.0 results)
        return status, {"Content-Type": "text/csv", **(headers or {})}, body.encode()
    data = b"" if body is None else json.dumps(body).encode()
    out = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
    return status, out, data


def _error(status: int, code: str, message: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


class Gateway:
    """Turns raw HTTP requests into answers; thread-safe."""

    def __init__(
        self,
        api: RestApi,
        sessions: Sessions,
        dice: FaultDice,
        daily_limit: int,
        base_url: Callable[[], str],
    ) -> None:
        self.api = api
        self.sessions = sessions
        self.dice = dice
        self.daily_limit = daily_limit
        self.base_url = base_url
        self._lock = threading.Lock()
        self.api_calls = 0
        #: The rolling 24-hour window's count less ours: calls other integrations spent
        #: (:meth:`spend_calls`) less those the window let go of (:meth:`free_calls`).
        self.offset = 0
        self.calls_by_kind: dict[str, int] = dict.fromkeys(_INITIAL_KINDS, 0)
        #: ``/_emulator/pubsub/...`` (method, action, body) -> (status, JSON), when served.
        self.pubsub_control: Callable[[str, str, bytes], tuple[int, Any]] | None = None

    def usage(self) -> tuple[int, int]:
        """(calls used in the rolling window, daily limit)."""
        with self._lock:
            return self.api_calls + self.offset, self.daily_limit

    def free_calls(self, n: int) -> None:
        """The rolling window lets go of ``n`` old calls (at most all of them)."""
        with self._lock:
            self.offset -= min(n, self.api_calls + self.offset)

    def spend_calls(self, n: int) -> None:
        """Other integrations of the org spend ``n`` calls of the allowance."""
        with self._lock:
            self.offset += n

    def stats(self) -> dict[str, Any]:
        """The ``/_emulator/stats`` answer."""
        with self._lock:
            return {"api_calls": self.api_calls, "calls_by_kind": dict(self.calls_by_kind)}

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one HTTP request; ``headers`` keys are lower-case."""
        url = urlsplit(target)
        path = url.path
        if path == "/services/oauth2/token" and method == "POST":
            try:
                return _json(200, self.sessions.grant(body, self.base_url()))
            except OAuthError as exc:
                return _json(400, exc.body)
        if path == "/services/oauth2/userinfo" and method == "GET":
            return self._userinfo(headers)
        if path == "/_emulator/stats" and method == "GET":
            return _json(200, self.stats())
        if path.startswith("/_emulator/pubsub/") and self.pubsub_control is not None:
            return _json(*self.pubsub_control(method, path.rsplit("/", 1)[1], body))
        if path.rstrip("/") == "/services/data" and method == "GET":
            version = self.api.api_version
            return _json(
                200,
                [{"label": "Emulator", "url": f"/services/data/v{version}", "version": version}],
            )
        match = DATA_PATH.match(path)
        if match is None:
            return _json(404, _error(404, "NOT_FOUND", "The requested resource does not exist"))
        token = headers.get("authorization", "").partition(" ")[2].strip()
        if not token or not self.sessions.valid(token):
            return _json(401, _error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        rest = match.group(2) or ""
        with self._lock:
            self.api_calls += 1
            used = self.api_calls + self.offset
            kind = kind_of(method, rest)
            self.calls_by_kind[kind] = self.calls_by_kind.get(kind, 0) + 1
        limit_header = {"Sforce-Limit-Info": f"api-usage={used}/{self.daily_limit}"}
        status, out_headers, data = self._serve(method, rest, url.query, headers, body, token, used)
        return status, {**out_headers, **limit_header}, data

    def _userinfo(self, headers: Mapping[str, str]) -> Answer:
        """Who the session is (OpenID Connect userinfo): the org id for the Pub/Sub API's
        ``tenantid``, for a client holding only a session id. Not an API call."""
        token = headers.get("authorization", "").partition(" ")[2].strip()
        if not token or not self.sessions.valid(token):
            return _json(403, "Bad_OAuth_Token")
        identity = f"{self.base_url()}/id/{ORG_ID}/{API_USER_ID}"
        return _json(200, {"sub": identity, "user_id": API_USER_ID, "organization_id": ORG_ID})

    def _serve(
        self,
        method: str,
        rest: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        token: str,
        used: int,
    ) -> Answer:
        if used > self.daily_limit:
            return _json(
                403, _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            )
        fault = self.dice.draw()
        if fault is not None:
            logger.info("injecting fault %s on %s %s", fault, method, rest.split("?")[0])
        if fault == "503":
            message = "Server is unavailable; try again later"
            return _json(503, _error(503, "SERVER_UNAVAILABLE", message), {"Retry-After": "1"})
        if fault == "limit":
            return _json(
                403, _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            )
        if fault == "concurrent":
            message = "ConcurrentPerOrgLongTxn Limit exceeded"
            return _json(403, _error(403, "REQUEST_LIMIT_EXCEEDED", message))
        if fault == "invalid_session":
            self.sessions.revoke(token)
            return _json(401, _error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        try:
            if headers.get("content-type", "").startswith("text/csv"):
                parsed: Any = body.decode("utf-8")  # Bulk API 2.0 job data
            else:
                parsed = json.loads(body) if body.strip() else None
        except UnicodeDecodeError:
            return _json(400, _error(400, "INVALIDBATCH", "CSV data is not UTF-8"))
        except ValueError:
            return _json(400, _error(400, "JSON_PARSER_ERROR", "Unexpected character in body"))
        req = Request(method, rest, dict(parse_qsl(query)), headers, parsed, fault == "lock")
        if rest.strip("/") == "composite" and method == "POST":
            resp: Response = run_composite(self.api, req)
        else:
            resp = self.api.handle(req)
        return _json(resp.status, resp.body, resp.headers)
