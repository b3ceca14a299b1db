"""REQUEST_LIMIT_EXCEEDED by kind, through the real daemon against the emulator.

A concurrent-request refusal clears in seconds: retried after a short back-off, no hold.
A spent daily allowance holds every Salesforce call, probes ``GET /limits`` once per probe
interval, and resumes as soon as what is left is above the reserve. The gateway's clock
and sleep are injected: nothing here waits for real time.
"""

from __future__ import annotations

import pytest

from daemon.context import Context
from daemon.cycle.poll import poll
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import Plan
from tests.integration.test_salesforce_errors import Clock
from tests.integration.test_salesforce_support import force_poll
from tests.integration.world import World, run_until_settled

PROBE = 300.0


def _context(world: World, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Context:
    ctx = world.context(monkeypatch, sf_limit_probe_interval=PROBE)
    ctx.gateway.clock = clock
    ctx.gateway.sleep = clock.sleep
    return ctx


def _plans(ctx: Context) -> int:
    with ctx.sessions() as session:
        return session.query(Plan).count()


def test_a_concurrent_limit_refusal_delays_writeback_by_seconds_not_an_hour(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO")
    clock = Clock()
    ctx = _context(world, monkeypatch, clock)
    poll(ctx)  # planned: its status is now to be written back
    composites = world.emu.calls_by_kind["composite"]

    world.emu.refuse_next("concurrent")
    written = write_back(ctx)

    assert written >= 1
    assert world.emu.get("Order", order)["Fulfillment_Status__c"] is not None
    assert world.emu.calls_by_kind["composite"] == composites + 2, "refused once, then sent"
    (waited,) = clock.slept
    assert 2 <= waited < 60, "a short back-off, seconds"
    assert ctx.gateway.pacer.blocked_until is None, "no hold"
    force_poll(ctx)
    run_cycle(ctx)
    assert world.emu.calls_by_kind["query"] + world.emu.calls_by_kind["composite"] > composites


def test_a_spent_allowance_holds_calls_and_resumes_after_the_probe_says_it_is_back(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO")
    clock = Clock()
    ctx = _context(world, monkeypatch, clock)
    used, limit = world.emu.api_usage
    world.emu.spend_calls(limit - used)  # other integrations spent the day's allowance

    run_cycle(ctx)  # the poll is refused: TotalRequests Limit exceeded
    assert _plans(ctx) == 0
    pacer = ctx.gateway.pacer
    assert pacer.blocked_until == clock.now + PROBE, "held until the next probe, not an hour"

    calls = world.emu.api_calls
    clock.now += PROBE - 1
    force_poll(ctx)
    run_cycle(ctx)
    assert world.emu.api_calls == calls, "no call while held"

    world.emu.free_calls(limit // 20)  # 5 % back: not above the 10 % reserve
    clock.now += 1
    force_poll(ctx)
    run_cycle(ctx)
    assert world.emu.calls_by_kind["limits"] == 1 and world.emu.api_calls == calls + 1
    assert _plans(ctx) == 0, "the probe said: still under the reserve"
    assert pacer.blocked_until == clock.now + PROBE

    world.emu.free_calls(limit // 5)  # the rolling window frees more: 25 % left
    clock.now += PROBE
    force_poll(ctx)
    run_cycle(ctx)
    assert world.emu.calls_by_kind["limits"] == 2
    assert pacer.blocked_until is None, "resumed after the probe"
    assert _plans(ctx) == 1

    run_until_settled(ctx, world)
    assert world.order_statuses() == {order: "Completed"}
