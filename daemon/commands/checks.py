"""The doctor's checks: each a named pass, fail or skip with one line of detail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from daemon import logs

Status = Literal["pass", "fail", "skip"]
#: Below this share of the daily allowance left, the budget check fails.
LOW_BUDGET = 0.10


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def guard(name: str, check: Callable[[], str]) -> Check:
    """Run a check: its detail on success, the error (redacted) on failure."""
    try:
        return Check(name, "pass", check())
    except Exception as exc:
        return fail(name, exc)


def fail(name: str, exc: BaseException) -> Check:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return Check(name, "fail", logs.redact(text))
