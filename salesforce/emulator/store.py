"""SQLite storage of records: one table of (object, id, json fields, modstamp, deleted).

Committed changes of the objects a listener watches (Change Data Capture) are handed to it
after the outermost transaction commits, once per record: a change rolled back, with its
savepoint or the whole transaction, is never reported.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import count
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    object TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    modstamp TEXT NOT NULL,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT
);
CREATE INDEX IF NOT EXISTS records_modstamp ON records (object, modstamp);
CREATE INDEX IF NOT EXISTS records_parent ON records (object, parent_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_CHUNK = 500
_COLUMNS = "object, id, fields, modstamp, is_deleted"

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
logger = logging.getLogger(__name__)


@dataclass
class Row:
    """One stored record; ``fields`` includes Id, SystemModstamp and IsDeleted."""

    sobject: str
    id: str
    fields: dict[str, Any]
    parent_id: str | None = None

    @property
    def modstamp(self) -> str:
        """The record's SystemModstamp (canonical text, sorts by instant)."""
        return str(self.fields["SystemModstamp"])

    @property
    def is_deleted(self) -> bool:
        """Whether the record is in the recycle bin."""
        return bool(self.fields.get("IsDeleted"))


@dataclass(frozen=True)
class Change:
    """One record's committed change: its fields ``before`` (None when created) and ``after``
    the transaction, and the user who wrote it (the one the transaction was opened for)."""

    sobject: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    user: str | None


Listener = Callable[[list[Change]], None]


def _row(values: Sequence[Any]) -> Row:
    return Row(values[0], values[1], json.loads(values[2]))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Store:
    """Thread-safe record store; one re-entrant lock serialises all SQLite access."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._indexed: set[str] = set()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.executescript(_SCHEMA)
        self._savepoints = count()
        self._depth = 0
        self._user: str | None = None
        self._journal: list[Change] = []
        self._watched: frozenset[str] = frozenset()
        self._listener: Listener | None = None

    def watch(self, objects: Collection[str], listener: Listener | None) -> None:
        """Hand committed changes of ``objects`` to ``listener`` (None: stop)."""
        with self._lock:
            self._watched = frozenset(objects) if listener is not None else frozenset()
            self._listener = listener

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self, user: str | None = None) -> Iterator[None]:
        """All writes inside commit together or not at all (nests with savepoints);
        ``user``: who writes (the changes handed to the listener say so)."""
        with self._lock:
            name = f"sp{next(self._savepoints)}"
            mark, outer_user = len(self._journal), self._user
            self._user = user or outer_user
            self._depth += 1
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                del self._journal[mark:]
                raise
            finally:
                self._depth -= 1
                self._user = outer_user
            self._conn.execute(f"RELEASE {name}")
            if self._depth == 0 and self._journal:
                journal, self._journal = self._journal, []
                self._report(journal)

    def _report(self, journal: list[Change]) -> None:
        """Fold a committed transaction's journal to one change per record and report it
        (still under the lock, so listeners see transactions in commit order)."""
        folded: dict[str, Change] = {}
        for change in journal:
            first = folded.get(change.id)
            folded[change.id] = change if first is None else replace(change, before=first.before)
        if self._listener is None:
            return
        try:
            self._listener(list(folded.values()))
        except Exception:  # the write is committed: a listener's failure must not undo it
            logger.exception("change listener failed on %d committed changes", len(folded))

    def _journal_rows(self, rows: Sequence[Row], *, created: bool) -> None:
        watched = [r for r in rows if r.sobject in self._watched]
        if not watched:
            return
        before = {} if created else self.get_many([r.id for r in watched])
        for row in watched:
            old = before.get(row.id)
            fields = old.fields if old else None
            self._journal.append(Change(row.sobject, row.id, fields, dict(row.fields), self._user))

    def allocate(self, name: str, n: int, start: int) -> int:
        """Reserve ``n`` numbers of counter ``name``; returns the first."""
        with self.transaction():
            found = self._conn.execute(
                "SELECT value FROM counters WHERE name = ?", (name,)
            ).fetchone()
            first = int(found[0]) if found else start
            self._conn.execute(
                "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, first + n)
            )
            return first

    def insert(self, rows: Iterable[Row]) -> None:
        """Add new records."""
        rows = list(rows)
        params = [
            (r.sobject, r.id, json.dumps(r.fields), r.modstamp, int(r.is_deleted), r.parent_id)
            for r in rows
        ]
        with self.transaction():
            self._journal_rows(rows, created=True)
            self._conn.executemany(
                "INSERT INTO records (object, id, fields, modstamp, is_deleted, parent_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                params,
            )

    def save(self, rows: Iterable[Row]) -> None:
        """Overwrite existing records' fields."""
        rows = list(rows)
        params = [(json.dumps(r.fields), r.modstamp, int(r.is_deleted), r.id) for r in rows]
        with self.transaction():
            self._journal_rows(rows, created=False)
            self._conn.executemany(
                "UPDATE records SET fields = ?, modstamp = ?, is_deleted = ? WHERE id = ?",
                params,
            )

    def get(self, record_id: str) -> Row | None:
        """One record by its 18-character Id, deleted or not."""
        return self.get_many([record_id]).get(record_id)

    def get_many(self, ids: Sequence[str]) -> dict[str, Row]:
        """Records by 18-character Id (missing ones are absent)."""
        found: dict[str, Row] = {}
        unique = list(dict.fromkeys(ids))
        with self._lock:
            for chunk in _chunks(unique):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_COLUMNS} FROM records WHERE id IN ({marks})"
                for values in self._conn.execute(sql, chunk):
                    row = _row(values)
                    found[row.id] = row
        return found

    def scan(
        self,
        sobject: str,
        *,
        include_deleted: bool = False,
        modstamp: Sequence[tuple[str, str]] = (),
        ids: Sequence[str] | None = None,
        parent_ids: Sequence[str] | None = None,
    ) -> list[Row]:
        """Records of one object in insertion order, optionally narrowed by the indexes.

        ``modstamp`` holds ``(op, canonical datetime)`` bounds with op one of < <= > >=.
        """
        where = ["object = ?"]
        params: list[Any] = [sobject]
        if not include_deleted:
            where.append("is_deleted = 0")
        for op, value in modstamp:
            assert op in ("<", "<=", ">", ">=")
            where.append(f"modstamp {op} ?")
            params.append(value)
        keys, column = (ids, "id") if ids is not None else (parent_ids, "parent_id")
        ranked: list[tuple[int, Row]] = []
        with self._lock:
            if keys is None:
                sql = f"SELECT {_COLUMNS} FROM records WHERE {' AND '.join(where)} ORDER BY seq"
                return [_row(v) for v in self._conn.execute(sql, params)]
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = ",".join("?" * len(chunk))
                clause = " AND ".join([*where, f"{column} IN ({marks})"])
                sql = f"SELECT seq, {_COLUMNS} FROM records WHERE {clause}"
                ranked.extend(
                    (v[0], _row(v[1:])) for v in self._conn.execute(sql, [*params, *chunk])
                )
        ranked.sort(key=lambda pair: pair[0])
        return [row for _, row in ranked]

    def find(self, sobject: str, field: str, value: Any) -> list[Row]:
        """Non-deleted records whose ``field`` equals ``value``.

        Upserts by external id call this once per record: the field's JSON path is written
        into the SQL (a schema field name, checked) so that an expression index serves it,
        made the first time a field is looked up; a scan per record made a wave of upserts
        quadratic in the records already there.
        """
        if not _FIELD_NAME.match(field):
            raise ValueError(f"not a field name: {field!r}")
        path = f"json_extract(fields, '$.\"{field}\"')"
        sql = (
            f"SELECT {_COLUMNS} FROM records WHERE object = ? AND is_deleted = 0 "
            f"AND {path} = ? ORDER BY seq"
        )
        with self._lock:
            if field not in self._indexed:
                self._conn.execute(
                    f"CREATE INDEX IF NOT EXISTS records_by_{field} ON records (object, {path})"
                )
                self._indexed.add(field)
            return [_row(v) for v in self._conn.execute(sql, (sobject, value))]

    def deleted_between(self, sobject: str, start: str, end: str) -> list[Row]:
        """Records deleted (last stamped) in ``[start, end]``."""
        sql = (
            f"SELECT {_COLUMNS} FROM records WHERE object = ? AND is_deleted = 1 "
            "AND modstamp >= ? AND modstamp <= ? ORDER BY modstamp"
        )
        with self._lock:
            return [_row(v) for v in self._conn.execute(sql, (sobject, start, end))]
