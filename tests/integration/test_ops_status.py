"""`orderflow status`: what is in flight, and one order's plan as a tree."""

from __future__ import annotations

import json
import logging

import pytest

from daemon.commands.main import main
from daemon.cycle.run import run_cycle
from daemon.store.models import Plan
from tests.integration.world import World


@pytest.fixture(autouse=True)
def _quiet_logging():
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


@pytest.fixture
def store(world: World, monkeypatch):
    """Two orders planned and partly run by the real cycle; one refused by Salesforce."""
    world.add_order("PLAT-PRO", "ADD-SSO")
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    with ctx.sessions.begin() as session:
        plans = session.query(Plan).order_by(Plan.id).all()
        plans[1].writeback_error = "FIELD_CUSTOM_VALIDATION_EXCEPTION: closed period"
        return [(p.order_id, p.order_number) for p in plans]


def test_everything_in_flight(store, capsys):
    assert main(["status", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) >= {
        "orders_by_status",
        "tasks_by_system",
        "orders_in_flight",
        "fallout_tasks",
        "manual_tasks",
        "recent_writeback_errors",
    }
    assert sum(summary["orders_by_status"].values()) == 2
    assert "erp" in summary["tasks_by_system"]
    assert summary["fallout_tasks"] == 0
    (error,) = summary["recent_writeback_errors"]
    assert error["order_number"] == store[1][1]
    assert error["error"].startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "orders by status:" in text
    assert "tasks by system and state:" in text
    assert "recent writeback errors: 1" in text
    assert "closed period" in text


def test_one_order_as_a_tree(store, capsys):
    order_id, number = store[0]
    assert main(["status", number, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["order_id"], plan["order_number"]) == (order_id, number)
    steps = {s["step_id"]: s for s in plan["steps"]}
    assert len(steps) >= 2
    for step in plan["steps"]:
        assert set(step) >= {"state", "attempts", "not_before", "next_attempt_at", "message"}
        if step["parent"] is None:
            assert step["depth"] == 0
        else:
            assert step["parent"] in step["depends_on"]
            assert step["depth"] == steps[step["parent"]]["depth"] + 1
    # Tree order: every step comes after the step it is drawn under.
    order = [s["step_id"] for s in plan["steps"]]
    assert all(
        order.index(s["parent"]) < order.index(s["step_id"]) for s in plan["steps"] if s["parent"]
    )
    assert any(s["depth"] > 0 for s in plan["steps"])
    # The 15-character id finds it too, and the text indents dependents under their parent.
    assert main(["status", order_id[:15]]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith(f"order {number} ({order_id})")
    child = next(s for s in plan["steps"] if s["depth"] == 1)
    line = next(line for line in text if f"{child['step_id']}:" in line)
    assert line.startswith("     ")  # two for the list, three per level
    assert child["state"] in line


def test_a_step_completed_after_a_retry_shows_no_retry_time(store, world, monkeypatch, capsys):
    from datetime import UTC, datetime, timedelta

    from daemon import store as tasks
    from daemon.store.models import Task
    from orchestration.states import StepState

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with world.context(monkeypatch).sessions.begin() as session:
        task = session.query(Task).filter_by(state=StepState.READY.value).first()
        tasks.transition(session, task, StepState.IN_PROGRESS, "sent", now)
        task.next_attempt_at = now + timedelta(minutes=5)
        tasks.transition(session, task, StepState.FAILED, "timeout", now)
        for state in (StepState.READY, StepState.IN_PROGRESS, StepState.COMPLETED):
            tasks.transition(session, task, state, "retried", now)
        number, step_id = task.plan.order_number, task.step_id
    assert main(["status", number]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if f"{step_id}:" in li)
    assert "Completed" in line
    assert "retry at" not in line


def test_an_unknown_order_is_one_line_and_exit_2(store, capsys):
    assert main(["status", "00009999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no order '00009999' in the store" in err
