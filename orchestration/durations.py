"""Durations as people write them in a rules file: ``90s``, ``15m``, ``2h``, ``1d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(value: Any) -> Any:
    """``"15m"`` → 15 minutes; a bare number is seconds; anything else raises ValueError.

    ISO 8601 durations (``PT15M``, how a stored policy serialises) are left to pydantic.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and value.startswith(("P", "-P")):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration like 90s, 15m, 2h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
