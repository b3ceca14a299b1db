"""The Salesforce gateway: the only object that calls Salesforce's REST API.

It wraps a ``simple_salesforce.Salesforce`` (handed in, so tests and other callers choose
how it logs in), puts a timeout on every call, retries what is worth retrying and
translates every error into Orderflow's own (see :mod:`salesforce.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from simple_salesforce.api import Salesforce
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from orchestration.errors import BudgetExhausted, RetriableError
from salesforce.errors import TRANSIENT_CODES, translate

log = logging.getLogger(__name__)

COLLECTION_LIMIT = 200
T = TypeVar("T")


class WriteResult(NamedTuple):
    """One record's answer from an sObject Collections call."""

    id: str
    success: bool
    code: str = ""
    message: str = ""

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES


class ApiUsage(NamedTuple):
    used: int
    limit: int


class SalesforceGateway:
    """Queries and writes through one ``simple_salesforce.Salesforce`` client."""

    def __init__(self, sf: Salesforce, *, timeout: float = 30.0, attempts: int = 4) -> None:
        self.sf = sf
        self.timeout = timeout
        self._retry = retry(
            retry=retry_if_exception(_worth_retrying),
            wait=wait_random_exponential(multiplier=0.5, max=20),
            stop=stop_after_attempt(attempts),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                raise translate(exc, what) from exc

        result: T = self._retry(attempt)()
        return result

    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[Any]]:
        """Each page of a query's records, following ``nextRecordsUrl``; one page in memory."""
        page = self._call(
            "query",
            lambda: self.sf.query(soql, include_deleted=include_deleted, timeout=self.timeout),
        )
        while True:
            yield list(page["records"])
            if page.get("done", True):
                return
            url = page["nextRecordsUrl"]
            page = self._call(
                "query more",
                lambda url=url: self.sf.query_more(  # type: ignore[misc]
                    url, identifier_is_url=True, timeout=self.timeout
                ),
            )

    def update(self, sobject: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        """Update records (each with ``Id``) 200 at a time; one result per record, in order."""
        results: list[WriteResult] = []
        for start in range(0, len(records), COLLECTION_LIMIT):
            chunk = records[start : start + COLLECTION_LIMIT]
            body = {
                "allOrNone": False,
                "records": [
                    {
                        "attributes": {"type": sobject},
                        **{k: v for k, v in r.items() if k != "Id"},
                        "id": r["Id"],
                    }
                    for r in chunk
                ],
            }
            answer = self._call(
                "update",
                lambda body=body: self.sf.restful(  # type: ignore[misc]
                    "composite/sobjects", method="PATCH", json=body, timeout=self.timeout
                ),
            )
            results.extend(_write_results(chunk, answer))
        return results

    @property
    def api_usage(self) -> ApiUsage | None:
        usage = self.sf.api_usage.get("api-usage")
        return ApiUsage(usage.used, usage.total) if usage else None


def _worth_retrying(exc: BaseException) -> bool:
    # A spent daily allowance is not cured by seconds of back-off; the poll cadence handles it.
    return isinstance(exc, RetriableError) and not isinstance(exc, BudgetExhausted)


def _write_results(chunk: list[dict[str, Any]], answer: Any) -> list[WriteResult]:
    out = []
    for record, result in zip(chunk, answer or [], strict=False):
        errors = result.get("errors") or []
        first = errors[0] if errors else {}
        out.append(
            WriteResult(
                id=str(result.get("id") or record["Id"]),
                success=bool(result.get("success")),
                code=str(first.get("statusCode") or ""),
                message=str(first.get("message") or "")[:255],
            )
        )
    return out
