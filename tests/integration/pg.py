"""A throw-away PostgreSQL database per test, on the server ORDERFLOW_TEST_PG_URL names.

Each test creates ``orderflow_test_<random>`` and drops it after, so runs never collide.
Without the variable the tests that use it skip, saying why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

#: Read at import: the autouse fixture clears ORDERFLOW_* variables before each test.
PG_URL = os.environ.get("ORDERFLOW_TEST_PG_URL")

needs_postgres = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not PG_URL,
        reason="ORDERFLOW_TEST_PG_URL is not set (e.g. postgresql+psycopg://postgres@"
        "127.0.0.1:5432/postgres): no PostgreSQL server to test against",
    ),
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    assert PG_URL is not None
    name = f"orderflow_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
