"""Auto steps: internal work done by registered Python functions, no outside call.

A function takes an :class:`AutoCall` and returns a short message (or None). It raises
:class:`RecordError` when the step cannot succeed (the step becomes fallout with that reason)
and :class:`RetriableError` when it may succeed later (retried as the rules say). Register
one with ``@register("name")``; a rules file naming an unknown function is refused at load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestration.errors import RecordError
from orchestration.records import parse_datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoCall:
    """What an auto function is given: the step's rendered payload and where it belongs."""

    order_id: str
    step_id: str
    payload: dict[str, Any]
    now: datetime


AutoFunction = Callable[[AutoCall], str | None]

#: The functions auto steps may name, by name.
REGISTRY: dict[str, AutoFunction] = {}


def register(name: str) -> Callable[[AutoFunction], AutoFunction]:
    """Add a function to the registry under ``name``."""

    def add(function: AutoFunction) -> AutoFunction:
        if name in REGISTRY:
            raise ValueError(f"auto function {name!r} is registered twice")
        REGISTRY[name] = function
        return function

    return add


@register("require_fields")
def require_fields(call: AutoCall) -> str:
    """Check that every payload value is filled before the callouts that need them run."""
    empty = sorted(k for k, v in call.payload.items() if v is None or v == "" or v == [])
    if empty:
        raise RecordError("empty before fulfilment: " + ", ".join(empty))
    return f"{len(call.payload)} fields present"


@register("check_term")
def check_term(call: AutoCall) -> str:
    """Check a subscription term (``start``, ``end``): the end is not before the start.

    Returns the term in whole months, which the step keeps as its message.
    """
    try:
        start = parse_datetime(call.payload["start"]).date()
        end = parse_datetime(call.payload["end"]).date()
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"term needs a start and an end date ({exc})") from exc
    if end < start:
        raise RecordError(f"the term ends ({end}) before it starts ({start})")
    months = (end.year - start.year) * 12 + end.month - start.month + (end.day >= start.day)
    return f"term of {months} months"


@register("log_event")
def log_event(call: AutoCall) -> None:
    """Write the payload's ``message`` to the log, as a marker in the order's history."""
    log.info("order %s: %s", call.order_id, call.payload.get("message") or call.step_id)
