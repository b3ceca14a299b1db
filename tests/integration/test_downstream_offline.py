"""Systems offline and back: steps wait On Hold, keep their retries, complete exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from daemon.commands.main import main
from daemon.context import Context
from daemon.cycle.run import run_cycle, safe_sweep
from daemon.store.models import SystemState
from orchestration.states import StepState
from tests.integration.downstream_world import cycle_until, tasks
from tests.integration.world import World, run_until_settled


def held(ctx: Context) -> bool:
    states = [t.state for t in tasks(ctx, "provisioning")]
    return len(states) == 3 and all(s == StepState.ON_HOLD for s in states)


def silent_provisioning(
    world: World, monkeypatch: pytest.MonkeyPatch, probe_interval: int
) -> tuple[Context, Callable[..., None]]:
    """Provisioning stops answering with an order of three licences to send: cycles run
    until the daemon takes it offline and holds the steps. The context, and a tick (30 s
    of its clock, past retry back-offs, then a cycle)."""
    ctx = world.context(
        monkeypatch, provisioning_offline_after=2, provisioning_probe_interval=probe_interval
    )
    now = [datetime.now(UTC) + timedelta(seconds=2)]
    ctx.clock = lambda: now[0]

    def tick(cycles: int = 1) -> None:
        for _ in range(cycles):
            now[0] += timedelta(seconds=30)
            run_cycle(ctx)

    world.stubs["provisioning"].go_offline()
    world.add_order("PLAT-PRO", "ADD-SSO", "ADD-AUDIT")
    for _ in range(10):
        tick()
        if held(ctx):
            break
    return ctx, tick


def test_a_system_that_stops_answering_goes_offline_and_its_steps_resume_once(
    world: World, monkeypatch
):
    provisioning = world.stubs["provisioning"]
    ctx, tick = silent_provisioning(world, monkeypatch, probe_interval=60)
    with ctx.sessions() as session:
        state = session.get(SystemState, "provisioning")
        assert state is not None and (state.offline, state.mode) == (True, "auto")
        assert state.reason.endswith("connection failures in a row")
    # Calls go out in parallel: each step failed at most once before the system tripped.
    spent = [t.attempts for t in tasks(ctx, "provisioning")]
    assert max(spent) <= 1
    tick(3)  # still down: probes fail, the steps keep waiting and keep their retries
    assert held(ctx)
    assert [t.attempts for t in tasks(ctx, "provisioning")] == spent

    provisioning.come_online()
    tick()  # the probe answers: online; On Hold steps go Ready and are sent
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    assert all(t.state == StepState.COMPLETED for t in tasks(ctx, "provisioning"))
    stats = provisioning.stats()
    assert (stats["effects"], stats["distinct_keys"], stats["duplicates"]) == (3, 3, 0)
    with ctx.sessions() as session:
        state = session.get(SystemState, "provisioning")
        assert state is not None and not state.offline and state.reason == "answered a probe"


def test_an_operator_takes_a_system_offline_and_back(world: World, monkeypatch, capsys):
    ctx = world.context(monkeypatch)
    billing = world.stubs["billing"]
    assert main(["system", "offline", "billing", "--reason", "maintenance window"]) == 0
    world.add_order("PLAT-PRO", "ADD-SSO")

    def billing_held() -> bool:
        states = [t.state for t in tasks(ctx, "billing")]
        return len(states) == 2 and all(s == StepState.ON_HOLD for s in states)

    cycle_until(ctx, billing_held)
    assert billing.stats()["requests"] == 0
    capsys.readouterr()
    assert main(["system", "list", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert (listed["billing"]["offline"], listed["billing"]["mode"]) == (True, "manual")
    assert listed["billing"]["reason"] == "maintenance window"
    assert listed["erp"]["offline"] is False

    assert main(["system", "online", "billing"]) == 0
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    assert [t.attempts for t in tasks(ctx, "billing")] == [1, 1]
    assert billing.stats()["effects"] == 2 and billing.stats()["duplicates"] == 0


def test_an_unknown_system_is_one_line_and_exit_2(world: World, monkeypatch, capsys):
    world.context(monkeypatch)
    assert main(["system", "offline", "crm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["orderflow: no system named 'crm' (set ORDERFLOW_CRM_URL)"]


def test_held_steps_resume_after_online_even_with_a_sweep_before_the_next_cycle(
    world: World, monkeypatch
):
    # The daemon took provisioning offline by itself; an operator brings it back from
    # another process; the jeopardy sweep runs before the next cycle, while the daemon's
    # connector still says offline. The sweep must not leave the held steps asleep.
    provisioning = world.stubs["provisioning"]
    ctx, _tick = silent_provisioning(world, monkeypatch, probe_interval=3600)
    assert held(ctx)
    provisioning.come_online()
    assert main(["system", "online", "provisioning"]) == 0
    assert safe_sweep(ctx) is not None  # between `online` and the next cycle
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    assert provisioning.stats()["effects"] == 3
