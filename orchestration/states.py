"""Step and plan states, and the one table of legal step transitions."""

from __future__ import annotations

from enum import StrEnum

from orchestration.errors import IllegalTransition


class StepKind(StrEnum):
    CALLOUT = "callout"
    AUTO = "auto"
    MANUAL = "manual"
    MILESTONE = "milestone"
    PAUSE = "pause"
    SCHEDULED = "scheduled"


class StepState(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "In Progress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    FATALLY_FAILED = "Fatally Failed"
    SKIPPED = "Skipped"
    ON_HOLD = "On Hold"
    AMENDED = "Amended"
    CANCELED = "Canceled"
    DISCARDED = "Discarded"


class PlanState(StrEnum):
    NOT_STARTED = "Not Started"
    IN_PROGRESS = "In Progress"
    FROZEN = "Frozen"
    COMPLETED = "Completed"


class FulfillmentStatus(StrEnum):
    """What the Order shows in Salesforce (``Fulfillment_Status__c``)."""

    NOT_STARTED = "Not Started"
    IN_PROGRESS = "In Progress"
    COMPLETED = "Completed"
    FALLOUT = "Fallout"
    CANCELLED = "Cancelled"
    SUPERSEDED = "Superseded"


S = StepState

#: States a dependent step may follow: the dependency's work is settled for good.
DONE_STATES = frozenset({S.COMPLETED, S.SKIPPED})
#: States that end a step's life in its plan revision.
FINAL_STATES = frozenset({S.COMPLETED, S.SKIPPED, S.AMENDED, S.CANCELED, S.DISCARDED})
#: States in which a step waits for a person.
NEEDS_OPERATOR = frozenset({S.FATALLY_FAILED})

_TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    S.PENDING: frozenset({S.READY, S.SCHEDULED, S.SKIPPED, S.AMENDED, S.DISCARDED}),
    S.SCHEDULED: frozenset({S.READY, S.AMENDED, S.DISCARDED}),
    S.READY: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED, S.SKIPPED, S.DISCARDED}),
    S.ON_HOLD: frozenset({S.READY, S.DISCARDED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED, S.FATALLY_FAILED, S.ON_HOLD, S.CANCELED}),
    S.FAILED: frozenset({S.READY, S.FATALLY_FAILED, S.DISCARDED}),
    # An operator resolves fallout: retry, complete or skip.
    S.FATALLY_FAILED: frozenset({S.READY, S.COMPLETED, S.SKIPPED, S.DISCARDED}),
    S.COMPLETED: frozenset({S.CANCELED}),
    S.SKIPPED: frozenset(),
    S.AMENDED: frozenset(),
    S.CANCELED: frozenset(),
    S.DISCARDED: frozenset(),
}


def check_transition(old: StepState, new: StepState) -> None:
    """Raise :class:`IllegalTransition` unless a step may move from ``old`` to ``new``."""
    if new not in _TRANSITIONS[old]:
        raise IllegalTransition(f"a step cannot go from {old.value!r} to {new.value!r}")
