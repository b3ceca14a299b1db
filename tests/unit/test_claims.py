"""Lease claims and the reaper on a real SQLite file (one instance: no row locks needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.cluster import instances
from daemon.cycle import claims
from daemon.store import db
from daemon.store.models import Instance, Plan, Task, TaskEvent
from orchestration.errors import ConfigError
from orchestration.states import StepState

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'orderflow.db'}")
    db.upgrade(engine)
    made = db.sessions(engine)
    with made.begin() as session:
        plan = Plan(
            order_id="801000000000001AAA",
            order_number="1",
            rules_version="1",
            state="In Progress",
            status="In Progress",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(plan)
        session.flush()
        for n, (state, system) in enumerate(
            [("Ready", "erp"), ("Ready", None), ("Pending", "erp"), ("Ready", "billing")]
        ):
            session.add(
                Task(
                    plan_id=plan.id,
                    revision=1,
                    step_id=f"s{n}",
                    rule="r",
                    key=f"k{n}",
                    kind="callout" if system else "auto",
                    system=system,
                    title="t",
                    depends_on=[],
                    payload={},
                    state=state,
                    idempotency_key=f"key-{n}",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    return made


def test_a_claim_writes_intent_and_lease_on_ready_callouts_only(sessions):
    with sessions.begin() as session:
        claimed = claims.claim(session, "me", NOW, LEASE, 10, shared=False)
        assert [t.step_id for t in claimed] == ["s0", "s3"]
    with sessions() as session:
        tasks = {t.step_id: t for t in session.scalars(select(Task))}
        events = session.scalars(select(TaskEvent.to_state)).all()
    for step in ("s0", "s3"):
        task = tasks[step]
        assert task.state == StepState.IN_PROGRESS
        assert (task.lease_owner, task.lease_expires_at) == ("me", NOW + LEASE)
        assert task.dispatch_started_at == NOW
        assert task.attempts == 1
    assert tasks["s1"].lease_owner is None and tasks["s2"].state == "Pending"
    assert events == ["In Progress", "In Progress"], "each move audited"


def test_a_claim_takes_no_more_than_its_batch(sessions):
    with sessions.begin() as session:
        assert len(claims.claim(session, "me", NOW, LEASE, 1, shared=True)) == 1
    with sessions.begin() as session:
        claimed = claims.claim(session, "you", NOW, LEASE, 1, shared=True)
        assert [t.step_id for t in claimed] == ["s3"]


def test_an_interrupted_dispatch_is_resent_by_its_holder_and_left_to_it_by_others(sessions):
    with sessions.begin() as session:
        claims.claim(session, "dead", NOW, LEASE, 1, shared=True)
    later = NOW + timedelta(minutes=1)
    with sessions.begin() as session:  # several instances: another one's lease is not mine
        assert claims.claim(session, "other", later, LEASE, 10, shared=True)[0].step_id == "s3"
    with sessions.begin() as session:
        assert claims.claim(session, "third", later, LEASE, 10, shared=True) == []
        assert [
            t.step_id for t in claims.claim(session, "dead", later, LEASE, 10, shared=True)
        ] == ["s0"], "its own holder resends it (its result was never committed)"


def test_the_reaper_spares_a_slow_instance_and_frees_a_silent_ones_dispatches(sessions):
    with sessions.begin() as session:
        claims.claim(session, "slow", NOW, LEASE, 1, shared=True)
        claims.claim(session, "silent", NOW, LEASE, 1, shared=True)
        for name in ("slow", "silent"):
            session.add(Instance(id=name, host="h", pid=1, started_at=NOW, heartbeat_at=NOW,
                                 role="worker"))  # fmt: skip
    later = NOW + timedelta(minutes=5)
    with sessions.begin() as session:
        slow = session.get(Instance, "slow")
        assert slow is not None
        slow.heartbeat_at = later  # its call is slow, its process beats
    assert instances.reap(sessions, "slow", later, dead_after=LEASE) == 1
    with sessions() as session:
        owners = {t.step_id: t.lease_owner for t in session.scalars(select(Task))}
        assert (owners["s0"], owners["s3"]) == ("slow", None)
        assert session.get(Instance, "silent") is None
    with sessions.begin() as session:
        resent = claims.claim(session, "third", later, LEASE, 10, shared=True)
        assert [(t.step_id, t.attempts, t.idempotency_key) for t in resent] == [
            ("s3", 2, "key-3")
        ], "the same task, the same idempotency key, a second attempt"


def test_alone_on_sqlite_every_other_instances_lease_is_a_past_run(sessions):
    with sessions.begin() as session:
        claims.claim(session, "previous-run", NOW, LEASE, 10, shared=False)
    assert instances.reap(sessions, "me", NOW, alone=True) == 2


def test_a_heartbeat_renews_the_leases_of_its_instance(sessions):
    member = instances.Membership(id="me", sessions=sessions, dead_after=15)
    with sessions.begin() as session:
        claims.claim(session, "me", NOW, LEASE, 10, shared=False)
    later = NOW + timedelta(seconds=10)
    member.beat(later)
    with sessions() as session:
        row = session.get(Instance, "me")
        assert row is not None and (row.heartbeat_at, row.role) == (later, "leader")
        expiries = set(
            session.scalars(select(Task.lease_expires_at).where(Task.lease_owner == "me"))
        )
        assert expiries == {later + LEASE}


def test_dead_after_must_leave_room_for_missed_heartbeats(tmp_path: Path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="ORDERFLOW_INSTANCE_DEAD_AFTER"):
        instances.membership(engine, heartbeat_interval=5, dead_after=6)


def test_a_dispatch_resent_more_than_max_resends_times_without_an_answer_falls_out(sessions):
    with sessions.begin() as session:  # sent, then never answered: each restart resends it
        claims.claim(session, "me", NOW, LEASE, 1, shared=False, max_resends=2)
    for restart in range(1, 3):
        with sessions.begin() as session:
            resent = claims.claim(session, "me", NOW, LEASE, 1, shared=False, max_resends=2)
            assert [(t.step_id, t.resends) for t in resent] == [("s0", restart)]
    with sessions.begin() as session:  # a third resend would pass the limit: it falls out
        claimed = claims.claim(session, "me", NOW, LEASE, 1, shared=False, max_resends=2)
        assert [t.step_id for t in claimed] == []
    with sessions() as session:
        task = session.scalars(select(Task).where(Task.step_id == "s0")).one()
        last = session.scalars(select(TaskEvent).order_by(TaskEvent.id.desc())).first()
    assert (task.state, task.message) == (StepState.FATALLY_FAILED, "no answer after 2 resends")
    assert (task.dispatch_started_at, task.lease_owner) == (None, None)
    assert last is not None and last.reason == "no answer after 2 resends"


def test_a_resend_carries_the_correlation_token_of_the_first_send(sessions):
    with sessions.begin() as session:
        (first,) = claims.claim(session, "me", NOW, LEASE, 1, shared=False)
    with sessions.begin() as session:
        (again,) = claims.claim(session, "me", NOW, LEASE, 1, shared=False)
    with sessions() as session:
        stored = session.get(Task, first.id)
        assert stored is not None
    assert (again.id, again.attempts) == (first.id, 2)
    assert first.correlation_token and again.correlation_token == first.correlation_token
    assert stored.correlation_token == first.correlation_token


def test_a_lanes_claim_reads_its_batch_in_id_order_from_an_index_not_every_ready_task(
    sessions: sessionmaker[Session],
) -> None:
    # At the start of a 10,000-order burst 40,000 tasks are Ready: a read that sorts them
    # all, for every claim of 16, was what made 10,000 orders slower per callout than 1,000.
    engine = sessions.kw["bind"]
    reads: list[tuple[str, object]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "FROM tasks" in statement:
            reads.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with sessions.begin() as session:
            claimed = claims.claim(session, "me", NOW, LEASE, 1, shared=False, system="erp")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [c.step_id for c in claimed] == ["s0"]
    assert reads, "the claim read the tasks"
    with engine.connect() as conn:
        for statement, parameters in reads:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            details = " ".join(str(row[-1]) for row in plan)
            assert "ix_tasks_system_state" in details, details
            assert "TEMP B-TREE" not in details, details  # no sort of everything read
