"""Orderflow's exceptions, grouped by what the caller should do, not where they came from.

    OrderflowError
    ├── ConfigError       a setting, rules file or crosswalk is wrong: stop at start-up
    ├── RetriableError    a passing failure (5xx, timeout, lock): back off and try again
    │   └── BudgetExhausted   the org's API allowance is spent: back off for long
    ├── RecordError       this record or step cannot go on: mark it fallout, go on with the rest
    ├── FatalError        nothing can go on (refused login, missing permission): exit non-zero
    ├── OperatorError     an operator asked for what cannot be done (no such task, a move its
    │                     state does not allow): say why, change nothing, exit 2
    └── IllegalTransition a bug: a step was asked to move between states that do not connect

Adapters translate third-party exceptions into these at the edge (``raise ... from exc``), so
the core and the daemon never import ``requests`` or ``simple_salesforce`` to catch errors.
"""

from __future__ import annotations

import math

#: The longest ``Retry-After`` honoured (a day); a longer, negative or not finite one is
#: ignored (the retry policy's own delay applies).
MAX_RETRY_AFTER = 86400.0


class OrderflowError(Exception):
    """Base of every error Orderflow raises on purpose."""


class ConfigError(OrderflowError):
    """A setting, rules file or crosswalk is wrong; the process stops with this message."""


class RetriableError(OrderflowError):
    """A passing failure; the same call may succeed later.

    ``retry_after`` is the delay in seconds the other side asked for, when it said one
    that is finite and between 0 and :data:`MAX_RETRY_AFTER` (else None);
    ``code`` an error code fallout rules can name (blank: any retriable failure, ``*``).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, code: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after if _sane(retry_after) else None
        self.code = code


def _sane(seconds: float | None) -> bool:
    return seconds is not None and math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER


class BudgetExhausted(RetriableError):
    """The Salesforce org's rolling daily API allowance is spent; wait long, do not hammer."""


class RecordError(OrderflowError):
    """One record or step cannot be processed; it becomes fallout with this reason."""


class FatalError(OrderflowError):
    """Nothing can go on (refused credentials, missing permission); exit non-zero."""


class OperatorError(OrderflowError):
    """An operator's request cannot be carried out (unknown task, a move its state forbids)."""


class IllegalTransition(OrderflowError):
    """A step was moved between two states that do not connect: a bug in the caller."""
