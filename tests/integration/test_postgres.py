"""The same code on PostgreSQL: migrations, lease claims, reaper, leader lock, NOTIFY."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from daemon import store as store_module
from daemon.cluster import instances, wakeup
from daemon.cycle import claims
from daemon.service import loop
from daemon.store import db
from daemon.store.models import Base, Instance, Plan, Task
from orchestration.states import StepState
from tests.integration.pg import needs_postgres
from tests.integration.world import World, run_until_settled

pytestmark = needs_postgres

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_the_migrations_build_the_models_schema_on_postgresql_and_come_down_again(pg_url):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    db.upgrade(engine)  # idempotent
    assert schema_diff(engine) == []
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        left = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        assert {r[0] for r in left} <= {"alembic_version"}
    db.upgrade(engine)
    assert schema_diff(engine) == []
    engine.dispose()


def ready_tasks(sessions: sessionmaker[Session], count: int) -> None:
    """One plan with ``count`` Ready callouts."""
    with sessions.begin() as session:
        plan = Plan(
            order_id="801000000000001AAA",
            order_number="00000001",
            rules_version="1",
            state="In Progress",
            status="In Progress",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(plan)
        session.flush()
        for n in range(count):
            session.add(
                Task(
                    plan_id=plan.id,
                    revision=1,
                    step_id=f"s{n}",
                    rule="r",
                    key=f"k{n}",
                    kind="callout",
                    system="erp",
                    action="orders",
                    title="t",
                    depends_on=[],
                    payload={},
                    state=StepState.READY.value,
                    idempotency_key=f"key-{n}",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )


@pytest.fixture
def store(pg_url):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    yield db.sessions(engine)
    engine.dispose()


def test_two_instances_claiming_at_once_get_different_tasks_and_neither_waits(store):
    ready_tasks(store, 6)
    lease = timedelta(seconds=15)
    with store.begin() as first:
        mine = claims.claim(first, "a", NOW, lease, 4, shared=True)
        # "a" has not committed: its rows are locked, so "b" skips them instead of waiting.
        with store.begin() as second:
            theirs = claims.claim(second, "b", NOW, lease, 4, shared=True)
            assert len(theirs) == 2
        assert len(mine) == 4
    with store() as session:
        owners = dict(session.execute(select(Task.idempotency_key, Task.lease_owner)).all())
    assert sorted(owners.values()) == ["a"] * 4 + ["b"] * 2
    with store.begin() as session:
        assert claims.claim(session, "c", NOW, lease, 10, shared=True) == [], "all leased"


def test_a_claim_never_waits_for_a_plan_another_transaction_holds(store):
    """A recorder holds plans (then locks their tasks): a claim that waited for a plan could
    close a circle with it. The claim locks tasks only; the one that would fall out (its
    plan held) is left to a later claim."""
    ready_tasks(store, 3)
    with store.begin() as session:  # s0: interrupted, resent twice already
        session.execute(
            update(Task)
            .where(Task.step_id == "s0")
            .values(state="In Progress", dispatch_started_at=NOW, resends=2)
        )
    lease = timedelta(seconds=15)
    with store.begin() as recorder:
        recorder.execute(select(Plan).with_for_update()).all()
        with store.begin() as session:
            session.execute(text("SET LOCAL lock_timeout = '5s'"))  # a wait fails the test
            claimed = claims.claim(session, "a", NOW, lease, 10, shared=True, max_resends=2)
            assert [t.step_id for t in claimed] == ["s1", "s2"]
    with store.begin() as session:  # the plan free again: s0 falls out now
        assert claims.claim(session, "b", NOW, lease, 10, shared=True, max_resends=2) == []
    with store() as session:
        s0 = session.scalars(select(Task).where(Task.step_id == "s0")).one()
        assert (s0.state, s0.lease_owner) == ("Fatally Failed", None)


def test_two_instances_advancing_at_once_take_different_plans_and_neither_waits(store):
    due = [(str(n), NOW - timedelta(seconds=n)) for n in range(5)]
    later = ("later", NOW + timedelta(minutes=1))  # not due yet: neither takes it
    with store.begin() as session:
        for number, wake_at in [*due, later]:
            session.add(
                Plan(
                    order_id=f"801{number:0>15}",
                    order_number=number,
                    rules_version="v",
                    state="In Progress",
                    status="In Progress",
                    created_at=NOW,
                    updated_at=NOW,
                    wake_at=wake_at,
                )
            )
    with store.begin() as first:
        mine = store_module.plans_to_wake(first, NOW, 3, shared=True)
        # "first" has not committed: its plans are locked, so the second skips them.
        with store.begin() as second:
            theirs = store_module.plans_to_wake(second, NOW, 10, shared=True)
        assert [p.order_number for p in mine] == ["4", "3", "2"], "the longest due first"
        assert sorted(p.order_number for p in theirs) == ["0", "1"]


def beat(sessions, instance_id: str, at: datetime) -> None:
    with sessions.begin() as session:
        row = session.get(Instance, instance_id) or Instance(
            id=instance_id, host="h", pid=1, started_at=at, role="worker"
        )
        row.heartbeat_at = at
        session.add(row)


def test_the_reaper_takes_back_only_the_leases_of_an_instance_that_stopped_beating(store):
    ready_tasks(store, 4)
    lease = timedelta(seconds=15)
    with store.begin() as session:
        claims.claim(session, "slow", NOW, lease, 2, shared=True)
        claims.claim(session, "dead", NOW, lease, 2, shared=True)
    later = NOW + timedelta(minutes=10)  # both leases are old now
    beat(store, "slow", later)  # a slow call, but its instance beats
    beat(store, "dead", NOW)
    released = instances.reap(store, "slow", later, dead_after=timedelta(seconds=15))
    assert released == 2
    with store() as session:
        owners = [t.lease_owner for t in session.scalars(select(Task).order_by(Task.id))]
        assert owners == ["slow", "slow", None, None]
        assert session.get(Instance, "dead") is None
    with store.begin() as session:
        resent = claims.claim(session, "other", later, lease, 10, shared=True)
        assert [t.attempts for t in resent] == [2, 2], "the same tasks, sent again"
        assert {t.idempotency_key for t in resent} == {"key-2", "key-3"}


def test_one_leader_at_a_time_and_another_takes_over_when_its_session_ends(pg_url):
    engine = db.make_engine(pg_url)
    first, second = (instances.LeaderLock(db.libpq_url(engine)) for _ in range(2))
    try:
        assert first.hold() is True
        assert second.hold() is False
        assert first.hold() is True, "still held"
        with engine.connect() as conn:  # the leader's connection dies
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND objid = :key AND database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": instances.LEADER_KEY},
            )
        deadline = time.monotonic() + 10  # the backend ends a moment after the signal
        while not second.hold():
            assert time.monotonic() < deadline, "the server never freed the lock"
            time.sleep(0.05)
        assert first.hold() is False, "the old leader sees its connection gone and steps down"
    finally:
        first.release()
        second.release()
        engine.dispose()


def test_a_task_made_ready_wakes_a_listening_instance(store):
    ready_tasks(store, 1)
    wakeup.notify_on_commit(store)
    wake = wakeup.Wakeup(db.libpq_url(store.kw["bind"]))
    stop = threading.Event()
    wake.start(stop)
    try:
        assert wake.listening.wait(10)
        wake.wait(0)  # the wake-up of connecting
        with store.begin() as session:
            session.execute(update(Plan).values(progress=1))  # not a task's move: silent
        assert wake.wait(0.3) is False
        with store.begin() as session:
            claims.claim(session, "a", NOW, timedelta(seconds=15), 1, shared=True)
        assert wake.wait(10) is True
        stop.set()
        assert wake.wait(10) is True, "stopping wakes the loop too"
    finally:
        wake.close()


def test_the_daemon_settles_orders_on_postgresql_as_on_sqlite(world: World, monkeypatch, pg_url):
    for codes in (["PLAT-PRO"], ["ADD-SSO"], ["PLAT-ENT", "ADD-AUDIT"]):
        world.add_order(*codes)
    ctx = world.context(monkeypatch, database_url=pg_url)
    assert ctx.membership.shared and not ctx.membership.leading
    with loop.running(ctx, threading.Event(), listen=False):
        assert ctx.membership.leading, "alone: it takes the lead at start"
        run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    assert sum(s.stats()["duplicates"] for s in world.stubs.values()) == 0
    with ctx.sessions() as session:
        assert session.scalars(select(Instance)).all() == [], "signed off"
        assert session.scalars(select(Task).where(Task.lease_owner.is_not(None))).all() == []
    ctx.sessions.kw["bind"].dispose()
