"""The dispatch pipeline (daemon.cycle.pipeline) against the stubs over real HTTP, on a real SQLite
file and a real PostgreSQL: the next step goes out as soon as the one before is recorded,
with no cycle between; each system gets at most its concurrency and nothing still out is
resent; a stop lets the calls out finish and records them; two instances share the work."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import daemon.cycle.poll
from daemon.context import Context
from daemon.cycle import dispatch
from daemon.cycle.advance import advance_plans
from daemon.cycle.pipeline import Pipeline
from daemon.cycle.run import run_cycle
from daemon.service import loop
from daemon.store import db
from daemon.store.models import Task
from tests.integration.downstream_world import swap_stub, tasks
from tests.integration.pg import needs_postgres
from tests.integration.world import World

RULES = Path(__file__).parents[2] / "bench" / "callout_rules.yaml"


def eventually(condition: Callable[[], bool], timeout: float = 60) -> bool:
    """True once ``condition`` holds; False if it still does not after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def pipelines() -> Iterator[Callable[..., Pipeline]]:
    started: list[Pipeline] = []

    def start(ctx: Context, idle: float) -> Pipeline:
        pipeline = Pipeline(ctx, idle=idle)
        pipeline.start()
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        pipeline.stop()


def settled(ctx: Context) -> bool:
    return all(t.state == "Completed" for t in tasks(ctx))


def test_the_next_step_goes_out_once_the_one_before_is_recorded_without_a_cycle(
    world: World, monkeypatch, pipelines
):
    world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch, rules_file=RULES)
    pipeline = pipelines(ctx, idle=3600)  # looks for work only when woken
    run_cycle(ctx, pipeline.pulse)  # polls, plans, wakes the lanes: ERP order and billing go
    provisioning = world.stubs["provisioning"]
    # No other cycle: provisioning waits for billing and the ERP order, so it is due only
    # when the recorder has committed both answers, advanced the plan and woken the lanes.
    assert eventually(lambda: provisioning.stats()["effects"] == 2)
    assert eventually(lambda: settled(ctx)), [(t.step_id, t.state) for t in tasks(ctx)]
    for stub in world.stubs.values():
        assert (stub.stats()["replays"], stub.stats()["duplicates"]) == (0, 0)


def test_each_system_gets_its_concurrency_at_most_and_nothing_out_is_resent(
    world: World, monkeypatch, pipelines
):
    billing = swap_stub(world, "billing", latency=0.3)
    for _ in range(4):
        world.add_order("PLAT-PRO", "ADD-SSO", "ADD-AUDIT")
    ctx = world.context(monkeypatch, rules_file=RULES, dispatch_concurrency=3)
    # The lanes look again every 50 ms while calls are out: on SQLite every dispatch In
    # Progress with its intent looks interrupted, so a lane taking its own would resend it.
    pipeline = pipelines(ctx, idle=0.05)
    run_cycle(ctx, pipeline.pulse)
    # A second round is claimed and queued behind the three out: a worker that finishes
    # takes the next call without waiting for a claim.
    claimed = lambda: sum(  # noqa: E731
        t.system == "billing" and t.state == "In Progress" for t in tasks(ctx)
    )
    assert eventually(lambda: claimed() == 6)
    assert eventually(lambda: world.stubs["provisioning"].stats()["effects"] == 12)
    stats = billing.stats()
    assert stats["peak_in_flight"] == 3, "three calls at once, never more"
    assert (stats["effects"], stats["replays"], stats["duplicates"]) == (12, 0, 0)
    assert eventually(lambda: settled(ctx))


def test_the_lanes_claim_nothing_while_the_leader_polls_and_plans(
    world: World, monkeypatch, pipelines
):
    world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch, rules_file=RULES)
    pipeline = pipelines(ctx, idle=3600)
    claimed_open: list[bool] = []
    claim = dispatch.claim_requests

    def watched_claim(*args: Any, **kwargs: Any) -> Any:
        claimed_open.append(pipeline.open.is_set())
        return claim(*args, **kwargs)

    polled_open: list[bool] = []
    poll = daemon.cycle.poll.poll_orders

    def watched_poll(ctx: Context) -> tuple[int, int]:
        polled_open.append(pipeline.open.is_set())
        found = poll(ctx)
        advance_plans(ctx)  # callouts due while the leader still ingests,
        pipeline.wake()  # and the lanes woken, as a recorded answer wakes them
        time.sleep(0.3)  # time for a lane that ignored the gate to claim
        return found

    monkeypatch.setattr("daemon.cycle.pipeline.claim_requests", watched_claim)
    monkeypatch.setattr("daemon.cycle.run.poll_orders", watched_poll)
    run_cycle(ctx, pipeline.pulse, pipeline.quiet)
    assert polled_open == [False], "the poll ran with the lanes held"
    assert eventually(lambda: settled(ctx)), "and they went on once it was done"
    assert claimed_open and all(claimed_open), "no claim while the leader ingested"


def test_a_stop_lets_the_calls_out_finish_and_records_their_answers(
    world: World, monkeypatch, pipelines
):
    erp = swap_stub(world, "erp", latency=1.0)
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch, rules_file=RULES)
    pipeline = pipelines(ctx, idle=3600)
    run_cycle(ctx, pipeline.pulse)
    assert eventually(lambda: erp.stats()["peak_in_flight"] == 1)  # the ERP call is out
    pipeline.stop()
    assert erp.stats()["effects"] == 1
    (task,) = tasks(ctx, "erp")
    assert (task.state, task.dispatch_started_at, task.lease_owner) == ("Completed", None, None)
    assert not [t for t in tasks(ctx) if t.dispatch_started_at is not None], "none left out"


@needs_postgres[0]
@needs_postgres[1]
def test_two_instances_on_postgresql_each_send_a_share_with_no_duplicate(
    world: World, monkeypatch, pipelines, pg_url
):
    billing = swap_stub(world, "billing", latency=0.1)
    for _ in range(10):
        world.add_order("PLAT-PRO", "ADD-SSO", "ADD-AUDIT")
    first = world.context(
        monkeypatch, rules_file=RULES, database_url=pg_url, dispatch_concurrency=2
    )
    second = world.context(
        monkeypatch, rules_file=RULES, database_url=pg_url, dispatch_concurrency=2
    )
    stop = threading.Event()
    sent = {first.membership.id: 0, second.membership.id: 0}
    with (
        loop.running(first, stop, listen=False),
        loop.running(second, stop, listen=False),
    ):
        lanes = {ctx.membership.id: (ctx, pipelines(ctx, idle=0.05)) for ctx in (first, second)}
        deadline = time.monotonic() + 120
        while not all(s == "Completed" for s in world.order_statuses().values()):
            assert time.monotonic() < deadline, world.order_statuses()
            for member, (ctx, pipeline) in lanes.items():
                sent[member] += run_cycle(ctx, pipeline.pulse).dispatched
        for member, (_, pipeline) in lanes.items():
            pipeline.stop()
            sent[member] += pipeline.pulse()  # what went out since the last cycle
    assert all(n > 0 for n in sent.values()), f"both instances dispatched: {sent}"
    assert sum(sent.values()) == 70  # 10 ERP orders, 30 billings, 30 activations
    assert billing.stats()["duplicates"] == 0 and billing.stats()["replays"] == 0
    assert sum(s.stats()["duplicates"] for s in world.stubs.values()) == 0
    with first.sessions() as session:
        assert session.scalars(select(Task).where(Task.lease_owner.is_not(None))).all() == []
    for ctx in (first, second):
        ctx.sessions.kw["bind"].dispose()


@pytest.mark.parametrize("serialised", [True, False], ids=["serialised", "as-pysqlite-does"])
def test_sqlite_transactions_of_several_threads_lose_no_update_once_serialised(
    tmp_path: Path, serialised: bool
):
    """Two threads read a counter and write it plus one: the second must read the first's."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'serial.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    if serialised:
        db.serialise_transactions(engine)
    first_read, second_read = threading.Event(), threading.Event()

    def add_one(first: bool) -> None:
        with engine.begin() as conn:
            n = conn.exec_driver_sql("SELECT n FROM counter").scalar_one()
            if first:
                first_read.set()
                second_read.wait(timeout=1)  # serialised, the second cannot read before this ends
            else:
                second_read.set()
            conn.exec_driver_sql("UPDATE counter SET n = ?", (n + 1,))

    first = threading.Thread(target=add_one, args=(True,))
    first.start()
    assert first_read.wait(timeout=30)
    add_one(False)
    first.join()
    with engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT n FROM counter").scalar_one()
    engine.dispose()
    assert total == (2 if serialised else 1)


def test_a_serialised_sqlite_engine_gives_its_write_lock_back_however_a_transaction_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The process's write lock (daemon.store.db) goes back at a commit, a rollback, a connection
    closed or invalidated mid-transaction: else the next writer waits and fails."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 2)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE seen (n INTEGER)")
    db.serialise_transactions(engine)
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO seen VALUES (1)")
        raise ZeroDivisionError  # rolled back
    closed = engine.connect()
    closed.begin()
    closed.exec_driver_sql("INSERT INTO seen VALUES (2)")
    closed.close()  # rolled back by the close
    invalidated = engine.connect()
    invalidated.begin()
    invalidated.exec_driver_sql("INSERT INTO seen VALUES (3)")
    invalidated.invalidate()  # the DBAPI connection closed under it
    invalidated.close()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO seen VALUES (4)")
        except BaseException as exc:  # asserted below
            errors.append(exc)

    other = threading.Thread(target=write)
    other.start()
    other.join()
    with engine.connect() as conn:
        rows = [n for (n,) in conn.exec_driver_sql("SELECT n FROM seen")]
    engine.dispose()
    assert errors == [] and rows == [4]
