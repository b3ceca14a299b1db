"""Run SOQL against the store: index pushdown, relationship joins, paged cursors."""

from __future__ import annotations

import secrets
import string
import threading
from collections import OrderedDict, defaultdict
from typing import Any

from salesforce.emulator.errors import bad_request
from salesforce.emulator.ids import is_id, to18
from salesforce.emulator.org import Org
from salesforce.emulator.soql import And, Comparison, Condition, In, parse
from salesforce.emulator.soql_eval import BoundQuery, Rec, bind, project, select
from salesforce.emulator.store import Row
from salesforce.emulator.values import normalize_datetime

DEFAULT_BATCH = 2000
#: Children per parent in the first answer, as Salesforce pages a parent-child subquery.
CHILD_BATCH = 200
#: Open result sets kept for ``nextRecordsUrl`` (each paged child result holds one).
MAX_CURSORS = 5000
_ALNUM = string.ascii_letters + string.digits


def batch_size(header: str | None) -> int:
    """The page size asked for by ``Sforce-Query-Options`` (a hint, clamped to 200..2000)."""
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(200, min(DEFAULT_BATCH, int(value)))
    return DEFAULT_BATCH


def _pushdown(cond: Condition | None) -> tuple[list[tuple[str, str]], list[str] | None]:
    """Index-friendly parts of a WHERE: SystemModstamp bounds and Id lists (top-level AND)."""
    items = cond.items if isinstance(cond, And) else (cond,) if cond else ()
    bounds: list[tuple[str, str]] = []
    ids: list[str] | None = None
    for item in items:
        if not isinstance(item, Comparison | In) or len(item.field.path) != 1:
            continue
        name = item.field.path[0].lower()
        if isinstance(item, Comparison) and name == "systemmodstamp":
            if item.op in ("<", "<=", ">", ">=") and item.value.kind == "datetime":
                bounds.append((item.op, normalize_datetime(str(item.value.value))))
        elif name == "id":
            if isinstance(item, Comparison) and item.op == "=":
                values = [item.value]
            elif isinstance(item, In) and not item.negated:
                values = list(item.values)
            else:
                continue
            wanted = [
                to18(str(v.value)) for v in values if v.kind == "string" and is_id(str(v.value))
            ]
            ids = wanted if ids is None else [i for i in ids if i in set(wanted)]
    return bounds, ids


class QueryEngine:
    """Executes queries and keeps their result sets for ``nextRecordsUrl`` paging."""

    def __init__(
        self,
        org: Org,
        api_version: str,
        *,
        child_batch: int = CHILD_BATCH,
        max_cursors: int = MAX_CURSORS,
    ) -> None:
        self.org = org
        self.api_version = api_version
        self.child_batch = child_batch
        self.max_cursors = max_cursors
        self._cursors: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self._lock = threading.Lock()

    def run(
        self, soql: str, *, include_deleted: bool, batch: int = DEFAULT_BATCH
    ) -> dict[str, Any]:
        """The first page of a query's answer."""
        bq = bind(parse(soql), self.org.api_schema())
        bounds, ids = _pushdown(bq.query.where)
        rows = self.org.store.scan(
            bq.obj.name, include_deleted=include_deleted, modstamp=bounds, ids=ids
        )
        recs = self._join_parents(rows, bq)
        chosen = select(recs, bq)
        if bq.count:
            return {"totalSize": len(chosen), "done": True, "records": []}
        self._join_children(chosen, bq, include_deleted)
        records = [project(rec, bq, self.api_version) for rec in chosen]
        self._page_children(records, bq)
        return self._page(records, batch)

    def more(self, locator: str) -> dict[str, Any]:
        """A later page: ``locator`` is ``<cursor>-<offset>`` from ``nextRecordsUrl``."""
        cursor, _, offset = locator.rpartition("-")
        with self._lock:
            found = self._cursors.get(cursor)
            if found is not None:
                self._cursors.move_to_end(cursor)
        if found is None or not offset.isdigit():
            raise bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
        records, batch = found
        return self._slice(cursor, records, int(offset), batch)

    def _page(self, records: list[dict[str, Any]], batch: int) -> dict[str, Any]:
        cursor = "01g" + "".join(secrets.choice(_ALNUM) for _ in range(12))
        if len(records) > batch:
            with self._lock:
                self._cursors[cursor] = (records, batch)
                while len(self._cursors) > self.max_cursors:
                    self._cursors.popitem(last=False)
        return self._slice(cursor, records, 0, batch)

    def _page_children(self, records: list[dict[str, Any]], bq: BoundQuery) -> None:
        """Each parent's child result past ``child_batch``: its first batch, ``done: false``
        and a ``nextRecordsUrl`` that queryMore answers with the next (as Salesforce does)."""
        names = [rel.name for rel, _sub in bq.subqueries]
        for record in records:
            for name in names:
                result = record.get(name)
                if result and len(result["records"]) > self.child_batch:
                    record[name] = self._page(result["records"], self.child_batch)

    def _slice(
        self, cursor: str, records: list[dict[str, Any]], offset: int, batch: int
    ) -> dict[str, Any]:
        end = offset + batch
        page: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records)}
        if end < len(records):
            page["nextRecordsUrl"] = f"/services/data/v{self.api_version}/query/{cursor}-{end}"
        page["records"] = records[offset:end]
        return page

    def _join_parents(self, rows: list[Row], bq: BoundQuery) -> list[Rec]:
        recs = [Rec(row.fields) for row in rows]
        for rel_name, (lookup, _parent) in bq.lookups.items():
            wanted = [str(r.fields[lookup.name]) for r in recs if r.fields.get(lookup.name)]
            parents = self.org.store.get_many(wanted)
            for rec in recs:
                parent = parents.get(str(rec.fields.get(lookup.name)))
                live = parent is not None and not parent.is_deleted
                rec.parents[rel_name] = parent.fields if live and parent else None
        return recs

    def _join_children(self, recs: list[Rec], bq: BoundQuery, include_deleted: bool) -> None:
        if not recs:
            return
        parent_ids = [str(rec.fields["Id"]) for rec in recs]
        for rel, sub in bq.subqueries:
            rows = self.org.store.scan(
                rel.child, include_deleted=include_deleted, parent_ids=parent_ids
            )
            children = self._join_parents(rows, sub)
            by_parent: defaultdict[str, list[Rec]] = defaultdict(list)
            for child in children:
                by_parent[str(child.fields.get(rel.field))].append(child)
            for rec in recs:
                rec.children[rel.name] = by_parent.get(str(rec.fields["Id"]), [])
