"""The HTTP JSON connector: any downstream system that takes a task as JSON over HTTP.

Where each call goes is a path per action, relative to the base URL unless absolute
(``{ref}`` is replaced by the external reference):

    submit     POST  {base}/{action}          (or ``paths[action]``)
    status     GET   {base}/status/{ref}      (``paths["status"]``)
    cancel     POST  {base}/cancel/{ref}      (``paths["cancel"]``)
    documents  GET   {base}/documents         (``paths["documents"]``, with since/until)
    probe      GET   {base}/                  (``paths["probe"]``; any HTTP answer = reachable)

Answers: an explicit ``status`` field in the body wins; without one, HTTP 2xx is success.
Connection errors, timeouts, 408, 425, 429 and 5xx are retriable (``Retry-After`` kept
when it is a number of seconds or an HTTP-date, finite and at most a day); other 4xx are
permanent, with the system's message trimmed to what a step can show.

No answer can claim an effect it does not show, or escape as an unexpected exception:

- redirects are not followed (a 301 would turn the POST into a GET, a 307 would carry the
  credentials to another host): a 3xx is a permanent failure naming its ``Location``;
- a 2xx is success only with an empty or JSON body: an HTML login page or invalid JSON is
  a retriable failure (``answered text/html, not JSON``), so is a body larger than
  :data:`MAX_ANSWER_BYTES` or one cut off (short of its ``Content-Length``, reset);
- every other ``requests`` error is retriable, with what happened in its message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
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
#: The most of an answer's body read: a larger one is a failure, not a memory spike.
MAX_ANSWER_BYTES = 2**20
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


@dataclass(frozen=True)
class Reply:
    """An answer read whole (at most :data:`MAX_ANSWER_BYTES`), its connection released."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        clock: Callable[[], datetime] = _utcnow,
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
        self._clock = clock  # for a Retry-After given as an HTTP-date

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
        if response.status == 404:
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
            raise RetriableError(f"{self.name}: listing documents answered {response.status}")
        body = self._body(response)
        rows = body.get("documents", []) if isinstance(body, dict) else body
        return [Document.model_validate(row) for row in rows or []]

    def probe(self) -> bool:
        """True when the system answers at all (any HTTP status)."""
        try:
            self._call("GET", self._url("probe"))
        except Unreachable:
            return False
        except RetriableError:
            pass  # an answer, however garbled, came back
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

    def _call(self, method: str, url: str, **kwargs: Any) -> Reply:
        if self._verify is not None:
            kwargs["verify"] = self._verify
        try:
            response = self._session.request(
                method,
                url,
                auth=self._auth,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
        except requests.Timeout as exc:
            raise Unreachable(f"{self.name}: no answer within {self._timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise Unreachable(f"{self.name}: cannot connect to {self._base}") from exc
        except requests.RequestException as exc:
            raise RetriableError(f"{self.name}: request failed ({type(exc).__name__})") from exc
        with response:
            return Reply(response.status_code, response.headers, self._content(response))

    def _content(self, response: requests.Response) -> bytes:
        """The body, read up to the limit; a cut or oversized one is a retriable failure."""
        data = bytearray()
        try:
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise RetriableError(
                        f"{self.name}: answer larger than {MAX_ANSWER_BYTES // 2**20} MB",
                        code="bad_answer",
                    )
        except requests.RequestException as exc:
            raise RetriableError(
                f"{self.name}: answer cut off ({type(exc).__name__})", code="bad_answer"
            ) from exc
        return bytes(data)

    def _read(self, response: Reply) -> SubmitResult:
        if response.status in RETRIABLE_STATUS:
            raise RetriableError(
                f"{self.name}: HTTP {response.status}",
                retry_after=retry_after(response.headers.get("Retry-After"), self._clock()),
            )
        if 300 <= response.status < 400:
            where = response.headers.get("Location") or "nowhere"
            return SubmitResult(
                outcome=Outcome.FAILED,
                code="redirect",
                message=_trim(f"{self.name}: answered {response.status} to {where}, not followed"),
            )
        found = self._body(response, strict=response.ok)
        body = found if isinstance(found, dict) else {}
        reference = body.get("reference") or body.get("document_number")
        reference = str(reference) if reference is not None else None
        if not response.ok:
            return SubmitResult(
                outcome=Outcome.FAILED,
                external_ref=reference,
                code=str(body.get("code") or response.status),
                message=self._message(body, f"HTTP {response.status}"),
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

    def _body(self, response: Reply, *, strict: bool = True) -> Any:
        """The JSON body (``{}`` when empty); one that is not JSON is a retriable failure
        when ``strict`` (a success must show what it did), ``{}`` otherwise."""
        if not response.body.strip():
            return {}
        try:
            return json.loads(response.body)
        except ValueError:
            if not strict:
                return {}
        kind = response.content_type or "a body without a type"
        what = "invalid JSON" if kind.endswith("json") else f"{kind}, not JSON"
        raise RetriableError(f"{self.name}: answered {what}", code="bad_answer")


def _trim(text: str) -> str:
    return text[:MESSAGE_LIMIT]


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP-date), or None when
    there is none or it is not a sane delay (RetriableError keeps it only up to a day)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
