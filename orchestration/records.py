"""The commercial records the core works on, built once at the boundary from polled rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class LineAction(StrEnum):
    """What a decomposed line asks for (``line.action`` in conditions)."""

    ADD = "Add"
    AMEND = "Amend"
    NO_CHANGE = "No Change"
    RENEW = "Renew"
    CANCEL = "Cancel"


#: Fields the core derives rather than polls, by scope: conditions and mappings may read them.
DERIVED_FIELDS = {"line": ("action",)}


class OrderLine(BaseModel):
    """One OrderItem with its product's fields, flattened (``Product2.ProductCode`` etc.)."""

    model_config = ConfigDict(frozen=True)

    id: str
    number: int
    fields: dict[str, Any]
    product: dict[str, Any]
    action: LineAction = LineAction.ADD

    @property
    def product_label(self) -> str:
        return str(self.product.get("ProductCode") or self.fields.get("Product2Id") or "?")


class Order(BaseModel):
    """An Order and its lines, as polled from Salesforce."""

    model_config = ConfigDict(frozen=True)

    id: str
    number: str
    fields: dict[str, Any]
    lines: tuple[OrderLine, ...]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Order:
        """Build from a Salesforce Order row with an ``OrderItems`` child subquery, read to
        its end (salesforce.children): a first page alone is refused, never planned."""
        children = record.get("OrderItems") or {}
        if isinstance(children, dict) and children.get("done") is False:
            raise ValueError(
                f"OrderItems not read completely: {len(children.get('records', []))} of "
                f"{children.get('totalSize')} lines"
            )
        rows = children.get("records", []) if isinstance(children, dict) else []
        rows = sorted(rows, key=lambda r: str(r.get("Id")))
        lines = tuple(
            OrderLine(
                id=str(row["Id"]),
                number=n,
                fields=_plain(row),
                product=_plain(row.get("Product2") or {}),
                action=derive_action(row),
            )
            for n, row in enumerate(rows, start=1)
        )
        return cls(
            id=str(record["Id"]),
            number=str(record.get("OrderNumber") or record["Id"]),
            fields=_plain(record),
            lines=lines,
        )


def derive_action(row: dict[str, Any]) -> LineAction:
    """The action of a polled line as it reads on its own: a line that points to an
    ``OriginalOrderItemId`` changes that line (Amend, or No Change for a zero delta); any
    other is Add. Against the running plan, :mod:`orchestration.changes` settles it (a
    delta that takes a line to nothing is Cancel)."""
    if row.get("OriginalOrderItemId"):
        return LineAction.NO_CHANGE if not row.get("Quantity") else LineAction.AMEND
    return LineAction.ADD


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Drop Salesforce's ``attributes`` and nested relationship objects."""
    return {
        key: value
        for key, value in row.items()
        if key != "attributes" and not isinstance(value, dict)
    }


def parse_datetime(raw: Any) -> datetime:
    """A Salesforce date or datetime (``2026-11-01``, ``...T10:00:00.000+0000``) as aware UTC."""
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, date):
        return datetime.combine(raw, time(), tzinfo=UTC)
    text = str(raw).strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
