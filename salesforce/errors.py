"""The one place where simple-salesforce's and requests' exceptions become Orderflow's own.

=====================================  ==================================================
what Salesforce said                   what Orderflow does
=====================================  ==================================================
connection error, timeout              RetriableError (back off, try again)
TLS certificate not trusted            FatalError (a setting to fix, not a passing failure)
429, 5xx (SERVER_UNAVAILABLE, ...)     RetriableError, honouring ``Retry-After``
UNABLE_TO_LOCK_ROW, other transients   RetriableError
403 REQUEST_LIMIT_EXCEEDED,            RetriableError (too many long-running requests
  "ConcurrentPerOrgLongTxn" or          at this moment: back off seconds, no hold)
  "ConcurrentRequests" in the message
403 REQUEST_LIMIT_EXCEEDED, any other   BudgetExhausted (the daily allowance is spent:
  ("TotalRequests Limit exceeded.")     hold calls, probe it now and then; salesforce.budget)
403 anything else                      FatalError (permission, disabled API)
401 INVALID_SESSION_ID                 SessionExpired (log in again once, then FatalError)
login refused                          FatalError
400, 404 (malformed, unknown field)    RecordError (this request cannot succeed as it is)
=====================================  ==================================================

The same table classifies whole calls (:func:`translate`), Composite subrequests and
per-record results (:func:`classify`). Messages keep Salesforce's error code and message
but never the request, which can carry a session id in its headers.
"""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
)

from orchestration.errors import (
    BudgetExhausted,
    FatalError,
    OrderflowError,
    RecordError,
    RetriableError,
)

#: Per-record or per-call codes that a later attempt may not meet again.
TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "QUERY_TIMEOUT",
        "UNKNOWN_EXCEPTION",
        "TXN_SECURITY_METERING_ERROR",
    }
)
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"
SESSION_CODE = "INVALID_SESSION_ID"
#: Messages of a REQUEST_LIMIT_EXCEEDED that refuses this moment, not the day's allowance.
CONCURRENT_LIMITS = ("ConcurrentPerOrgLongTxn", "ConcurrentRequests")
#: The least back-off after a concurrent-request refusal: long-running requests end in
#: seconds, and an immediate retry would meet them still running.
CONCURRENT_BACKOFF = 2.0


class SessionExpired(RetriableError):
    """401 INVALID_SESSION_ID: the session must be renewed before the call is repeated."""


def error_code(content: Any) -> str:
    """The first ``errorCode`` of a Salesforce error body, or ''."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode") or content[0].get("statusCode") or "")
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error") or "")
    return ""


def error_message(content: Any) -> str:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("message") or "")[:300]
    if isinstance(content, dict):
        return str(content.get("message") or content.get("error_description") or "")[:300]
    return str(content)[:300]


def classify(
    status: int, code: str, text: str, *, retry_after: float | None = None
) -> OrderflowError:
    """The Orderflow error for an HTTP ``status`` and Salesforce error ``code``."""
    if code == LIMIT_CODE and any(kind in text for kind in CONCURRENT_LIMITS):
        wait = max(retry_after or 0.0, CONCURRENT_BACKOFF)
        return RetriableError(text, retry_after=wait, code=code)
    if code == LIMIT_CODE:
        return BudgetExhausted(text, retry_after=retry_after)
    if code == SESSION_CODE or status == 401:
        return SessionExpired(text)
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return RetriableError(text, retry_after=retry_after)
    if status == 403:
        return FatalError(text)
    return RecordError(text)


def translate(exc: Exception, what: str, *, retry_after: float | None = None) -> OrderflowError:
    """The Orderflow error for an exception raised while doing ``what``.

    ``retry_after`` is the ``Retry-After`` of the response that failed, read by the
    transport (simple-salesforce drops response headers from its exceptions).
    """
    if isinstance(exc, OrderflowError):
        return exc
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalError(f"Salesforce {what}: the TLS certificate is not trusted")
    if isinstance(exc, requests.Timeout):
        return RetriableError(f"Salesforce {what}: no answer in time")
    if isinstance(exc, requests.ConnectionError):
        return RetriableError(f"Salesforce {what}: cannot connect")
    if isinstance(exc, SalesforceAuthenticationFailed):
        return FatalError(f"Salesforce login refused: {exc.code}: {exc.message}")
    if not isinstance(exc, SalesforceError):
        return RetriableError(f"Salesforce {what}: {type(exc).__name__}")
    code = error_code(exc.content)
    text = f"Salesforce {what}: HTTP {exc.status} {code}: {error_message(exc.content)}".rstrip()
    return classify(exc.status, code, text, retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: rare from Salesforce; the exponential back-off applies
