"""Migrations on SQLite are one transaction, DDL included: a start killed mid-way leaves
the file as it was, and the next start migrates it whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from unittest import mock

import pytest
from alembic.operations import Operations
from alembic.script import ScriptDirectory

from daemon.store import db


def test_a_migration_that_stops_half_way_leaves_nothing_half_built(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    real = Operations.execute

    def stop_in_0010(self: Operations, sql: object, *args: object, **kwargs: object) -> object:
        if "UPDATE plans SET wake_at" in str(sql):  # after 0010 rebuilt the plans table
            raise RuntimeError("killed mid-migration")
        return real(self, sql, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(Operations, "execute", stop_in_0010), pytest.raises(RuntimeError):
        db.upgrade(engine)
    with sqlite3.connect(tmp_path / "store.db") as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == [], "rolled back whole, the earlier migrations' tables too"

    db.upgrade(engine)
    with sqlite3.connect(tmp_path / "store.db") as con:
        head = ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        columns = {r[1] for r in con.execute("PRAGMA table_info(plans)")}
    assert {"rules_digest", "wake_at", "change_seq"} <= columns
    engine.dispose()
