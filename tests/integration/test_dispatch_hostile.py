"""Dispatch against hostile answers and failing calls: each answer recorded on its own, no
exception escapes the cycle, and the work completes exactly once when the system recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.cycle.run import run_cycle
from downstream.guard import GuardedSystem
from downstream.protocol import SubmitResult, TaskRequest
from downstream.stub_hostile import Hostile
from orchestration.states import StepState
from tests.integration.downstream_world import cycle_until, swap_stub, tasks
from tests.integration.world import World, run_until_settled


def moving_clock(ctx: Any) -> list[datetime]:
    now = [datetime.now(UTC) + timedelta(seconds=2)]
    ctx.clock = lambda: now[0]
    return now


def test_an_html_answer_fails_the_step_with_its_reason_and_the_others_go_on(
    world: World, monkeypatch
):
    billing = swap_stub(world, "billing", hostile=Hostile(kinds=("html",), every=1))
    ctx = world.context(monkeypatch)
    world.add_order("PLAT-PRO", "ADD-SSO")
    run_cycle(ctx)

    failed = tasks(ctx, "billing")
    assert [t.state for t in failed] == [StepState.FAILED] * 2
    assert all(t.message.startswith("billing: answered text/html, not JSON") for t in failed), [
        t.message for t in failed
    ]
    assert [t.state for t in tasks(ctx, "erp")] == [StepState.COMPLETED]

    billing.set_hostile(None)  # the proxy is fixed: answers are good again
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    stats = billing.stats()
    assert (stats["effects"], stats["duplicates"], stats["payload_doubles"]) == (2, 0, 0)


class Exploding:
    """A system whose client fails in a way nobody foresaw."""

    def __init__(self, name: str = "billing") -> None:
        self.name = name

    def submit(self, request: TaskRequest) -> SubmitResult:
        raise KeyError("boom")

    def status(self, external_ref: str) -> SubmitResult:
        raise KeyError("boom")

    def cancel(self, external_ref: str) -> SubmitResult:
        raise KeyError("boom")


def test_an_unexpected_exception_from_a_call_is_a_retriable_error_of_that_task(
    world: World, monkeypatch
):
    ctx = world.context(monkeypatch)
    ctx.systems = {**ctx.systems, "billing": Exploding()}
    world.add_order("PLAT-PRO")
    run_cycle(ctx)  # does not raise

    (task,) = tasks(ctx, "billing")
    assert task.state == StepState.FAILED
    assert task.message.startswith("billing: unexpected KeyError: 'boom'")
    assert [t.state for t in tasks(ctx, "erp")] == [StepState.COMPLETED]


def test_an_answer_that_cannot_be_recorded_does_not_lose_the_others(world: World, monkeypatch):
    ctx = world.context(monkeypatch)
    world.add_order("PLAT-PRO")
    answered = ctx.answered

    def refuse_billing(session, order_id, task, now):
        if task.system == "billing":
            raise ValueError("cannot record this one")
        answered(session, order_id, task, now)

    ctx.answered = refuse_billing
    run_cycle(ctx)

    (bad,) = tasks(ctx, "billing")
    assert bad.state == StepState.IN_PROGRESS and bad.dispatch_started_at is not None
    assert [t.state for t in tasks(ctx, "erp")] == [StepState.COMPLETED]

    ctx.answered = answered  # the next cycle resends it under the same key: a replay
    run_until_settled(ctx, world)
    (done,) = tasks(ctx, "billing")
    assert (done.state, done.resends) == (StepState.COMPLETED, 0)
    assert world.stubs["billing"].stats()["replays"] >= 1
    assert world.stubs["billing"].stats()["effects"] == 1


def test_a_status_poll_that_fails_unexpectedly_leaves_the_step_waiting(world: World, monkeypatch):
    swap_stub(world, "provisioning", completion="status", complete_after=None)
    ctx = world.context(monkeypatch, provisioning_status_poll_interval=0)
    world.add_order("PLAT-PRO")
    cycle_until(ctx, lambda: any(t.external_ref for t in tasks(ctx, "provisioning")))

    exploding = GuardedSystem(Exploding("provisioning"), status_poll_interval=0.001)
    ctx.systems = {**ctx.systems, "provisioning": exploding}
    run_cycle(ctx)  # does not raise

    (task,) = tasks(ctx, "provisioning")
    assert (task.state, task.external_ref) == (StepState.IN_PROGRESS, "PRV-000001")
