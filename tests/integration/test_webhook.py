"""Notifications never block: a real local webhook that stalls, fails or answers late."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from daemon.channels.webhook import GIVE_UP_AFTER, RETRY_FIRST, Webhook
from daemon.cycle.run import run_cycle, sweep
from downstream.stubs import StubFaults
from tests.integration.downstream_world import swap_stub
from tests.integration.test_jeopardy import Clock, Hook
from tests.integration.world import World


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook that holds every request until the test sets ``release``."""
    found = Hook()
    found.release.clear()
    yield found
    found.release.set()
    found.server.shutdown()
    found.server.server_close()


START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_silent_webhook_never_holds_up_the_sweep_nor_the_stop(
    world: World, monkeypatch, hook: Hook
):
    # Four orders in Fallout, a webhook that answers nothing until the test lets it.
    swap_stub(world, "provisioning", faults=StubFaults(reject_skus=frozenset({"LIC-PLATFORM-PRO"})))
    for _ in range(4):
        world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch, notify_webhook_url=hook.url)
    for _ in range(4):
        run_cycle(ctx)
    assert set(world.order_statuses().values()) == {"Fallout"}
    webhook = ctx.webhook
    assert webhook is not None
    webhook.start()
    # The sweep queues all four and returns while the webhook has answered none of them.
    assert sweep(ctx).notified == 4
    assert hook.arrived.wait(30), "the webhook's thread sends"
    assert hook.texts == [] and webhook.pending == 4
    assert sweep(ctx).notified == 0, "each change is queued once"
    # Stopping does not wait for the request in flight.
    webhook.close()
    assert hook.texts == []
    hook.release.set()


def test_a_failing_message_is_retried_with_back_off_and_dropped_after_a_day(hook: Hook, caplog):
    hook.release.set()
    hook.status = 500
    clock = Clock(START)
    webhook = Webhook(SecretStr(hook.url), clock=clock)
    queued_at = clock.now
    assert webhook.post("Order 00000101 is Late")
    assert webhook.deliver() == 0 and hook.requests == 1
    assert webhook.deliver() == 0 and hook.requests == 1, "not again before its back-off"
    clock.now += RETRY_FIRST
    assert webhook.deliver() == 0 and hook.requests == 2
    clock.now += RETRY_FIRST  # the back-off doubled: not due yet
    assert webhook.deliver() == 0 and hook.requests == 2
    clock.now += RETRY_FIRST
    assert webhook.deliver() == 0 and hook.requests == 3
    assert webhook.pending == 1
    clock.now = queued_at + GIVE_UP_AFTER
    caplog.set_level(logging.WARNING)
    assert webhook.deliver() == 0 and hook.requests == 4
    assert webhook.pending == 0
    assert "notification dropped after 4 attempts over a day: 'Order 00000101 is Late'" in (
        caplog.text
    )
    assert "hook-token" not in caplog.text
    hook.status = 200
    clock.now += timedelta(days=1)
    assert webhook.deliver() == 0 and hook.requests == 4, "dropped for good"


def test_a_stalled_webhook_costs_a_short_timeout_and_the_message_waits(hook: Hook):
    clock = Clock(START)
    webhook = Webhook(SecretStr(hook.url), timeout=0.2, clock=clock)
    assert webhook.post("Order 00000102 is At Risk")
    assert webhook.deliver() == 0 and webhook.pending == 1
    hook.release.set()
    clock.now += RETRY_FIRST
    assert webhook.deliver() == 1 and webhook.pending == 0
    assert hook.texts[-1] == "Order 00000102 is At Risk"  # (the stalled one may land too)


def test_the_queue_is_bounded(hook: Hook):
    webhook = Webhook(SecretStr(hook.url), clock=Clock(START), max_queued=2)
    assert [webhook.post(f"message {n}") for n in range(3)] == [True, True, False]
    assert webhook.pending == 2
