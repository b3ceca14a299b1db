"""The daemon's loop holds two jobs in a ``schedule.Scheduler``: the sync cycle, re-armed
with the pacing's wait after each run, and the jeopardy sweep on its own cadence."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sqlalchemy.orm import sessionmaker

from daemon.cycle.run import CycleReport
from daemon.service import loop


def run(monkeypatch, *, sweeps_before_stop: int, jeopardy_interval: float | None):
    calls: list[str] = []
    stop = threading.Event()

    def cycle(_ctx):
        calls.append("cycle")
        if jeopardy_interval is None and calls.count("cycle") == 3:
            stop.set()
        return CycleReport()

    def sweep(_ctx):
        calls.append("sweep")
        if calls.count("sweep") == sweeps_before_stop:
            stop.set()

    monkeypatch.setattr(loop, "safe_cycle", cycle)
    monkeypatch.setattr(loop, "safe_sweep", sweep)
    monkeypatch.setattr(loop, "next_wait", lambda _ctx, _interval, _report: 0.0)
    ctx = SimpleNamespace(sessions=sessionmaker())
    loop.run_forever(ctx, 0.001, stop, jeopardy_interval=jeopardy_interval)  # type: ignore[arg-type]
    return calls


def test_cycles_start_at_once_and_sweeps_run_on_their_own_cadence(monkeypatch):
    calls = run(monkeypatch, sweeps_before_stop=2, jeopardy_interval=0.05)
    assert calls[0] == "cycle", "the first cycle does not wait for the cadence"
    assert calls.count("sweep") == 2
    # The cycle, re-armed with the pacing's (zero) wait, is due long before the next sweep.
    first = calls.index("sweep")
    assert "cycle" in calls[first + 1 : calls.index("sweep", first + 1)]


def test_without_a_sweep_interval_only_cycles_run(monkeypatch):
    calls = run(monkeypatch, sweeps_before_stop=1, jeopardy_interval=None)
    assert calls == ["cycle"] * 3


def test_an_unexpected_error_is_logged_masked_and_the_loop_goes_on(monkeypatch):
    import io
    import logging

    from daemon import logs

    logs.add_secrets(["svc-password-1234"])
    calls: list[str] = []
    stop = threading.Event()

    def cycle(_ctx):
        calls.append("cycle")
        if len(calls) < 3:
            raise ValueError("cannot read http://svc:svc-password-1234@erp.test/")
        stop.set()
        return CycleReport()

    monkeypatch.setattr(loop, "safe_cycle", cycle)
    monkeypatch.setattr(loop, "next_wait", lambda _ctx, _interval, _report: 0.0)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.TextFormatter())
    logging.getLogger("daemon.service.loop").addHandler(handler)
    try:
        ctx = SimpleNamespace(sessions=sessionmaker())
        loop.run_forever(ctx, 0.001, stop, jeopardy_interval=None)  # type: ignore[arg-type]
    finally:
        logging.getLogger("daemon.service.loop").removeHandler(handler)

    assert calls == ["cycle"] * 3, "run again after each failure, until it succeeds"
    text = out.getvalue()
    assert "unexpected error (1 in a row)" in text and "unexpected error (2 in a row)" in text
    assert "Traceback" in text and "ValueError" in text
    assert "svc-password-1234" not in text
