"""Exactly once in effect across a real crash: SIGKILL between send and commit, restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from daemon.ops.demo import demo_environment
from daemon.store import db
from daemon.store.models import Task
from downstream.stubs import StubFaults, StubSystem
from tests.integration.world import World

ORDERFLOW = [sys.executable, "-m", "daemon", "run"]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def erp_task(database: Path) -> Task:
    engine = db.make_engine(f"sqlite:///{database}")
    with db.sessions(engine)() as session:
        task = session.scalars(select(Task).where(Task.system == "erp")).one()
    engine.dispose()
    return task


def test_a_dispatch_killed_in_flight_is_resent_once_and_makes_one_effect(
    world: World, tmp_path: Path
):
    # The ERP makes the effect at once and holds its answer back: the daemon is killed
    # after the call went out and before its result could be committed.
    slow = StubSystem(
        "erp", token="erp-secret-token", faults=StubFaults(slow_share=1.0, slow_seconds=30)
    )
    slow.start()
    world.stubs["erp"].stop()
    world.stubs["erp"] = slow
    order_id = world.add_order("PLAT-PRO")
    env = demo_environment(world.emu, world.stubs, tmp_path)
    env["ORDERFLOW_DOWNSTREAM_TIMEOUT"] = "120"
    log = (tmp_path / "daemon.log").open("w")

    first = subprocess.Popen(ORDERFLOW, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: slow.stats()["effects"] == 1, "the ERP to receive the sales order")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    assert first.returncode == -signal.SIGKILL
    interrupted = erp_task(tmp_path / "orderflow.db")
    assert interrupted.state == "In Progress"
    assert interrupted.dispatch_started_at is not None, "the intent was committed, no result"

    second = subprocess.Popen(ORDERFLOW, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: world.order_statuses()[order_id] == "Completed", "the order to settle")
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    finally:
        second.kill()
        log.close()

    stats = slow.stats()
    assert (stats["requests"], stats["effects"], stats["replays"]) == (2, 1, 1)
    assert stats["duplicates"] == 0
    (effect,) = slow.effects
    assert effect.key == interrupted.idempotency_key, "resent with the same Idempotency-Key"
    done = erp_task(tmp_path / "orderflow.db")
    assert (done.state, done.attempts, done.external_ref) == ("Completed", 2, effect.reference)
    assert all(s.stats()["duplicates"] == 0 for s in world.stubs.values())
