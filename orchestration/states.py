"""Step and plan states, and the one table of legal step transitions."""

from __future__ import annotations

from enum import StrEnum

from orchestration.errors import IllegalTransition, OperatorError


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


class ErpSyncStatus(StrEnum):
    """What an Invoice shows of its transfer to the ERP (``ERP_Sync_Status__c``)."""

    PENDING = "Pending"
    TRANSFERRED = "Transferred"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


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
    # Amended or Discarded: a change replaced or dropped a step before it was sent.
    S.READY: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED, S.SKIPPED, S.AMENDED, S.DISCARDED}),
    S.ON_HOLD: frozenset({S.READY, S.AMENDED, S.DISCARDED}),
    # Skipped from In Progress: an operator skips a manual task instead of doing it.
    S.IN_PROGRESS: frozenset(
        {S.COMPLETED, S.FAILED, S.FATALLY_FAILED, S.ON_HOLD, S.CANCELED, S.SKIPPED}
    ),
    S.FAILED: frozenset({S.READY, S.FATALLY_FAILED, S.DISCARDED}),
    # An operator resolves fallout: retry, complete or skip.
    S.FATALLY_FAILED: frozenset({S.READY, S.COMPLETED, S.SKIPPED, S.AMENDED, S.DISCARDED}),
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


class Resolution(StrEnum):
    """What an operator can do to a task (``orderflow task retry|complete|skip``)."""

    RETRY = "retry"
    COMPLETE = "complete"
    SKIP = "skip"


_RESOLUTIONS: dict[Resolution, tuple[StepState, frozenset[StepState], str]] = {
    Resolution.RETRY: (
        S.READY,
        frozenset({S.FAILED, S.FATALLY_FAILED}),
        "Failed or Fatally Failed",
    ),
    Resolution.COMPLETE: (S.COMPLETED, frozenset({S.FATALLY_FAILED}), "Fatally Failed"),
    Resolution.SKIP: (S.SKIPPED, frozenset({S.FATALLY_FAILED}), "Fatally Failed"),
}


def resolution_target(verb: Resolution, state: StepState, kind: StepKind) -> StepState:
    """The state an operator's ``verb`` moves a task to, or :class:`OperatorError` saying why
    not. Complete and skip also work on a manual task waiting for its operator."""
    target, allowed, named = _RESOLUTIONS[verb]
    waiting_manual = kind is StepKind.MANUAL and state is S.IN_PROGRESS
    if state in allowed or (verb is not Resolution.RETRY and waiting_manual):
        check_transition(state, target)
        return target
    extra = "" if verb is Resolution.RETRY else ", or a manual task In Progress"
    raise OperatorError(f"cannot {verb.value} a task that is {state.value} (only {named}{extra})")
