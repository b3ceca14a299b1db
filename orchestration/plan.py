"""The plan engine: given a plan's steps and the time, which steps move where (pure).

The daemon loads a plan's steps, asks :func:`advance` for the moves, applies them through
the store (one audit row each) and dispatches what became Ready. Nothing here does I/O.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from orchestration.rules import RetryPolicy
from orchestration.states import (
    DONE_STATES,
    FINAL_STATES,
    FulfillmentStatus,
    StepKind,
    StepState,
    check_transition,
)

S = StepState


class StepView(BaseModel):
    """What the engine needs to know of a step."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    kind: StepKind
    state: StepState
    depends_on: tuple[str, ...] = ()
    system: str | None = None
    not_before: datetime | None = None
    delay: timedelta | None = None
    next_attempt_at: datetime | None = None


class Move(BaseModel):
    """One state change the engine asks for."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    to: StepState
    reason: str
    not_before: datetime | None = None


def advance(steps: Sequence[StepView], now: datetime, offline: Iterable[str] = ()) -> list[Move]:
    """Moves that follow from the steps' states at ``now``, applied until nothing changes.

    Pending steps whose dependencies are done become Ready (or Scheduled when they have a
    time to wait for); milestones complete as soon as they are Ready; Scheduled steps and
    Failed steps whose back-off has passed become Ready; Ready callouts to an offline system
    go On Hold and On Hold ones return when their system is back.
    """
    offline = set(offline)
    state = {s.step_id: s.state for s in steps}
    moves: list[Move] = []

    def move(step: StepView, to: StepState, reason: str, at: datetime | None = None) -> None:
        check_transition(state[step.step_id], to)
        state[step.step_id] = to
        moves.append(Move(step_id=step.step_id, to=to, reason=reason, not_before=at))

    changed = True
    while changed:
        changed = False
        for step in steps:
            current = state[step.step_id]
            if current is S.PENDING and all(state.get(d) in DONE_STATES for d in step.depends_on):
                wait_until = step.not_before or (now + step.delay if step.delay else None)
                if wait_until is not None and now < wait_until:
                    move(step, S.SCHEDULED, "waiting for its planned start", wait_until)
                else:
                    move(step, S.READY, "dependencies done")
                changed = True
            elif current is S.SCHEDULED and _due(step.not_before, now, moves, step.step_id):
                move(step, S.READY, "planned start reached")
                changed = True
            elif current is S.FAILED and _due(step.next_attempt_at, now, [], step.step_id):
                move(step, S.READY, "retry")
                changed = True
            elif current is S.READY and step.kind is StepKind.MILESTONE:
                move(step, S.COMPLETED, "milestone reached")
                changed = True
            elif current is S.READY and step.system in offline:
                move(step, S.ON_HOLD, f"{step.system} is offline")
                changed = True
            elif current is S.ON_HOLD and step.system not in offline:
                move(step, S.READY, f"{step.system} is back online")
                changed = True
    return moves


def next_move_at(steps: Iterable[StepView], now: datetime) -> datetime | None:
    """The first time after ``now`` at which time alone moves a step (a planned start, a
    retry's back-off over); None when only an answer or an operator can move one."""
    times = [
        at
        for s in steps
        for at in (
            s.not_before if s.state is S.SCHEDULED else None,
            s.next_attempt_at if s.state is S.FAILED else None,
        )
        if at is not None and at > now
    ]
    return min(times, default=None)


def _due(not_before: datetime | None, now: datetime, moves: list[Move], step_id: str) -> bool:
    # A step scheduled in this same call keeps the time it was given there.
    for m in reversed(moves):
        if m.step_id == step_id and m.not_before is not None:
            return now >= m.not_before
    return not_before is None or now >= not_before


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> timedelta:
    """Exponential back-off with jitter for the given (1-based) failed attempt."""
    base = policy.initial.total_seconds() * policy.factor ** max(attempt - 1, 0)
    capped = min(base, policy.maximum.total_seconds())
    spread = capped * policy.jitter
    return timedelta(seconds=max(0.0, capped + rng.uniform(-spread, spread)))


def rollup(states: Iterable[StepState]) -> tuple[FulfillmentStatus, int]:
    """The order's fulfillment status and progress percent from its steps' states."""
    live = [s for s in states if s not in (S.AMENDED, S.DISCARDED)]
    if not live:
        return FulfillmentStatus.NOT_STARTED, 0
    done = sum(1 for s in live if s in FINAL_STATES)
    progress = round(100 * done / len(live))
    if any(s is S.FATALLY_FAILED for s in live):
        return FulfillmentStatus.FALLOUT, progress
    if done == len(live):
        if all(s is S.CANCELED for s in live):
            return FulfillmentStatus.CANCELLED, progress
        return FulfillmentStatus.COMPLETED, progress
    started = any(s not in (S.PENDING, S.READY, S.SCHEDULED) for s in live)
    return (FulfillmentStatus.IN_PROGRESS if started else FulfillmentStatus.NOT_STARTED), progress
