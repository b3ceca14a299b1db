"""The HTTP JSON connector: any downstream system that takes a task as JSON over HTTP.

Where each call goes is a path per action, relative to the base URL unless absolute
(``{ref}`` is replaced by the external reference):

    submit     POST  {base}/{action}          (or ``paths[action]``)
    status     GET   {base}/status/{ref}      (``paths["status"]``)
    cancel     POST  {base}/cancel/{ref}      (``paths["cancel"]``)
    documents  GET   {base}/documents         (``paths["documents"]``, with since/until)
    probe      GET   {base}/                  (``paths["probe"]``; any HTTP answer = reachable)

Answers: an explicit ``status`` field in the body wins; without one, HTTP 2xx is success.
Connection errors, timeouts, 408, 425, 429 and 5xx are retriable (``Retry-After`` kept);
other 4xx are permanent, with the system's message trimmed to what a step can show.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from downstream.protocol import (
    Document,
    Outcome,
    SubmitResult,
    TaskRequest,
    Unreachable,
)
from downstream.signing import CORRELATION_HEADER
from orchestration.errors import RetriableError

log = logging.getLogger(__name__)

#: Answers that mean "try the same request again later".
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MESSAGE_LIMIT = 255
DEFAULT_PATHS = {
    "status": "status/{ref}",
    "cancel": "cancel/{ref}",
    "documents": "documents",
    "probe": "",
}
#: Words systems use in a ``status`` field, by what they mean.
STATUS_WORDS = {
    Outcome.COMPLETED: {"completed", "complete", "done", "succeeded", "success", "ok", "active"},
    Outcome.ACCEPTED: {"accepted", "pending", "queued", "processing", "in_progress", "running"},
}


class HttpJsonConnector:
    """One downstream system reached over HTTP with JSON bodies.

    The ``session`` is built by the daemon (TLS trust, connection pooling) and ``auth`` is one
    of :mod:`downstream.auth`; the connector owns the request shape and the reading of
    answers. What a payload must fit is the rules file's contract, checked before this
    (orchestration.contracts).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        session: requests.Session,
        *,
        auth: AuthBase | None = None,
        token: str | None = None,
        timeout: float = 15.0,
        paths: dict[str, str] | None = None,
        verify: bool | str | None = None,
        redact: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._session = session
        if auth is None and token:
            from downstream.auth import BearerAuth

            auth = BearerAuth(token)
        self._auth = auth
        self._timeout = timeout
        self._paths = {**DEFAULT_PATHS, **(paths or {})}
        self._verify = verify
        # Secrets a system might echo back in an error message; never shown on a step.
        self._redact = tuple(s for s in (*redact, token) if s)

    def __repr__(self) -> str:
        return f"HttpJsonConnector({self.name!r}, {self._base!r})"

    # -- the protocol ----------------------------------------------------------------------
    def submit(self, request: TaskRequest) -> SubmitResult:
        headers = {
            "Idempotency-Key": request.idempotency_key,
            "X-Orderflow-Step": request.step_ref,
        }
        if request.correlation:
            headers[CORRELATION_HEADER] = request.correlation
        response = self._call(
            "POST", self._url(request.action), json=request.payload, headers=headers
        )
        return self._read(response)

    def status(self, external_ref: str) -> SubmitResult:
        response = self._call("GET", self._url("status", external_ref))
        if response.status_code == 404:
            return SubmitResult(
                outcome=Outcome.FAILED,
                external_ref=external_ref,
                code="not_found",
                message=_trim(f"{self.name}: reference {external_ref} is unknown"),
            )
        result = self._read(response)
        if result.external_ref is None:
            result = result.model_copy(update={"external_ref": external_ref})
        return result

    def cancel(self, external_ref: str) -> SubmitResult:
        return self._read(self._call("POST", self._url("cancel", external_ref), json={}))

    def documents(self, since: date, until: date) -> list[Document]:
        params = {"since": since.isoformat(), "until": until.isoformat()}
        response = self._call("GET", self._url("documents"), params=params)
        if not response.ok:
            raise RetriableError(f"{self.name}: listing documents answered {response.status_code}")
        body = _json_any(response)
        rows = body.get("documents", []) if isinstance(body, dict) else body
        return [Document.model_validate(row) for row in rows or []]

    def probe(self) -> bool:
        """True when the system answers at all (any HTTP status)."""
        try:
            self._call("GET", self._url("probe"))
        except Unreachable:
            return False
        return True

    # -- plumbing --------------------------------------------------------------------------
    def _message(self, body: dict[str, Any], fallback: str) -> str:
        text = str(body.get("message") or body.get("error") or fallback)
        for secret in self._redact:
            text = text.replace(secret, "****")
        return _trim(f"{self.name}: {text}")

    def _url(self, action: str, ref: str | None = None) -> str:
        path = self._paths.get(action, action)
        if ref is not None:
            path = path.replace("{ref}", quote(ref, safe=""))
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._base}/{path.lstrip('/')}" if path else f"{self._base}/"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self._verify is not None:
            kwargs["verify"] = self._verify
        try:
            return self._session.request(
                method, url, auth=self._auth, timeout=self._timeout, **kwargs
            )
        except requests.Timeout as exc:
            raise Unreachable(f"{self.name}: no answer within {self._timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise Unreachable(f"{self.name}: cannot connect to {self._base}") from exc

    def _read(self, response: requests.Response) -> SubmitResult:
        body = _json(response)
        if response.status_code in RETRIABLE_STATUS:
            raise RetriableError(
                f"{self.name}: HTTP {response.status_code}",
                retry_after=_retry_after(response),
            )
        reference = body.get("reference") or body.get("document_number")
        reference = str(reference) if reference is not None else None
        if not response.ok:
            return SubmitResult(
                outcome=Outcome.FAILED,
                external_ref=reference,
                code=str(body.get("code") or response.status_code),
                message=self._message(body, f"HTTP {response.status_code}"),
            )
        word = str(body.get("status") or "completed").lower()
        outcome = next((o for o, words in STATUS_WORDS.items() if word in words), Outcome.FAILED)
        failed = outcome is Outcome.FAILED
        return SubmitResult(
            outcome=outcome,
            external_ref=reference,
            code=str(body.get("code") or word) if failed else "",
            message=self._message(body, word) if failed else "",
        )


def _json_any(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _json(response: requests.Response) -> dict[str, Any]:
    body = _json_any(response)
    return body if isinstance(body, dict) else {}


def _trim(text: str) -> str:
    return text[:MESSAGE_LIMIT]


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
