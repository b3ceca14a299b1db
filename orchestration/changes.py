"""Changes to an order in flight, recognised and merged into the order its plan must fulfil.

Three shapes of change reach a running plan (DOMAIN.md, "Changes to orders in flight"):

- a **change order**: a new Order whose lines point to the original lines
  (``OriginalOrderItemId``, or a legacy ``SBQQ__Subscription__c`` that remap resolved to
  such a line) with quantity deltas, negative for what is removed; lines pointing nowhere
  are new lines;
- the order **changed in place**: its lines' fields changed, lines added or gone;
- a **cancellation**: the Order's status set to a cancelled status, or a change order that
  takes every line to nothing.

Each is merged with the order the plan was last decomposed from (its snapshot) into the
*desired* order. Every line of it carries its action against that order: Add (new), Amend
(changed), No Change, or Cancel (gone; kept with its last fields, so what undoes it can
name it). The header stays the plan's, so steps keep their identity (an ERP order number
does not change because a change order has a number of its own). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from orchestration.records import LineAction, Order, OrderLine

ORIGINAL_ORDER = "OriginalOrderId"
ORIGINAL_LINE = "OriginalOrderItemId"
#: Line fields that may name the line a change amends by a legacy CPQ id, once remap has
#: replaced that id by the standard one (remap.inbound).
LEGACY_REFERENCES = ("SBQQ__Subscription__c",)
#: Line fields a change in place is judged on: what the line is, not when it was saved.
_VOLATILE = frozenset({"SystemModstamp", "LastModifiedDate", "IsDeleted", "TotalPrice"})


def original_line(line: OrderLine, known: Container[str]) -> str | None:
    """The line of an earlier order that ``line`` changes, if it points to one.

    ``OriginalOrderItemId`` wins; else a legacy reference field whose (resolved) value is
    one of the ``known`` line ids.
    """
    direct = line.fields.get(ORIGINAL_LINE)
    if direct:
        return str(direct)
    for name in LEGACY_REFERENCES:
        value = line.fields.get(name)
        if value and str(value) in known:
            return str(value)
    return None


def original_order(order: Order) -> str | None:
    """The order a change order says it changes (``OriginalOrderId``), if it says."""
    value = order.fields.get(ORIGINAL_ORDER)
    return str(value) if value else None


def is_change_order(order: Order, known_lines: Container[str]) -> bool:
    """A change order: it names an original order, or one of its lines an original line."""
    return original_order(order) is not None or any(
        original_line(line, known_lines) is not None for line in order.lines
    )


def quantity(line: OrderLine) -> float:
    raw = line.fields.get("Quantity")
    try:
        return float(raw) if raw is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def merge_change_order(base: Order, change: Order) -> Order:
    """``base`` with ``change``'s deltas applied: the desired order after a change order.

    A delta that takes a line to nothing or less cancels it; lines that point nowhere
    known are new lines (Add) when their quantity is positive.
    """
    known = {line.id for line in base.lines}
    deltas: dict[str, float] = {}
    added: list[OrderLine] = []
    for line in change.lines:
        target = original_line(line, known)
        if target is not None and target in known:
            deltas[target] = deltas.get(target, 0.0) + quantity(line)
        elif target is None and quantity(line) > 0:
            added.append(line.model_copy(update={"action": LineAction.ADD}))
    lines: list[OrderLine] = []
    for line in base.lines:
        if line.action is LineAction.CANCEL:
            continue  # gone in an earlier change
        if line.id not in deltas or deltas[line.id] == 0:
            lines.append(line.model_copy(update={"action": LineAction.NO_CHANGE}))
            continue
        total = quantity(line) + deltas[line.id]
        if total <= 0:
            lines.append(line.model_copy(update={"action": LineAction.CANCEL}))
        else:
            fields = {**line.fields, "Quantity": total}
            lines.append(line.model_copy(update={"fields": fields, "action": LineAction.AMEND}))
    return _renumber(base, [*lines, *added], base.fields)


def merge_in_place(base: Order, new: Order) -> Order:
    """The desired order when the order itself changed: lines compared with ``base``."""
    before = {line.id: line for line in base.lines if line.action is not LineAction.CANCEL}
    lines: list[OrderLine] = []
    for line in new.lines:
        old = before.pop(line.id, None)
        if old is None:
            action = LineAction.ADD
        elif _same(old.fields, line.fields) and old.product == line.product:
            action = LineAction.NO_CHANGE
        else:
            action = LineAction.AMEND
        lines.append(line.model_copy(update={"action": action}))
    lines.extend(line.model_copy(update={"action": LineAction.CANCEL}) for line in before.values())
    return _renumber(base, lines, new.fields)


def cancel_all(base: Order, fields: dict[str, Any] | None = None) -> Order:
    """Every line cancelled: the desired order of a cancellation."""
    lines = [
        line.model_copy(update={"action": LineAction.CANCEL})
        for line in base.lines
        if line.action is not LineAction.CANCEL
    ]
    return _renumber(base, lines, fields if fields is not None else base.fields)


def keep_lines(desired: Order, base: Order, line_ids: Iterable[str]) -> Order:
    """``desired`` with the given lines as ``base`` has them (a change refused for them)."""
    keep = set(line_ids)
    before = {line.id: line for line in base.lines}
    lines = [
        before[line.id].model_copy(update={"action": LineAction.NO_CHANGE})
        if line.id in keep and line.id in before
        else line
        for line in desired.lines
    ]
    return _renumber(desired, lines, desired.fields)


def live(order: Order) -> Order:
    """The order without its cancelled lines: what decomposition sees."""
    lines = tuple(line for line in order.lines if line.action is not LineAction.CANCEL)
    return order.model_copy(update={"lines": lines})


def touched(order: Order) -> list[OrderLine]:
    """The lines a change alters (Amend or Cancel; new lines alter nothing planned)."""
    return [line for line in order.lines if line.action in (LineAction.AMEND, LineAction.CANCEL)]


def changed_lines(order: Order) -> list[OrderLine]:
    """The lines a change adds, alters or cancels."""
    return [line for line in order.lines if line.action is not LineAction.NO_CHANGE]


def everything_cancelled(order: Order) -> bool:
    """Lines there were, and none is left."""
    return bool(order.lines) and not live(order).lines


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(fields: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in fields.items() if k not in _VOLATILE}

    return strip(old) == strip(new)


def _renumber(order: Order, lines: list[OrderLine], fields: dict[str, Any]) -> Order:
    # Line numbers are what people read ("line 2"): kept in order, counted again.
    numbered = tuple(line.model_copy(update={"number": n}) for n, line in enumerate(lines, 1))
    return order.model_copy(update={"lines": numbered, "fields": fields})
