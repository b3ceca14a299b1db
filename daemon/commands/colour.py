"""Colour for the words an operator scans for: PASS/FAIL and states, on a terminal only.

- **When:** stdout is a terminal and ``NO_COLOR`` is not set (https://no-color.org); never
  in a pipe, a file or ``--json``.
- **Which:** green for what went well (PASS, Completed, On Track), yellow for what waits or
  may go wrong (SKIP, Failed, At Risk, On Hold, Flagged), red for what needs a person (FAIL,
  Fatally Failed, Fallout, Late).
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

_GREEN, _YELLOW, _RED = "32", "33", "31"
_CODES = {
    "pass": _GREEN,
    "completed": _GREEN,
    "on track": _GREEN,
    "skip": _YELLOW,
    "failed": _YELLOW,
    "at risk": _YELLOW,
    "on hold": _YELLOW,
    "flagged": _YELLOW,
    "fail": _RED,
    "fatally failed": _RED,
    "fallout": _RED,
    "late": _RED,
}


def enabled(stream: TextIO | None = None) -> bool:
    """Whether to colour what goes to ``stream`` (stdout by default)."""
    out = sys.stdout if stream is None else stream
    return not os.environ.get("NO_COLOR") and out.isatty()


def paint(text: str, word: str | None = None, *, on: bool | None = None) -> str:
    """``text`` coloured for ``word`` (``text`` itself by default, padding allowed), or as
    it is when colour is off or the word has no colour."""
    code = _CODES.get((word if word is not None else text).strip().lower())
    if code is None or not (enabled() if on is None else on):
        return text
    return f"\033[{code}m{text}\033[0m"
