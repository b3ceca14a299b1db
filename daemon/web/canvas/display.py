"""How values read on the canvas: ages, times, state classes, payloads (Jinja2 filters)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any


def age(seconds: int | None) -> str:
    """3d 4h, 5h 12m, 4m, 12s: the two largest units."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def when(value: datetime | None) -> str:
    """A UTC time to the second, e.g. ``2026-05-01 14:03:09``."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def stamp(text: str | None) -> str:
    """An ISO 8601 text (as the budget keeps it) shown like :func:`when`."""
    if not text:
        return ""
    try:
        return when(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def clock(value: datetime | None) -> str:
    """The time of day only (``14:03``), for tight spaces."""
    return "" if value is None else value.strftime("%H:%M")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat().replace("+00:00", "Z")


def slug(text: str | None) -> str:
    """A CSS class word: ``Fatally Failed`` → ``fatally-failed``."""
    return re.sub(r"[^a-z0-9]+", "-", (text or "none").lower()).strip("-")


def pretty(value: Any) -> str:
    """A payload as indented JSON, keys sorted."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def clip(text: str | None, length: int) -> str:
    """At most ``length`` characters, an ellipsis marking a cut (SVG text cannot wrap)."""
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def wrap(text: str | None, length: int, count: int = 2) -> list[str]:
    """At most ``count`` lines of at most ``length`` characters, cut between words where
    it can; the last line clipped (SVG text does not wrap by itself)."""
    words = (text or "").split()
    lines: list[str] = []
    while words and len(lines) < count - 1:
        line = words.pop(0)
        while words and len(line) + 1 + len(words[0]) <= length:
            line += " " + words.pop(0)
        if len(line) > length:  # one long word: cut it, the rest on the next line
            words.insert(0, line[length:])
            line = line[:length]
        lines.append(line)
    if words:
        lines.append(clip(" ".join(words), length))
    return lines


DASH = "\u2013"  # an en dash: "no figure"


def percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f} %"


def thousands(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


FILTERS = {
    "age": age,
    "when": when,
    "clock": clock,
    "stamp": stamp,
    "iso": iso,
    "slug": slug,
    "pretty": pretty,
    "clip": clip,
    "wrap": wrap,
    "percent": percent,
    "thousands": thousands,
}
