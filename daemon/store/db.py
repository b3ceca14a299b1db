"""The database: engine set-up and schema migrations (Alembic), for SQLite and PostgreSQL.

SQLite is the single-instance default: :func:`hold_single_instance` takes an exclusive
``fcntl`` lock on a file next to the database for the life of the process, so a second
``orderflow run`` on the same file is refused at once (the kernel drops the lock when the
holder dies, even by SIGKILL: no stale lock to clean up). PostgreSQL takes several
instances; they coordinate through the database itself (daemon.cluster.instances,
daemon.cycle.claims).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from orchestration.errors import ConfigError, FatalError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: Connections per instance on PostgreSQL: the loop, a dispatch thread per call in flight
#: (ORDERFLOW_DISPATCH_CONCURRENCY per system) and the HTTP listener's callbacks.
PG_POOL_SIZE, PG_MAX_OVERFLOW = 10, 30


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so readers never block it."""
    try:
        if url.startswith("postgresql"):
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW
            )
        elif url.startswith("sqlite"):
            engine = create_engine(url, pool_pre_ping=True, connect_args={"factory": _Sqlite})
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"setting ORDERFLOW_DATABASE_URL: cannot use {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_existing(url: str) -> Engine:
    """An engine on a database that is already there, brought to the newest migration.

    For the commands that read the store (``status``, ``task``, ``jeopardy``): on a SQLite
    file that does not exist they raise ConfigError rather than create an empty one and
    report an empty world.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise ConfigError(f"no database at {path.absolute()} (set ORDERFLOW_DATABASE_URL)")
    engine = make_engine(url)
    upgrade(engine)
    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # make_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def libpq_url(engine: Engine) -> str:
    """The engine's URL as libpq takes it, for the dedicated psycopg connections of the
    leader lock and LISTEN (daemon.cluster.instances, daemon.cluster.wakeup). Holds the
    password: never log."""
    url: URL = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


#: Seconds a SQLite writer waits for the write lock (busy_timeout, and the process's own lock).
BUSY_TIMEOUT = 30


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _Sqlite(sqlite3.Connection):
    """A SQLite connection that gives back its process's write lock (see
    :func:`serialise_transactions`) when its transaction ends, however it ends."""

    _held: threading.Lock | None = None

    def hold(self, lock: threading.Lock) -> None:
        self._held = lock

    def give_back(self) -> None:
        lock, self._held = self._held, None
        if lock is not None:
            lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_back()


#: The write lock of each serialised SQLite engine, shared by the process's threads.
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def serialise_transactions(engine: Engine) -> None:
    """On SQLite, make every transaction of ``engine`` begin IMMEDIATE: it takes the write
    lock at its start, so its reads see no row another thread is about to change.

    pysqlite begins a transaction only at the first write, so two threads of one process
    (the dispatch pipeline's lanes and recorder, the loop, the listener) could each read a
    task, then write it from what they read, one undoing the other. The threads queue on
    a lock of the process first: SQLite's own busy wait sleeps up to 100 ms between tries,
    and with four threads writing, a third of the recorder's time went to those sleeps;
    the lock hands over the moment a transaction ends. Another process (a CLI command)
    still waits by ``busy_timeout``. Nothing to do on PostgreSQL, whose writers lock the
    rows they change.
    """
    if engine.dialect.name != "sqlite" or engine in _WRITE_LOCKS:
        return
    _WRITE_LOCKS[engine] = threading.Lock()
    event.listen(engine, "begin", _begin_immediate)  # on every connection, old or new


def _begin_immediate(connection: Connection) -> None:
    raw = connection.connection.dbapi_connection
    # pysqlite's own transaction handling off: the BEGIN is ours (SQLAlchemy's recipe).
    raw.isolation_level = None  # type: ignore[union-attr]
    if isinstance(raw, _Sqlite):
        lock = _WRITE_LOCKS[connection.engine]
        if not lock.acquire(timeout=BUSY_TIMEOUT):
            raise OperationalError(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError(f"database is locked: no turn in {BUSY_TIMEOUT} s"),
            )
        raw.hold(lock)  # given back by the transaction's end
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(raw, _Sqlite):
            raw.give_back()
        raise


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as connection:
            raw = None if is_postgres(engine) else connection.connection.dbapi_connection
            if raw is not None:
                # pysqlite runs DDL outside any transaction: a kill in the middle of a
                # migration (systemd stopping a start) left a half-built table. Here the
                # whole upgrade is one transaction, DDL included: all or nothing.
                raw.isolation_level = None
                raw.execute("BEGIN IMMEDIATE")
            try:
                with connection.begin():
                    if raw is None:
                        # Instances started together: one migrates, the others wait for it.
                        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7311995)")
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            finally:
                if raw is not None:
                    raw.isolation_level = ""
    except OperationalError as exc:
        raise ConfigError(f"database {engine.url!r}: {exc.orig}") from exc


class InstanceLock:
    """The exclusive lock one instance holds on a SQLite database (see the module doc)."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def hold_single_instance(url: str) -> InstanceLock | None:
    """On a SQLite file, lock it for this process or raise FatalError naming the holder.

    None for PostgreSQL (several instances are welcome) and in-memory databases.
    """
    database = sqlite_path(url)
    if database is None:
        return None
    path = database.with_name(database.name + ".instance.lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FatalError(
            f"database {database} is in use by another orderflow instance ({holder}); "
            "SQLite runs one instance: use PostgreSQL (ORDERFLOW_DATABASE_URL="
            "postgresql+psycopg://...) to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return InstanceLock(path, handle)
