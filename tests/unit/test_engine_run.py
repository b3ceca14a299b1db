"""The real engine (advance, dispatch, auto steps, the store) against in-memory fakes.

No HTTP and no sleeps: systems are fakes, the clock is a variable, the store a SQLite file.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from daemon import store
from daemon.app import POLLED_FIELDS
from daemon.context import Context
from daemon.cycle.advance import advance_plans
from daemon.cycle.dispatch import dispatch
from daemon.settings import DEFAULT_RULES
from daemon.store import db
from daemon.store.models import Plan, Task, TaskEvent
from downstream.protocol import Outcome, SubmitResult, TaskRequest
from orchestration.auto import REGISTRY
from orchestration.decompose import decompose
from orchestration.errors import RetriableError
from orchestration.rules import RuleSet, load_rules
from orchestration.states import Resolution
from tests.unit.factories import order

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

Script = Callable[[TaskRequest], SubmitResult]


def ok(request: TaskRequest) -> SubmitResult:
    return SubmitResult(outcome=Outcome.COMPLETED, external_ref=f"REF-{request.step_ref}")


@dataclass
class FakeSystem:
    """A downstream system in memory: idempotent by key, scripted answers per action."""

    name: str
    scripts: dict[str, list[Script]] = field(default_factory=dict)
    requests: list[TaskRequest] = field(default_factory=list)
    answers: dict[str, SubmitResult] = field(default_factory=dict)
    gate: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, request: TaskRequest) -> SubmitResult:
        with self.lock:
            self.requests.append(request)
            if request.idempotency_key in self.answers:
                return self.answers[request.idempotency_key]
            queue = self.scripts.get(request.action) or []
            script = queue.pop(0) if queue else ok
        if self.gate is not None:
            self.gate()
        result = script(request)  # may raise RetriableError
        with self.lock:
            if result.outcome is Outcome.COMPLETED:
                self.answers[request.idempotency_key] = result
        return result

    def status(self, external_ref: str) -> SubmitResult:
        return SubmitResult(outcome=Outcome.COMPLETED, external_ref=external_ref)

    def cancel(self, external_ref: str) -> SubmitResult:
        return SubmitResult(outcome=Outcome.COMPLETED, external_ref=external_ref)

    @property
    def effects(self) -> int:
        return len(self.answers)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Engine:
    ctx: Context
    clock: Clock
    systems: dict[str, FakeSystem]

    def plan(self, *codes: str, order_id: str = "801000000000001AAA") -> int:
        record = order(*codes, order_id=order_id)
        with self.ctx.sessions.begin() as session:
            steps = decompose(record, self.ctx.ruleset)
            plan = store.create_plan(session, record, steps, self.ctx.ruleset, self.clock())
            session.flush()
            return plan.id

    def run(self, rounds: int = 10) -> None:
        """What a cycle does between poll and writeback, ``rounds`` times, at one time."""
        for _ in range(rounds):
            advance_plans(self.ctx)
            dispatch(self.ctx)
        advance_plans(self.ctx)

    def tasks(self) -> dict[str, Task]:
        with self.ctx.sessions() as session:
            return {t.step_id: t for t in session.scalars(select(Task))}

    def task(self, prefix: str) -> Task:
        (found,) = [t for k, t in self.tasks().items() if k.startswith(prefix)]
        return found

    def plan_row(self, plan_id: int) -> Plan:
        with self.ctx.sessions() as session:
            plan = session.get(Plan, plan_id)
            assert plan is not None
            return plan

    def resolve(self, task_id: int, verb: Resolution, actor: str = "ana") -> Task:
        with self.ctx.sessions.begin() as session:
            return store.resolve_task(session, task_id, verb, "checked", actor, self.clock())

    def events(self, task_id: int) -> list[TaskEvent]:
        with self.ctx.sessions() as session:
            query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
            return list(session.scalars(query))


@pytest.fixture(scope="session")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file; each test gets a copy."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def default_rules() -> RuleSet:
    return load_rules(DEFAULT_RULES, POLLED_FIELDS, REGISTRY)


@contextmanager
def make_engine(
    schema: Path, tmp_path: Path, ruleset: RuleSet, concurrency: int = 8
) -> Iterator[Engine]:
    path = tmp_path / "store.db"
    shutil.copy(schema, path)
    sql = db.make_engine(f"sqlite:///{path}")
    clock = Clock()
    systems = {name: FakeSystem(name) for name in ruleset.systems}
    ctx = Context(
        sessions=db.sessions(sql),
        gateway=cast(Any, None),
        systems=systems,
        ruleset=ruleset,
        clock=clock,
        rng=random.Random(7),
        concurrency=concurrency,
    )
    yield Engine(ctx, clock, systems)
    sql.dispose()


@pytest.fixture
def engine(schema: Path, tmp_path: Path, default_rules: RuleSet) -> Iterator[Engine]:
    with make_engine(schema, tmp_path, default_rules) as made:
        yield made


def test_every_step_kind_runs_to_a_completed_plan(engine: Engine):
    plan_id = engine.plan("PLAT-ENT", "PS-ONBOARD")
    engine.run()

    # Callouts went out once each; the manual kick-off waits for a person, and the pause
    # and scheduled steps wait for their time: nothing moves them but the clock.
    assert [r.action for r in engine.systems["erp"].requests] == ["sales-orders"]
    assert engine.systems["provisioning"].effects == 2  # activation + engagement
    kickoff = engine.task("services.kickoff")
    assert (kickoff.state, kickoff.message) == ("In Progress", "waiting for an operator")
    assert engine.task("license.activated").state == "Completed"
    assert engine.task("usage_meter.settle").state == "Scheduled"
    assert engine.task("erp_order.booked").state == "Completed", "every line is activated"
    assert engine.task("erp_order.welcome").state == "Scheduled"
    assert engine.plan_row(plan_id).status == "In Progress"
    engine.run()
    assert engine.task("erp_order.welcome").state == "Scheduled", "no time has passed"

    engine.resolve(kickoff.id, Resolution.COMPLETE)

    engine.clock.tick(seconds=1)
    engine.run()
    engine.clock.tick(seconds=1)
    engine.run()

    states = {k: t.state for k, t in engine.tasks().items()}
    assert set(states.values()) == {"Completed"}, states
    plan = engine.plan_row(plan_id)
    assert (plan.status, plan.progress, plan.state) == ("Completed", 100, "Completed")
    assert sum(s.effects for s in engine.systems.values()) == 5
    assert all(len(s.requests) == s.effects for s in engine.systems.values())


def test_a_step_never_starts_before_its_dependencies(engine: Engine):
    engine.plan("PLAT-ENT", "ADD-SSO")
    advance_plans(engine.ctx)
    dispatch(engine.ctx)
    first = {(r.system, r.action) for s in engine.systems.values() for r in s.requests}
    assert first == {("erp", "sales-orders"), ("billing", "subscriptions")}
    engine.run()
    for _ in range(2):  # the pause, then the scheduled step after it
        engine.clock.tick(seconds=5)
        engine.run()
    completed, started = {}, {}
    for step_id, task in engine.tasks().items():
        for event in engine.events(task.id):
            if event.to_state == "Completed":
                completed[step_id] = event.id
            if event.from_state == "Pending":
                started[step_id] = event.id
    assert set(completed) == set(engine.tasks())
    for step_id, task in engine.tasks().items():
        for dep in task.depends_on:
            assert completed[dep] < started[step_id], (dep, step_id)


def test_a_manual_task_completed_by_an_operator_is_audited_with_the_actor(engine: Engine):
    engine.plan("PS-ONBOARD")
    engine.run()
    kickoff = engine.task("services.kickoff")
    engine.resolve(kickoff.id, Resolution.COMPLETE, actor="maria")
    last = engine.events(kickoff.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == ("In Progress", "Completed", "maria")
    assert last.reason == "operator complete: checked"


def test_ready_callouts_run_in_parallel_up_to_the_limit_per_system(
    schema: Path, tmp_path: Path, default_rules: RuleSet
):
    limit, orders = 2, 5
    with make_engine(schema, tmp_path, default_rules, concurrency=limit) as engine:
        peaks, overall = _run_gated(engine, limit, orders)
    assert peaks == {"erp": limit, "billing": limit}, "never more than the limit per system"
    assert overall == 2 * limit, "the limit is per system, not for all of them"


def _run_gated(engine: Engine, limit: int, orders: int) -> tuple[dict[str, int], int]:
    lock = threading.Condition()
    arrived: dict[str, int] = {}
    in_flight: dict[str, int] = {}
    peaks: dict[str, int] = {}
    overall = {"now": 0, "peak": 0}

    def gate_for(name: str) -> Callable[[], None]:
        def gate() -> None:
            with lock:
                arrived[name] = arrived.get(name, 0) + 1
                in_flight[name] = in_flight.get(name, 0) + 1
                peaks[name] = max(peaks.get(name, 0), in_flight[name])
                overall["now"] += 1
                overall["peak"] = max(overall["peak"], overall["now"])
                lock.notify_all()
                # Every system's first calls wait for each other: they only all get here if
                # the dispatcher runs `limit` calls at once for each system at the same time.
                together = lambda: all(arrived.get(n, 0) >= limit for n in ("erp", "billing"))  # noqa: E731
                assert lock.wait_for(together, timeout=10)
                in_flight[name] -= 1
                overall["now"] -= 1

        return gate

    for name in ("erp", "billing"):
        engine.systems[name].gate = gate_for(name)
    for n in range(orders):
        engine.plan("PLAT-ENT", order_id=f"8010000000000{n:02d}AAA")
    advance_plans(engine.ctx)
    assert dispatch(engine.ctx) == 2 * orders
    assert engine.systems["erp"].effects == orders
    return peaks, overall["peak"]


def test_an_interrupted_dispatch_is_resent_with_the_same_key(engine: Engine):
    from daemon.cycle.dispatch import claim_requests

    engine.plan("ADD-SSO")
    advance_plans(engine.ctx)
    claimed = claim_requests(engine.ctx)  # the intent is committed ... and the process dies here
    assert {r.action for _, r in claimed} == {"sales-orders", "subscriptions"}
    erp = engine.task("erp_order.sales_order")
    assert (erp.state, erp.dispatch_started_at) == ("In Progress", START)

    assert dispatch(engine.ctx) == 2  # the next start resends both
    erp_requests = engine.systems["erp"].requests
    assert [r.idempotency_key for r in erp_requests] == [erp.idempotency_key]
    assert engine.task("erp_order.sales_order").state == "Completed"
    assert engine.task("erp_order.sales_order").attempts == 2


def test_plans_keep_the_rules_they_were_built_from(engine: Engine, tmp_path: Path):
    first = engine.plan("ADD-SSO")
    changed = tmp_path / "rules.yaml"
    changed.write_text(
        DEFAULT_RULES.read_text()
        .replace('version: "2026.11-2"', 'version: "2026.12-1"')
        .replace("max_attempts: 6,", "max_attempts: 1,")
    )
    engine.ctx.ruleset = load_rules(changed, POLLED_FIELDS, REGISTRY)
    second = engine.plan("ADD-SSO", order_id="801000000000002AAA")

    with engine.ctx.sessions() as session:
        old, new = session.get(Plan, first), session.get(Plan, second)
        assert old is not None and new is not None
        assert (old.rules_version, new.rules_version) == ("2026.11-2", "2026.12-1")
        assert old.rules_digest != new.rules_digest
        pinned = store.pinned_rules(session, old.rules_digest or "")
    assert pinned is not None and pinned.retry.max_attempts == 6

    def down(request: TaskRequest) -> SubmitResult:
        raise RetriableError("billing: HTTP 503")

    engine.systems["billing"].scripts["subscriptions"] = [down, down]
    engine.run(rounds=1)
    with engine.ctx.sessions() as session:
        query = select(Task.plan_id, Task.state).where(Task.key == "billing")
        by_plan = {plan: state for plan, state in session.execute(query)}
    assert by_plan == {first: "Failed", second: "Fatally Failed"}, "each plan its own policy"
