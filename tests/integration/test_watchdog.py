"""The watchdog is fed by the loop's progress only: a commit on another thread is not it."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from daemon.cycle.run import CycleReport
from daemon.service import loop
from daemon.service.health import Heartbeat


def test_only_the_loops_own_commits_feed_the_heartbeat(monkeypatch, tmp_path):
    # A callback handler commits on the listener's thread while the loop is stuck in its
    # cycle: that commit must not make the loop look alive (nor ping the watchdog).
    now = [0.0]
    heartbeat = Heartbeat(stale_after=60, clock=lambda: now[0])
    sessions = sessionmaker(create_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    stop = threading.Event()
    since: list[float] = []

    def commit() -> None:
        with sessions.begin() as session:
            session.execute(text("SELECT 1"))

    def cycle(_ctx):
        now[0] = 100.0
        handler = threading.Thread(target=commit)
        handler.start()
        handler.join()
        since.append(heartbeat.snapshot()["seconds_since_beat"])
        commit()  # the loop's own progress
        since.append(heartbeat.snapshot()["seconds_since_beat"])
        stop.set()
        return CycleReport()

    monkeypatch.setattr(loop, "safe_cycle", cycle)
    monkeypatch.setattr(loop, "next_wait", lambda _ctx, _interval, _report: 0.0)
    ctx = SimpleNamespace(sessions=sessions)
    loop.run_forever(ctx, 0.001, stop, heartbeat=heartbeat, jeopardy_interval=None)  # type: ignore[arg-type]
    assert since == [100.0, 0.0]
