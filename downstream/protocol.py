"""The one seam to a downstream system (ERP, billing, provisioning)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class TaskRequest(BaseModel):
    """What Orderflow asks a system to do: one step of one plan revision."""

    model_config = ConfigDict(frozen=True)

    system: str
    action: str
    idempotency_key: str
    step_ref: str
    payload: dict[str, Any]


class Outcome(StrEnum):
    COMPLETED = "completed"
    ACCEPTED = "accepted"  # the system will finish later (callback or status poll)
    FAILED = "failed"  # a permanent answer: retrying the same request will not help


class SubmitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    external_ref: str | None = None
    message: str = ""
    code: str = ""


class DownstreamSystem(Protocol):
    """A system Orderflow sends tasks to.

    ``submit`` returns the system's answer or raises
    :class:`orchestration.errors.RetriableError` for a passing failure. Sending the same
    ``idempotency_key`` twice must never make a second effect.
    """

    name: str

    def submit(self, request: TaskRequest) -> SubmitResult: ...
