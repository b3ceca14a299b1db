"""The HTTP JSON connector: any downstream system that takes a task as a JSON POST."""

from __future__ import annotations

import logging
from typing import Any

import requests

from downstream.protocol import Outcome, SubmitResult, TaskRequest
from orchestration.errors import RetriableError

log = logging.getLogger(__name__)

#: Answers that mean "try the same request again later".
RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MESSAGE_LIMIT = 255


class HttpJsonConnector:
    """POSTs ``{base_url}/{action}`` with the payload as JSON and an ``Idempotency-Key``.

    The ``session`` is built by the daemon (TLS settings, connection pooling); the
    connector owns the request shape and the reading of answers.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        session: requests.Session,
        *,
        token: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._session = session
        self._token = token
        self._timeout = timeout

    def submit(self, request: TaskRequest) -> SubmitResult:
        headers = {
            "Idempotency-Key": request.idempotency_key,
            "X-Orderflow-Step": request.step_ref,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        url = f"{self._base}/{request.action}"
        try:
            response = self._session.post(
                url, json=request.payload, headers=headers, timeout=self._timeout
            )
        except requests.Timeout as exc:
            raise RetriableError(f"{self.name}: no answer within {self._timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise RetriableError(f"{self.name}: cannot connect to {self._base}") from exc
        return self._read(response)

    def _read(self, response: requests.Response) -> SubmitResult:
        body = _json(response)
        if response.status_code in RETRIABLE_STATUS:
            raise RetriableError(
                f"{self.name}: HTTP {response.status_code}",
                retry_after=_retry_after(response),
            )
        if not response.ok:
            return SubmitResult(
                outcome=Outcome.FAILED,
                code=str(body.get("code") or response.status_code),
                message=_message(self.name, body, f"HTTP {response.status_code}"),
            )
        status = str(body.get("status") or "completed").lower()
        outcome = {"completed": Outcome.COMPLETED, "accepted": Outcome.ACCEPTED}.get(
            status, Outcome.FAILED
        )
        return SubmitResult(
            outcome=outcome,
            external_ref=body.get("reference"),
            code="" if outcome is not Outcome.FAILED else str(body.get("code") or status),
            message="" if outcome is not Outcome.FAILED else _message(self.name, body, status),
        )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(system: str, body: dict[str, Any], fallback: str) -> str:
    text = str(body.get("message") or body.get("error") or fallback)
    return f"{system}: {text}"[:MESSAGE_LIMIT]


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
