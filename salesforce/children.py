"""Child results of parent-child subqueries, read to their last page.

Salesforce pages each parent's child relationship result like a query of its own: past a
batch (200 is common) it answers ``done: false`` with a ``nextRecordsUrl`` that queryMore
follows. Every place that reads children (the poll's Orders with their OrderItems, a
resync's Invoices with their InvoiceLines, reconcile) completes them here first, so nothing
is planned, stored or compared from a first page alone.

A record whose children cannot all be read (a page refused, a locator dropped, a failure
that outlasted the gateway's retries) is left as it was and named with the reason: the
caller does not take it this time. A spent allowance is not a record's problem: it
propagates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from orchestration.errors import BudgetExhausted, OrderflowError


class PageReader(Protocol):
    """What reading the rest of a result needs (:class:`salesforce.gateway.SalesforceGateway`)."""

    def rest_of(self, page: Any) -> Iterable[list[Any]]: ...


def is_complete(result: Any) -> bool:
    """Whether a child relationship result (or None: no children) holds all its records."""
    return not isinstance(result, dict) or result.get("done", True) is not False


def complete_children(
    reader: PageReader, records: Iterable[dict[str, Any]], relationship: str
) -> dict[str, str]:
    """Follow each record's ``relationship`` result to its end, in place: a completed one
    reads ``{"totalSize": n, "done": true, "records": [...every child...]}``.

    Returns ``{record Id: reason}`` for the records whose children could not all be read;
    those are left untouched. Raises BudgetExhausted when no call may be made.
    """
    failed: dict[str, str] = {}
    for record in records:
        result = record.get(relationship)
        if result is None or is_complete(result):
            continue
        try:
            children = [child for page in reader.rest_of(result) for child in page]
        except BudgetExhausted:
            raise
        except OrderflowError as exc:
            failed[str(record["Id"])] = f"{relationship} not read completely: {exc}"
            continue
        total = int(result.get("totalSize") or 0)
        if len(children) < total:
            failed[str(record["Id"])] = (
                f"{relationship} not read completely: {len(children)} of {total} records"
            )
            continue
        record[relationship] = {"totalSize": len(children), "done": True, "records": children}
    return failed
