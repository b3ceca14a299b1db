"""Payload mappings: fill a task's payload from source fields, constants and small transforms.

Forms a payload entry can take in the rules file::

    order_number: {from: order.OrderNumber}
    sku:          {from: product.ProductCode, transform: lookup, table: skus, default: GENERIC}
    start:        {from: line.ServiceDate, transform: date, format: "%Y%m%d"}
    amount_cents: {from: line.UnitPrice, transform: scale, factor: 100}
    currency:     {const: EUR}
    lines:        {each_line: {sku: {from: product.ProductCode}, qty: {from: line.Quantity}}}
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.conditions import Context, resolve
from orchestration.errors import RecordError
from orchestration.records import parse_datetime

Transform = Literal["upper", "lower", "date", "scale", "lookup", "int", "str"]


class Value(BaseModel):
    """One payload entry: exactly one of ``from``, ``const`` or ``each_line``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: str | None = Field(default=None, alias="from")
    const: Any = None
    each_line: dict[str, Value] | None = None
    transform: Transform | None = None
    format: str = "%Y-%m-%d"
    factor: float = 1.0
    table: str | None = None
    default: Any = None
    required: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> Value:
        forms = [self.source is not None, self.const is not None, self.each_line is not None]
        if sum(forms) != 1:
            raise ValueError("give exactly one of 'from', 'const' or 'each_line'")
        if self.transform == "lookup" and not self.table:
            raise ValueError("transform 'lookup' needs a 'table'")
        return self


Value.model_rebuild()
Payload = dict[str, Value]


def source_fields(payload: Payload) -> list[str]:
    """Every source field path a payload reads."""
    found: list[str] = []
    for value in payload.values():
        if value.source is not None:
            found.append(value.source)
        if value.each_line is not None:
            found.extend(source_fields(value.each_line))
    return found


def render(
    payload: Payload,
    context: Context,
    lines: list[Context],
    tables: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Fill a payload. ``lines`` are the contexts ``each_line`` iterates over."""
    result: dict[str, Any] = {}
    for name, spec in payload.items():
        if spec.each_line is not None:
            result[name] = [render(spec.each_line, line, [], tables) for line in lines]
            continue
        raw = spec.const if spec.source is None else resolve(spec.source, context)
        if raw is None:
            if spec.required:
                raise RecordError(f"payload field {name!r} needs {spec.source}, which is empty")
            raw = spec.default
        result[name] = _transform(name, spec, raw, tables) if raw is not None else None
    return result


def _transform(name: str, spec: Value, raw: Any, tables: dict[str, dict[str, Any]]) -> Any:
    try:
        match spec.transform:
            case None:
                return raw
            case "upper":
                return str(raw).upper()
            case "lower":
                return str(raw).lower()
            case "str":
                return str(raw)
            case "int":
                return int(float(raw))
            case "scale":
                scaled = float(raw) * spec.factor
                return int(scaled) if scaled.is_integer() else round(scaled, 6)
            case "date":
                return _as_date(raw).strftime(spec.format)
            case "lookup":
                table = tables[spec.table or ""]
                if str(raw) in table:
                    return table[str(raw)]
                if spec.default is not None:
                    return spec.default
                raise RecordError(f"payload field {name!r}: {raw!r} is not in table {spec.table!r}")
    except (ValueError, TypeError) as exc:
        raise RecordError(f"payload field {name!r}: cannot {spec.transform} {raw!r}") from exc
    raise AssertionError(spec.transform)  # pragma: no cover - Literal is exhaustive


def _as_date(raw: Any) -> date:
    return raw if isinstance(raw, date) else parse_datetime(raw).date()
