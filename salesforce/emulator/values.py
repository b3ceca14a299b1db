"""Field values as the REST API writes them: datetimes, dates, numbers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_datetime(value: datetime) -> str:
    """Salesforce's wire form: ``2026-11-27T00:38:00.000+0000`` (UTC, milliseconds)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 datetime as Salesforce accepts it (no zone means UTC)."""
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac or "0").ljust(6, "0"))
    tz = "+00:00" if zone in (None, "Z") else zone
    if len(tz) == 5:
        tz = tz[:3] + ":" + tz[3:]
    stamp = f"{year}-{month}-{day}T{hour}:{minute}:{second}{tz}"
    return datetime.fromisoformat(stamp).replace(microsecond=micro)


def normalize_datetime(text: str) -> str:
    """Any accepted datetime text in the canonical wire form (sorts by instant)."""
    return format_datetime(parse_datetime(text))


def normalize_date(text: str) -> str:
    """A ``YYYY-MM-DD`` date, validated."""
    if not _DATE.match(text):
        raise ValueError(f"not a date: {text!r}")
    date.fromisoformat(text)
    return text


def now_ms() -> datetime:
    """Now in UTC, truncated to milliseconds like SystemModstamp."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
