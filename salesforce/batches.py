"""Packing writes and queries into as few API calls as the REST API allows (pure).

- sObject Collections: at most 200 records a request.
- Composite: one API call for up to 25 subrequests, of which at most 5 are queries or
  collections. So 1,000 updated records are 5 collections requests in 1 Composite call.
- Records that share a parent (the OrderItems of one Order) go in the same collections
  request where they fit: Salesforce locks the parent while a child is saved, and two
  requests holding children of one parent wait on each other (UNABLE_TO_LOCK_ROW).
- An update request may mix objects (each record names its type, :data:`TYPE`): an Order,
  its lines and an Invoice share one. Salesforce saves each run of one type as a chunk, at
  most 10 chunks a request, so a mixed request is sorted by type: a chunk per object.
- A URI (plus headers) holds at most 16,384 bytes: long ``IN (...)`` lists are cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

from salesforce.results import WriteResult

COLLECTION_LIMIT = 200
COMPOSITE_HEAVY_LIMIT = 5
#: Most runs of one object type ("chunks") Salesforce saves in one collections request.
CHUNK_LIMIT = 10
#: A record's own object in a mixed update request (not sent as a field).
TYPE = "__type"
URI_BUDGET = 12_000  # bytes of query string, leaving room for the path and headers
T = TypeVar("T")


class CollectionRequest(NamedTuple):
    """One sObject Collections request: an update, or an upsert on ``ext_field``."""

    sobject: str
    records: list[dict[str, Any]]
    ext_field: str | None = None

    def path(self) -> str:
        if self.ext_field:
            return f"composite/sobjects/{self.sobject}/{self.ext_field}"
        return "composite/sobjects"

    def sobject_of(self, record: dict[str, Any]) -> str:
        """The object of one of the request's records."""
        return str(record.get(TYPE) or self.sobject)

    def key_of(self, record: dict[str, Any]) -> tuple[str, str]:
        """One of the request's records as its answer is filed: (object, Id or external id)."""
        return self.sobject_of(record), str(record.get(self.ext_field or "Id") or "")

    def body(self) -> dict[str, Any]:
        return {
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": self.sobject_of(r)},
                    **{k: v for k, v in r.items() if k not in ("Id", TYPE)},
                    **({"id": r["Id"]} if "Id" in r else {}),
                }
                for r in self.records
            ],
        }


def results_by_record(
    requests: Sequence[CollectionRequest], answers: Sequence[Sequence[WriteResult]]
) -> dict[tuple[str, str], WriteResult]:
    """Each record's answer to ``requests``, by :meth:`CollectionRequest.key_of`."""
    return {
        req.key_of(record): result
        for req, answer in zip(requests, answers, strict=True)
        for record, result in zip(req.records, answer, strict=False)
    }


def grouped_chunks(
    records: Sequence[T], parent: Callable[[T], str], size: int = COLLECTION_LIMIT
) -> list[list[T]]:
    """Chunks of at most ``size``, sorted by parent, never splitting a parent's records
    across chunks unless they alone exceed ``size``."""
    chunks: list[list[T]] = []
    current: list[T] = []
    for _, group in groupby(sorted(records, key=parent), key=parent):
        items = list(group)
        if current and len(current) + len(items) > size:
            chunks.append(current)
            current = []
        while len(items) > size:
            chunks.append(items[:size])
            items = items[size:]
        current.extend(items)
    if current:
        chunks.append(current)
    return chunks


def collection_requests(
    sobject: str,
    records: Sequence[dict[str, Any]],
    *,
    parent: str | None = None,
    ext_field: str | None = None,
) -> list[CollectionRequest]:
    """The collections requests for ``records``, grouped by the ``parent`` field if given."""
    key: Callable[[dict[str, Any]], str] = (
        (lambda r: str(r.get(parent) or "")) if parent else (lambda r: "")
    )
    if parent:
        rows = [{k: v for k, v in r.items()} for r in records]
        chunks = grouped_chunks(rows, key)
        return [
            CollectionRequest(sobject, [_without(r, parent) for r in _by_type(c)], ext_field)
            for c in chunks
        ]
    return [
        CollectionRequest(sobject, list(records[i : i + COLLECTION_LIMIT]), ext_field)
        for i in range(0, len(records), COLLECTION_LIMIT)
    ]


def _by_type(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A mixed request's records, a run per object (stable: a parent's order is kept)."""
    return sorted(records, key=lambda r: str(r.get(TYPE) or ""))


def _without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != name}


def packs(items: Sequence[T], size: int = COMPOSITE_HEAVY_LIMIT) -> Iterator[Sequence[T]]:
    """``items`` in runs of ``size``: each run is one Composite call."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_chunks(
    values: Iterable[str], render: Callable[[list[str]], str], budget: int = URI_BUDGET
) -> list[str]:
    """Queries ``render(chunk)`` whose URL-encoded length stays within ``budget``.

    Each value's cost is measured once (its encoded length plus a separator), so cutting
    10,000 ids stays linear.
    """
    base = len(quote(render([])))
    out: list[str] = []
    chunk: list[str] = []
    size = base
    for value in values:
        cost = len(quote(render([value]))) - base + len(quote(", "))
        if chunk and size + cost > budget:
            out.append(render(chunk))
            chunk, size = [], base
        chunk.append(value)
        size += cost
    if chunk:
        out.append(render(chunk))
    return out
