"""Instances: who is alive (heartbeat), whose leases are taken back (reaper), who leads.

Each running instance has a row in ``instances`` and beats it every
``ORDERFLOW_HEARTBEAT_INTERVAL`` seconds from a thread of its own, renewing the leases on
the dispatches it claimed (daemon.cycle.claims) in the same transaction. The beat is a sign that
the *process* lives, not that a call is quick: a downstream call that takes minutes keeps
its lease as long as its instance beats.

The reaper runs in every instance's beat. It takes back a lease only when the lease has
expired *and* its holder's heartbeat has stopped for ``ORDERFLOW_INSTANCE_DEAD_AFTER``
seconds (or its row is gone); the task stays In Progress with its intent recorded and no
owner, and the next claim anywhere resends it under the same idempotency key.

One instance at a time leads: it polls Salesforce, plans, advances plans and writes back.
On PostgreSQL leadership is a session-level advisory lock (``pg_try_advisory_lock``) held
on a dedicated connection for the instance's life. A transaction-level lock per cycle would
not do: the leader's phases span many transactions (a poll commits page by page), and
holding one transaction open across Salesforce calls is what the design forbids. When the
leader dies its session ends and PostgreSQL frees the lock; the next beat of another
instance takes it (within a heartbeat interval) and resumes from the persisted watermarks.
The leader checks its connection at every beat and steps down when it is gone (the server
has then freed the lock, or will once it notices). On SQLite, a single instance
(daemon.store.db.hold_single_instance), the instance always leads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, Engine, Select, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from daemon.store import db
from daemon.store.models import Instance, Task
from orchestration.errors import ConfigError

log = logging.getLogger(__name__)

#: The advisory lock key of the leader (any constant; one per database).
LEADER_KEY = 0x0F10_F10E
LEADER, WORKER = "leader", "worker"


class LeaderLock:
    """``pg_try_advisory_lock`` on a connection of its own, kept for the instance's life."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.held = False

    def hold(self) -> bool:
        """True while this instance holds the lock: checked, or taken if free."""
        try:
            if self._conn is None:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=3,
                )
            if self.held:
                self._conn.execute("SELECT 1")  # the session (and so the lock) still there
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_KEY,))
                self.held = bool(row.fetchone()[0])  # type: ignore[index]
        except psycopg.Error as exc:
            if self.held:
                log.warning("leader lock's connection lost, stepping down: %s", exc)
            self.release()
        return self.held

    def release(self) -> None:
        self.held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()  # the session ends: PostgreSQL frees its advisory locks


@dataclass
class Membership:
    """This instance among the others: its id, its heartbeat, its leases and its role.

    ``shared`` is True on PostgreSQL (several instances may run); otherwise the instance is
    alone and always leads. Built unstarted (tests run cycles without the beat thread).
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    shared: bool = False
    heartbeat_interval: float = 2.0
    dead_after: float = 15.0
    sessions: sessionmaker[Session] | None = None
    leader_lock: LeaderLock | None = None
    #: Called when this instance becomes the leader (the loop wakes to poll at once).
    on_lead: Callable[[], None] | None = None
    _leading: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def lease(self) -> timedelta:
        """How long a claimed lease lasts without a beat of its holder."""
        return timedelta(seconds=self.dead_after)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def role(self) -> str:
        return LEADER if self._leading else WORKER

    def start(self, now: datetime, clock: Callable[[], datetime]) -> None:
        """Register, take back what dead instances held, try to lead, then beat in a thread."""
        self.beat(now)
        if not self.shared and self.sessions is not None:
            # Alone on this database (SQLite's lock says so): every other row is a past run.
            released = reap(self.sessions, self.id, now, alone=True)
            if released:
                log.info("took back %d dispatches of a previous run", released)
        self._thread = threading.Thread(
            target=self._run, args=(clock,), name="instance-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self, now: datetime) -> None:
        """Stop beating, give up the lead, and leave: what this instance still holds is free
        for the others at once (its leases expire now, its row is gone)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.leader_lock is not None:
            self.leader_lock.release()
        if self.sessions is None:
            return
        try:
            with self.sessions.begin() as session:
                session.execute(
                    update(Task).where(Task.lease_owner == self.id).values(lease_expires_at=now)
                )
                session.execute(delete(Instance).where(Instance.id == self.id))
        except SQLAlchemyError as exc:
            log.warning("could not sign off instance %s: %s", self.id, exc)

    def beat(self, now: datetime) -> None:
        """One heartbeat: lead or not, renew this row and the leases, reap the dead."""
        if self.leader_lock is not None:
            was = self._leading
            self._leading = self.leader_lock.hold()
            if self._leading and not was:
                log.info("this instance leads now: polling Salesforce and writing back")
                if self.on_lead is not None:
                    self.on_lead()
            elif was and not self._leading:
                log.warning("this instance no longer leads")
        if self.sessions is None:
            return
        with self.sessions.begin() as session:  # its own transaction: never waits on others
            row = session.get(Instance, self.id)
            if row is None:
                row = Instance(id=self.id, host=self.host[:255], pid=self.pid, started_at=now)
                session.add(row)
            row.heartbeat_at, row.role = now, self.role
        with self.sessions.begin() as session:
            # Rows locked now (a result being recorded, a sweep) are renewed next beat:
            # waiting for them could join a deadlock, and only a dead holder loses a lease.
            mine = _unlocked(Task.lease_owner == self.id)
            session.execute(
                update(Task).where(Task.id.in_(mine)).values(lease_expires_at=now + self.lease)
            )
        if self.shared:
            reap(self.sessions, self.id, now, dead_after=self.lease)

    def _run(self, clock: Callable[[], datetime]) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            try:
                self.beat(clock())
            except SQLAlchemyError as exc:
                # Alone on SQLite, the row only tells `orderflow status` who runs, and a big
                # commit (a first poll of thousands of orders) holding the file is no news.
                level = logging.WARNING if self.shared else logging.DEBUG
                log.log(level, "heartbeat failed, will try again: %s", exc)


def reap(
    sessions: sessionmaker[Session],
    me: str,
    now: datetime,
    *,
    dead_after: timedelta = timedelta(0),
    alone: bool = False,
) -> int:
    """Take back the leases of dead instances; the number of dispatches to resend.

    Dead: silent for ``dead_after`` or without a row (``alone``: every instance but ``me``).
    A lease is taken back only once it has expired as well, so a holder that still beats
    (its renewals move the expiry on) keeps it however slow its call.
    """
    with sessions.begin() as session:
        if alone:
            alive = select(Instance.id).where(Instance.id == me)
        else:
            alive = select(Instance.id).where(Instance.heartbeat_at >= now - dead_after)
        owned_by_dead = Task.lease_owner.is_not(None) & Task.lease_owner.not_in(alive)
        if not alone:
            owned_by_dead &= Task.lease_expires_at.is_(None) | (Task.lease_expires_at < now)
        rows = session.execute(
            select(Task.id, Task.lease_owner, Task.dispatch_started_at).where(
                Task.id.in_(_unlocked(owned_by_dead))
            )
        ).all()
        if rows:
            session.execute(
                update(Task)
                .where(Task.id.in_([r.id for r in rows]))
                .values(lease_owner=None, lease_expires_at=None)
            )
        # Rows of the dead go; a live instance that was only slow writes its row again.
        session.execute(delete(Instance).where(Instance.id.not_in(alive)))
    resend = [r for r in rows if r.dispatch_started_at is not None]
    for owner in sorted({str(r.lease_owner) for r in resend}):
        ids = [r.id for r in resend if r.lease_owner == owner]
        log.warning(
            "instance %s stopped beating: %d of its dispatches will be resent "
            "with the same idempotency keys",
            owner,
            len(ids),
            extra={"instance": owner, "task_ids": ids[:50]},
        )
    return len(resend)


def _unlocked(condition: ColumnElement[bool]) -> Select[Any]:
    """Ids of the tasks meeting ``condition`` that no transaction has locked (PostgreSQL;
    on SQLite, a single writer, simply those tasks)."""
    return select(Task.id).where(condition).with_for_update(skip_locked=True)


def membership(engine: Engine, heartbeat_interval: float, dead_after: float) -> Membership:
    """This instance's membership on ``engine``'s database (not started)."""
    if dead_after < 2 * heartbeat_interval:
        raise ConfigError(
            "setting ORDERFLOW_INSTANCE_DEAD_AFTER: must be at least twice "
            "ORDERFLOW_HEARTBEAT_INTERVAL, or a live instance may pass for dead"
        )
    shared = db.is_postgres(engine)
    return Membership(
        shared=shared,
        heartbeat_interval=heartbeat_interval,
        dead_after=dead_after,
        # A sessionmaker of its own: the loop's commit hooks (watchdog, NOTIFY) stay the
        # loop's, so this thread never makes a hung loop look alive.
        sessions=db.sessions(engine),
        leader_lock=LeaderLock(db.libpq_url(engine)) if shared else None,
        _leading=not shared,
    )
