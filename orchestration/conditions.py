"""Conditions of the rules file: comparisons on order, line and product fields, with AND/OR/NOT.

A condition is evaluated against a *context*: a mapping from scope (``order``, ``line``,
``product``) to that record's fields. Missing fields compare as null.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Context = dict[str, dict[str, Any]]

Operator = Literal["=", "!=", "<", ">", "<=", ">=", "in", "not in", "like", "exists"]


class Comparison(BaseModel):
    """``{field: product.Family, op: "=", value: License}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    op: Operator = "="
    value: Any = None

    def holds(self, context: Context) -> bool:
        actual = resolve(self.field, context)
        if self.op == "exists":
            return (actual is not None) == bool(self.value if self.value is not None else True)
        if self.op == "in":
            return actual in _as_list(self.value)
        if self.op == "not in":
            return actual not in _as_list(self.value)
        if self.op == "like":
            pattern = str(self.value).replace("%", "*").replace("_", "?")
            return actual is not None and fnmatch.fnmatchcase(str(actual), pattern)
        if self.op == "=":
            return bool(_comparable(actual) == _comparable(self.value))
        if self.op == "!=":
            return bool(_comparable(actual) != _comparable(self.value))
        if actual is None or self.value is None:
            return False
        left, right = _comparable(actual), _comparable(self.value)
        try:
            return bool(
                {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[
                    self.op
                ]
            )
        except TypeError:
            return False


class AllOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    all: list[Condition]

    def holds(self, context: Context) -> bool:
        return all(c.holds(context) for c in self.all)


class AnyOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    any: list[Condition]

    def holds(self, context: Context) -> bool:
        return any(c.holds(context) for c in self.any)


class NotOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    negated: Condition = Field(alias="not")

    def holds(self, context: Context) -> bool:
        return not self.negated.holds(context)


Condition = Comparison | AllOf | AnyOf | NotOf

for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()


def fields_of(condition: Condition) -> list[str]:
    """Every field path a condition reads, to check them against what is polled."""
    return [c.field for c in walk(condition)]


def walk(condition: Condition) -> list[Comparison]:
    """Every comparison inside a condition."""
    if isinstance(condition, Comparison):
        return [condition]
    if isinstance(condition, AllOf):
        return [c for sub in condition.all for c in walk(sub)]
    if isinstance(condition, AnyOf):
        return [c for sub in condition.any for c in walk(sub)]
    return walk(condition.negated)


def resolve(path: str, context: Context) -> Any:
    """``"line.Quantity"`` → the value in the context, or None."""
    scope, _, name = path.partition(".")
    return context.get(scope, {}).get(name)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _comparable(value: Any) -> Any:
    # Salesforce returns numbers as floats (Quantity 5.0); rules say 5.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    return value
