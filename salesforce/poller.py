"""Incremental polling: which window of SystemModstamp to read, and the SOQL that reads it.

Peers lose records three ways: a transaction that commits after the cursor moved past its
timestamp, many rows sharing one timestamp, and a ``>=`` cursor with LIMIT that loops. So a
window reaches back ``overlap`` before the watermark (late commits land inside it), ends a
few seconds before the query starts (rows still committing are read next time), reads
every page instead of LIMIT, and the caller processes rows idempotently on (Id, content).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ORDER_FIELDS = (
    "Id",
    "OrderNumber",
    "AccountId",
    "Status",
    "Type",
    "EffectiveDate",
    "EndDate",
    "ActivatedDate",
    "Description",
    "SystemModstamp",
)
LINE_FIELDS = (
    "Id",
    "Product2Id",
    "PricebookEntryId",
    "Quantity",
    "UnitPrice",
    "ServiceDate",
    "EndDate",
)
PRODUCT_FIELDS = ("ProductCode", "Family", "Name")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Rows with ``after < SystemModstamp <= until``."""

    after: datetime
    until: datetime

    def soql(self) -> str:
        return (
            f"SystemModstamp > {soql_datetime(self.after)} "
            f"AND SystemModstamp <= {soql_datetime(self.until)}"
        )


def next_window(
    watermark: datetime | None, now: datetime, *, overlap: timedelta, settle: timedelta
) -> Window:
    """The window to poll at ``now``; its ``until`` is the next watermark once it is done."""
    until = (now - settle).replace(microsecond=0)
    after = EPOCH if watermark is None else min(watermark - overlap, until)
    return Window(after=after.replace(microsecond=0), until=until)


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A SOQL string literal, quoted and escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def order_query(
    window: Window,
    *,
    statuses: Iterable[str],
    order_fields: Iterable[str] = ORDER_FIELDS,
    line_fields: Iterable[str] = LINE_FIELDS,
    product_fields: Iterable[str] = PRODUCT_FIELDS,
) -> str:
    """Orders in the window with their lines and products, in one query (a child subquery)."""
    lines = [*line_fields, *(f"Product2.{f}" for f in product_fields)]
    wanted = ", ".join(soql_string(s) for s in statuses)
    return (
        f"SELECT {', '.join(order_fields)}, "
        f"(SELECT {', '.join(lines)} FROM OrderItems ORDER BY Id) "
        f"FROM Order WHERE Status IN ({wanted}) AND {window.soql()} "
        "ORDER BY SystemModstamp, Id"
    )
