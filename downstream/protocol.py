"""The one seam to a downstream system (ERP, billing, provisioning).

A system takes a task (:meth:`DownstreamSystem.submit`), tells where an accepted task
stands (:meth:`~DownstreamSystem.status`) and can be asked to stop one
(:meth:`~DownstreamSystem.cancel`). Systems that keep documents Orderflow can compare
against Salesforce (the ERP) also implement :class:`DocumentSource`.

Errors follow :mod:`orchestration.errors`; two refinements of ``RetriableError`` say why a
call did not happen, because the daemon treats them differently from a 503:

    RetriableError
    ├── Unreachable     no connection or no answer at all (counts towards going offline)
    └── SystemOffline   the system is marked offline: nothing was sent, no retry is used up
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from orchestration.errors import RetriableError


class TaskRequest(BaseModel):
    """What Orderflow asks a system to do: one step of one plan revision."""

    model_config = ConfigDict(frozen=True)

    system: str
    action: str
    idempotency_key: str
    step_ref: str
    payload: dict[str, Any]
    #: Sent with the task so the system's callback can say which task it finished.
    correlation: str | None = None
    #: The rule and step key it comes from: its contract, and where a refusal points.
    rule: str = ""
    key: str = ""


class Outcome(StrEnum):
    COMPLETED = "completed"
    ACCEPTED = "accepted"  # the system will finish later (callback or status poll)
    FAILED = "failed"  # a permanent answer: retrying the same request will not help


class SubmitResult(BaseModel):
    """A system's answer to a submit, a status query or a cancel."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    external_ref: str | None = None
    message: str = ""
    code: str = ""


class Document(BaseModel):
    """A document a system holds (an ERP invoice or sales order, a subscription), as listed
    for reconciliation."""

    model_config = ConfigDict(frozen=True)

    number: str
    kind: str = ""  # what made it, when the system says (the stubs: the action)
    source_id: str | None = None  # the Salesforce record it came from, when the system knows
    source_number: str | None = None
    issued_on: date | None = None
    amount: float | None = None
    quantities: dict[str, float] = {}  # product -> quantity


class Unreachable(RetriableError):
    """No connection could be made, or the system did not answer in time."""


class SystemOffline(RetriableError):
    """The system is marked offline: the call was not made."""


@runtime_checkable
class DownstreamSystem(Protocol):
    """A system Orderflow sends tasks to.

    Each call returns the system's answer or raises
    :class:`orchestration.errors.RetriableError` for a passing failure. Sending the same
    ``idempotency_key`` twice must never make a second effect.
    """

    name: str

    def submit(self, request: TaskRequest) -> SubmitResult: ...

    def status(self, external_ref: str) -> SubmitResult:
        """Where an accepted task stands: ACCEPTED (still running), COMPLETED or FAILED;
        FAILED with code ``not_found`` when the system does not know the reference."""
        ...

    def cancel(self, external_ref: str) -> SubmitResult: ...


@runtime_checkable
class DocumentSource(Protocol):
    """A system that can list the documents it holds for a date range."""

    name: str

    def documents(self, since: date, until: date) -> list[Document]: ...
