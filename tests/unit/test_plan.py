from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.errors import IllegalTransition
from orchestration.plan import StepView, advance, retry_delay, rollup
from orchestration.rules import RetryPolicy
from orchestration.states import (
    DONE_STATES,
    FINAL_STATES,
    FulfillmentStatus,
    StepKind,
    StepState,
    check_transition,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
S = StepState


def step(step_id, state=S.PENDING, deps=(), kind=StepKind.CALLOUT, **extra):
    return StepView(
        step_id=step_id, kind=kind, state=state, depends_on=tuple(deps), system="erp", **extra
    )


def test_only_steps_whose_dependencies_are_done_become_ready():
    moves = advance([step("a"), step("b", deps=["a"])], NOW)
    assert [(m.step_id, m.to) for m in moves] == [("a", S.READY)]


def test_milestones_complete_when_reached_and_unblock_what_follows():
    steps = [
        step("a", S.COMPLETED),
        step("m", deps=["a"], kind=StepKind.MILESTONE),
        step("b", deps=["m"]),
    ]
    moves = [(m.step_id, m.to) for m in advance(steps, NOW)]
    assert moves == [("m", S.READY), ("m", S.COMPLETED), ("b", S.READY)]


def test_scheduled_steps_wait_for_their_time_with_the_clock_injected():
    later = NOW + timedelta(hours=2)
    waiting = step("s", kind=StepKind.SCHEDULED, not_before=later)
    (move,) = advance([waiting], NOW)
    assert (move.to, move.not_before) == (S.SCHEDULED, later)
    assert advance([waiting.model_copy(update={"state": S.SCHEDULED})], NOW) == []
    (due,) = advance([waiting.model_copy(update={"state": S.SCHEDULED})], later)
    assert due.to is S.READY


def test_a_delay_without_a_date_counts_from_when_the_step_could_start():
    (move,) = advance([step("s", kind=StepKind.SCHEDULED, delay=timedelta(minutes=5))], NOW)
    assert move.not_before == NOW + timedelta(minutes=5)


def test_failed_steps_come_back_after_their_back_off():
    failed = step("f", S.FAILED, next_attempt_at=NOW + timedelta(seconds=30))
    assert advance([failed], NOW) == []
    assert advance([failed], NOW + timedelta(seconds=30))[0].to is S.READY


def test_offline_system_puts_ready_callouts_on_hold_and_back():
    (hold,) = advance([step("a", S.READY)], NOW, offline={"erp"})
    assert hold.to is S.ON_HOLD
    (back,) = advance([step("a", S.ON_HOLD)], NOW)
    assert back.to is S.READY


def test_illegal_transitions_raise():
    with pytest.raises(IllegalTransition):
        check_transition(S.COMPLETED, S.READY)
    with pytest.raises(IllegalTransition):
        check_transition(S.PENDING, S.COMPLETED)
    check_transition(S.FATALLY_FAILED, S.READY)  # an operator's retry is legal


def test_retry_delay_grows_exponentially_up_to_the_cap_with_bounded_jitter():
    policy = RetryPolicy(initial=timedelta(seconds=10), factor=2, maximum=timedelta(seconds=60))
    rng = random.Random(1)
    delays = [retry_delay(policy, n, rng).total_seconds() for n in range(1, 6)]
    for got, base in zip(delays, [10, 20, 40, 60, 60], strict=True):
        assert base * 0.8 <= got <= base * 1.2


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.PENDING, S.READY], (FulfillmentStatus.NOT_STARTED, 0)),
        ([S.COMPLETED, S.IN_PROGRESS], (FulfillmentStatus.IN_PROGRESS, 50)),
        ([S.COMPLETED, S.FATALLY_FAILED], (FulfillmentStatus.FALLOUT, 50)),
        ([S.COMPLETED, S.SKIPPED, S.DISCARDED], (FulfillmentStatus.COMPLETED, 100)),
        ([S.CANCELED, S.CANCELED], (FulfillmentStatus.CANCELLED, 100)),
    ],
)
def test_rollup(states, expected):
    assert rollup(states) == expected


# Property: on random DAGs with random outcomes, driving the engine always ends, never runs a
# step before its dependencies, and never completes the plan with a step unfinished.


@st.composite
def dags(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    kinds = [draw(st.sampled_from(list(StepKind))) for _ in range(n)]
    delays = [
        timedelta(minutes=draw(st.integers(0, 3)))
        if kind in (StepKind.PAUSE, StepKind.SCHEDULED)
        else None
        for kind in kinds
    ]
    deps = [
        sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else [])
        for i in range(n)
    ]
    outcomes = draw(st.lists(st.sampled_from(["ok", "fail", "fatal"]), min_size=n, max_size=n))
    return kinds, deps, outcomes, delays


@settings(max_examples=150, deadline=None)
@given(dags())
def test_random_plans_always_end_in_dependency_order(dag):
    kinds, deps, outcomes, delays = dag
    ids = [f"s{i}" for i in range(len(kinds))]
    state = dict.fromkeys(ids, S.PENDING)
    tried: dict[str, int] = {}
    started_order: list[str] = []
    waits: dict[str, datetime] = {}
    now = NOW
    for _ in range(200):
        views = [
            step(
                i,
                state[i],
                [ids[d] for d in deps[n]],
                kind=kinds[n],
                delay=delays[n],
                not_before=waits.get(i),
            )
            for n, i in enumerate(ids)
        ]
        for move in advance(views, now):
            if move.to is S.READY or move.to is S.COMPLETED:
                for dep in views[ids.index(move.step_id)].depends_on:
                    assert state[dep] in DONE_STATES, "ran before its dependency"
            state[move.step_id] = move.to
            if move.not_before is not None:
                assert move.not_before > now, "scheduled for later, not now"
                waits[move.step_id] = move.not_before
        ready = [i for i in ids if state[i] is S.READY]
        for i in ready:
            started_order.append(i)
            outcome = outcomes[ids.index(i)]
            tried[i] = tried.get(i, 0) + 1
            if outcome == "ok" or (outcome == "fail" and tried[i] > 1):
                state[i] = S.COMPLETED
            elif outcome == "fail":
                state[i] = S.FAILED
            else:
                # An operator skips fatal fallout, as `orderflow task skip` does.
                state[i] = S.SKIPPED
        status, _ = rollup(state.values())
        if status is FulfillmentStatus.COMPLETED:
            assert all(s in FINAL_STATES for s in state.values()), "completed with work left"
        if all(s in FINAL_STATES for s in state.values()):
            break
        now += timedelta(minutes=1)
    assert all(s in FINAL_STATES for s in state.values()), state
    status, progress = rollup(state.values())
    assert (status, progress) == (FulfillmentStatus.COMPLETED, 100)
