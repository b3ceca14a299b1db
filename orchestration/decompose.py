"""Decomposition: one commercial order in, the technical steps of its plan out (pure)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestration.conditions import Context, resolve
from orchestration.errors import RecordError
from orchestration.mapping import render
from orchestration.records import Order, OrderLine, parse_datetime
from orchestration.rules import Rule, RuleSet, StepDef
from orchestration.states import StepKind, StepState

FALLOUT_RULE = "fallout"


class PlannedStep(BaseModel):
    """A step of a plan as decomposition produced it, before anything ran."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    rule: str
    key: str
    kind: StepKind
    system: str | None
    action: str | None
    title: str
    line_id: str | None
    depends_on: tuple[str, ...]
    payload: dict[str, Any]
    ponr: bool = False
    state: StepState = StepState.PENDING
    message: str = ""
    not_before: datetime | None = None
    delay: timedelta | None = None


def idempotency_key(order_id: str, step_id: str, revision: int) -> str:
    """Stable across retries, restarts and resyncs; differs between plan revisions."""
    raw = f"orderflow|{order_id}|{step_id}|{revision}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def decompose(order: Order, ruleset: RuleSet) -> list[PlannedStep]:
    """The steps of ``order``'s plan. Never drops a line: unmatched lines become fallout."""
    order_ctx: Context = {"order": order.fields}
    line_ctxs = [_line_context(order, line) for line in order.lines]
    steps: list[PlannedStep] = []
    for rule in ruleset.rules:
        if rule.scope == "order" and (rule.when is None or rule.when.holds(order_ctx)):
            steps.extend(_instantiate(rule, None, order_ctx, line_ctxs, ruleset))
    for line, ctx in zip(order.lines, line_ctxs, strict=True):
        matched = [
            r for r in ruleset.rules if r.scope == "line" and (r.when is None or r.when.holds(ctx))
        ]
        if not matched:
            steps.append(_unmatched(line))
        for rule in matched:
            steps.extend(_instantiate(rule, line, ctx, [ctx], ruleset))
    return steps


def _instantiate(
    rule: Rule,
    line: OrderLine | None,
    ctx: Context,
    lines: list[Context],
    ruleset: RuleSet,
) -> list[PlannedStep]:
    suffix = f"@{line.id}" if line else ""
    local = {s.key for s in rule.steps}
    out = []
    for step in rule.steps:
        deps = tuple(f"{rule.name}.{d}{suffix}" if d in local else d for d in step.depends_on)
        state, message, payload = StepState.PENDING, "", {}
        try:
            payload = render(step.payload, ctx, lines, ruleset.tables)
            not_before = _not_before(step, ctx)
        except RecordError as exc:
            state, message, not_before = StepState.FATALLY_FAILED, _where(line, exc), None
        out.append(
            PlannedStep(
                step_id=f"{rule.name}.{step.key}{suffix}",
                rule=rule.name,
                key=step.key,
                kind=step.kind,
                system=step.system,
                action=step.action,
                title=_title(step, line),
                line_id=line.id if line else None,
                depends_on=deps,
                payload=payload,
                ponr=step.ponr,
                state=state,
                message=message,
                not_before=not_before,
                delay=step.delay if step.base_date is None else None,
            )
        )
    return out


def _unmatched(line: OrderLine) -> PlannedStep:
    reason = f"no decomposition rule for product {line.product_label} (line {line.number})"
    title = f"Resolve line {line.number} ({line.product_label})"
    return fallout_step(f"unmatched@{line.id}", title, reason, line.id)


def fallout_step(suffix: str, title: str, reason: str, line_id: str | None = None) -> PlannedStep:
    """A step that waits for an operator from the start: what cannot be planned, said so."""
    return PlannedStep(
        step_id=f"{FALLOUT_RULE}.{suffix}",
        rule=FALLOUT_RULE,
        key=suffix.partition("@")[0],
        kind=StepKind.MANUAL,
        system=None,
        action=None,
        title=title,
        line_id=line_id,
        depends_on=(),
        payload={},
        state=StepState.FATALLY_FAILED,
        message=reason[:255],
    )


def _line_context(order: Order, line: OrderLine) -> Context:
    return {"order": order.fields, "line": line.fields, "product": line.product}


def _not_before(step: StepDef, ctx: Context) -> datetime | None:
    if step.kind not in (StepKind.SCHEDULED, StepKind.PAUSE) or step.base_date is None:
        return None
    raw = resolve(step.base_date, ctx)
    if raw is None:
        raise RecordError(f"{step.key} needs {step.base_date}, which is empty")
    base = _as_datetime(raw, step.base_date)
    return base + step.delay if step.delay else base


def _as_datetime(raw: Any, field: str) -> datetime:
    try:
        return parse_datetime(raw)
    except ValueError as exc:
        raise RecordError(f"{field} is not a date: {str(raw)[:40]!r}") from exc


def _title(step: StepDef, line: OrderLine | None) -> str:
    base = step.title or (f"{step.system}: {step.action}" if step.system else step.key)
    return f"{base} (line {line.number}, {line.product_label})" if line else base


def _where(line: OrderLine | None, exc: RecordError) -> str:
    return f"line {line.number}: {exc}" if line else str(exc)
