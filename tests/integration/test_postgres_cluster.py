"""Three `orderflow run` processes on one PostgreSQL database: all settle, exactly once.

The instances are real processes started as in production (ORDERFLOW_* variables only,
each its own HTTP port); the emulator and the stubs run in this process and count what
they received, so "zero duplicate effects" is the stubs' word, not the daemon's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bench.common import CALLOUT_RULES, add_orders
from daemon.ops.demo import SETTLED, SYSTEMS, act_as_operator, demo_environment
from daemon.store import db
from daemon.store.models import Instance, Plan, Task
from downstream.stubs import StubSystem
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org
from tests.integration.pg import needs_postgres

pytestmark = needs_postgres

#: The issue's figure. The rules are the callouts-only ones of the benchmarks (an ERP order
#: per order, each line billed then provisioned): this test is about sharing the work
#: exactly once, the two below run the default rules with their every step kind.
ORDERS = int(os.environ.get("ORDERFLOW_TEST_PG_ORDERS", "5000"))
FAST = {
    "ORDERFLOW_POLL_INTERVAL": "0.2",
    # The emulator commits at once: no late commit to reach back ten minutes for.
    "ORDERFLOW_SF_POLL_OVERLAP": "2",
    "ORDERFLOW_HEARTBEAT_INTERVAL": "0.5",
    "ORDERFLOW_INSTANCE_DEAD_AFTER": "3",
    "ORDERFLOW_HTTP_PORT": "0",
}


def wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Cluster:
    emu: Emulator
    stubs: dict[str, StubSystem]
    url: str
    workdir: Path
    sessions: sessionmaker[Session]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)

    def start(self, count: int, **settings: str) -> None:
        env = {**demo_environment(self.emu, self.stubs, self.workdir), **FAST, **settings}
        env["ORDERFLOW_DATABASE_URL"] = self.url
        for _ in range(count):
            log = (self.workdir / f"instance-{len(self.procs)}.log").open("w")
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "daemon", "run"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for(lambda: len(self.rows()) == count, "the instances to beat", 60)

    def rows(self) -> list[Instance]:
        with self.sessions() as session:
            return list(session.scalars(select(Instance)))

    def process(self, role: str) -> subprocess.Popen[bytes]:
        pids = {r.pid for r in self.rows() if r.role == role}
        return next(p for p in self.procs if p.pid in pids and p.poll() is None)

    def instance_of(self, proc: subprocess.Popen[bytes]) -> str:
        return next(r.id for r in self.rows() if r.pid == proc.pid)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def dispatched_by(self, index: int) -> int:
        """Callouts the index-th instance sent, from its log's cycle lines."""
        self.logs[index].flush()
        text = (self.workdir / f"instance-{index}.log").read_text()
        return sum(int(n) for n in re.findall(r"cycle: .*?(\d+) dispatched", text))

    def settled(self) -> int:
        statuses = Counter(r.get("Fulfillment_Status__c") for r in self.emu.records("Order"))
        return sum(n for status, n in statuses.items() if status in SETTLED)

    def wait_settled(self, timeout: float) -> None:
        total = len(self.emu.records("Order"))
        wait_for(lambda: self.settled() == total, f"{total} orders to settle", timeout)

    def assert_exactly_once(self) -> None:
        for name, stub in self.stubs.items():
            assert stub.stats()["duplicates"] == 0, f"{name} made an effect twice"
            assert stub.stats()["payload_doubles"] == 0, f"{name} got a payload twice"
            keys = Counter(effect.key for effect in stub.effects)
            assert max(keys.values(), default=1) == 1, f"{name}: one key, several effects"
        with self.sessions() as session:
            plans = Counter(session.scalars(select(Plan.order_id)))
            leased = session.scalars(select(Task.id).where(Task.dispatch_started_at.is_not(None)))
            assert list(leased) == [], "every dispatch's result committed"
        orders = {r["Id"] for r in self.emu.records("Order")}
        assert set(plans) == orders, "every order planned, none missed"
        assert set(plans.values()) == {1}, "none planned twice"


def operate(sessions: sessionmaker[Session], stop: threading.Event) -> None:
    """The demo's operator: completes the manual steps, as `orderflow task complete` does."""
    while not stop.wait(0.25):
        with contextlib.suppress(OperationalError):
            act_as_operator(sessions, datetime.now(UTC))


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    emu = Emulator(tmp_path / "salesforce")
    emu.start()
    # Some latency, so calls are in flight (and leases held) when an instance is killed.
    stubs = {
        name: StubSystem(name, token=f"{name}-secret-token", latency=(0.0, 0.03))
        for name in SYSTEMS
    }
    for stub in stubs.values():
        stub.start()
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    cluster = Cluster(emu, stubs, pg_url, tmp_path, db.sessions(engine))
    stop = threading.Event()
    operator = threading.Thread(target=operate, args=(cluster.sessions, stop), daemon=True)
    operator.start()
    try:
        yield cluster
    finally:
        stop.set()
        operator.join()
        for proc in cluster.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in cluster.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in cluster.logs:
            log.close()
        engine.dispose()
        for stub in stubs.values():
            stub.stop()
        emu.stop()


def test_three_instances_settle_every_order_with_no_duplicate_effect(cluster: Cluster):
    add_orders(cluster.emu, ORDERS)
    cluster.start(3, ORDERFLOW_RULES_FILE=str(CALLOUT_RULES))
    assert Counter(r.role for r in cluster.rows()) == {"leader": 1, "worker": 2}
    cluster.wait_settled(timeout=max(300.0, ORDERS / 4))
    cluster.assert_exactly_once()
    assert Counter(r.get("Fulfillment_Status__c") for r in cluster.emu.records("Order")) == {
        "Completed": ORDERS
    }
    # The work was shared: each instance dispatched some, as its cycle log lines say.
    dispatched = [cluster.dispatched_by(n) for n in range(3)]
    assert all(n > 0 for n in dispatched), dispatched
    with cluster.sessions() as session:
        counts = Counter(session.scalars(select(Task.system).where(Task.system.is_not(None))))
    assert sum(s.stats()["effects"] for s in cluster.stubs.values()) == counts.total()


def test_an_instance_killed_mid_lease_has_its_steps_finished_elsewhere_once(cluster: Cluster):
    seed_demo_org(cluster.emu, orders=300)
    cluster.start(3)
    victim = cluster.process("worker")
    victim_id = cluster.instance_of(victim)

    def held() -> list[int]:
        with cluster.sessions() as session:
            return list(
                session.scalars(
                    select(Task.id)
                    .where(Task.lease_owner == victim_id)
                    .where(Task.dispatch_started_at.is_not(None))
                )
            )

    wait_for(lambda: len(held()) > 0, "the worker to hold leases", 60)
    cluster.kill(victim)
    interrupted = held()  # its intents committed, their results never will be
    assert interrupted

    cluster.wait_settled(timeout=300)
    cluster.assert_exactly_once()
    with cluster.sessions() as session:
        tasks = session.scalars(select(Task).where(Task.id.in_(interrupted))).all()
        assert {t.state for t in tasks} <= {"Completed", "Failed", "Fatally Failed"}
        assert all(t.attempts >= 2 for t in tasks), "claimed again after the kill"
        assert all(t.lease_owner is None for t in tasks)
        assert session.get(Instance, victim_id) is None, "the dead instance was reaped"


def test_when_the_leader_dies_another_polls_on_from_the_watermarks(cluster: Cluster):
    seed_demo_org(cluster.emu, orders=200)
    cluster.start(3)
    first = cluster.process("leader")
    wait_for(lambda: cluster.settled() >= 50, "some orders to settle", 120)
    cluster.kill(first)
    # Orders activated after the leader's death: only a new leader's poll can find them.
    later = _more_orders(cluster.emu, 50)
    wait_for(
        lambda: any(r.role == "leader" and r.pid != first.pid for r in cluster.rows()),
        "a new leader",
        30,
    )
    cluster.wait_settled(timeout=300)
    assert cluster.process("leader").pid != first.pid
    statuses = {r["Id"]: r.get("Fulfillment_Status__c") for r in cluster.emu.records("Order")}
    assert all(statuses[o] in SETTLED for o in later)
    cluster.assert_exactly_once()


def _more_orders(emu: Emulator, count: int) -> list[str]:
    before = {r["Id"] for r in emu.records("Order")}
    seed_demo_org(emu, orders=count, seed=11)
    return [r["Id"] for r in emu.records("Order") if r["Id"] not in before]
