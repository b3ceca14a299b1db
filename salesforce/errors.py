"""The one place where simple-salesforce's and requests' exceptions become Orderflow's own.

=====================================  ==================================================
what Salesforce said                   what Orderflow does
=====================================  ==================================================
connection error, timeout              RetriableError (back off, try again)
TLS certificate not trusted            FatalError (a setting to fix, not a passing failure)
429, 5xx (SERVER_UNAVAILABLE, ...)     RetriableError, honouring ``Retry-After``
UNABLE_TO_LOCK_ROW                     RetriableError
403 REQUEST_LIMIT_EXCEEDED             BudgetExhausted (wait long: the window is rolling)
403 anything else                      FatalError (permission, disabled API)
401 INVALID_SESSION_ID                 FatalError once the client could not log in again
400, 404 (malformed, unknown field)    RecordError (this request cannot succeed as it is)
=====================================  ==================================================

Messages keep Salesforce's error code and message but never the request, which can carry
a session id in its headers.
"""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from orchestration.errors import (
    BudgetExhausted,
    FatalError,
    OrderflowError,
    RecordError,
    RetriableError,
)

TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}
)


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


def translate(exc: Exception, what: str) -> OrderflowError:
    """The Orderflow error for an exception raised while doing ``what``."""
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
    if code == "REQUEST_LIMIT_EXCEEDED":
        return BudgetExhausted(text, retry_after=3600.0)
    if code in TRANSIENT_CODES or (
        isinstance(exc, SalesforceGeneralError) and (exc.status == 429 or exc.status >= 500)
    ):
        return RetriableError(text)
    if isinstance(exc, SalesforceRefusedRequest | SalesforceExpiredSession):
        return FatalError(text)
    return RecordError(text)
