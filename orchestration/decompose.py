"""Decomposition: one commercial order in, the technical steps of its plan out (pure).

Order-scope rules apply once per order; line rules to each line they match; technical rules
to each line a rule before them ``produces`` their technical product for, level after level.
Nothing is dropped: a line (or a technical product) no rule matches becomes a fallout step,
and order-scope steps leave a line no rule matches out of ``each_line``. A new order with
such a line is held whole under ``unmatched: hold`` (:func:`plan_steps`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestration.conditions import Context, resolve
from orchestration.errors import RecordError
from orchestration.mapping import render
from orchestration.records import LineAction, Order, OrderLine, parse_datetime
from orchestration.rules import Produce, Rule, RuleSet, StepDef, StepPolicy
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
    line_action: LineAction | None = None
    policy: StepPolicy | None = None


def idempotency_key(order_id: str, step_id: str, revision: int) -> str:
    """Stable across retries, restarts and resyncs; differs between plan revisions."""
    raw = f"orderflow|{order_id}|{step_id}|{revision}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True)
class _Instance:
    """One rule applied to the order (``line`` None) or to one line."""

    rule: Rule
    line: OrderLine | None
    ctx: Context


def decompose(order: Order, ruleset: RuleSet) -> list[PlannedStep]:
    """The steps of ``order``'s plan. Never drops a line: unmatched lines become fallout."""
    order_ctx: Context = {"order": order.fields}
    line_ctxs = [line_context(order, line) for line in order.lines]
    matched_ctxs: list[Context] = []
    instances: list[_Instance] = []
    fallout: list[PlannedStep] = []
    for rule in ruleset.rules:
        if rule.scope == "order" and _holds(rule, order_ctx):
            instances.append(_Instance(rule, None, order_ctx))
    for line, ctx in zip(order.lines, line_ctxs, strict=True):
        matched = [r for r in ruleset.rules if r.commercial and _holds(r, ctx)]
        if matched:
            matched_ctxs.append(ctx)
        else:
            fallout.append(_unmatched(line))
        instances.extend(_Instance(r, line, ctx) for r in matched)
        line_instances, missing = _technical(ruleset, matched, line, ctx)
        instances.extend(line_instances)
        fallout.extend(missing)
    present = _step_ids(instances)
    steps: list[PlannedStep] = []
    for inst in instances:
        steps.extend(_instantiate(inst, matched_ctxs, ruleset, present))
    return steps + fallout


def plan_steps(order: Order, ruleset: RuleSet) -> list[PlannedStep]:
    """The steps of a new plan for ``order``. Under ``unmatched: hold`` an order with a line
    (or a technical product) no rule matches gets its fallout steps only: nothing is sent
    until the line is fixed or the rules gain a rule (daemon.cycle.held plans it again then)."""
    steps = decompose(order, ruleset)
    if ruleset.unmatched == "hold" and (held := [s for s in steps if s.rule == FALLOUT_RULE]):
        return held
    return steps


def holds(steps: list[PlannedStep]) -> bool:
    """Nothing but fallout steps: a plan that sends nothing until its order is fixed."""
    return bool(steps) and all(s.rule == FALLOUT_RULE for s in steps)


def _holds(rule: Rule | Produce, ctx: Context) -> bool:
    return rule.when is None or rule.when.holds(ctx)


def _technical(
    ruleset: RuleSet, matched: list[Rule], line: OrderLine, ctx: Context
) -> tuple[list[_Instance], list[PlannedStep]]:
    """The technical rules a line's products lead to, level after level, each once."""
    instances: list[_Instance] = []
    fallout: list[PlannedStep] = []
    wanted = [p.product for rule in matched for p in rule.produces if _holds(p, ctx)]
    seen: set[str] = set()
    while wanted:
        product = wanted.pop(0)
        if product in seen:
            continue  # two rules asking for the same technical product get it once
        seen.add(product)
        rules = [r for r in ruleset.technical_rules(product) if _holds(r, ctx)]
        if not rules:
            reason = (
                f"no decomposition rule for technical product {product} "
                f"of {line.product_label} (line {line.number})"
            )
            fallout.append(
                fallout_step(f"{product}@{line.id}", f"Resolve {product}", reason, line.id)
            )
        for rule in rules:
            instances.append(_Instance(rule, line, ctx))
            wanted.extend(p.product for p in rule.produces if _holds(p, ctx))
    return instances, fallout


def _step_ids(instances: list[_Instance]) -> set[str]:
    return {_step_id(i.rule.name, s.key, i.line) for i in instances for s in i.rule.steps}


def _step_id(rule: str, key: str, line: OrderLine | None) -> str:
    return f"{rule}.{key}@{line.id}" if line else f"{rule}.{key}"


def _dependencies(inst: _Instance, step: StepDef, present: set[str]) -> tuple[str, ...]:
    """Resolve a step's dependencies to step ids of this plan.

    A qualified dependency on a line rule means the same line from a line step, and every
    line from an order step. A dependency on a rule that did not apply is dropped: it orders
    steps, it does not require them.
    """
    found: list[str] = []
    for dep in step.depends_on:
        rule, _, key = dep.rpartition(".")
        rule = rule or inst.rule.name
        same_line, order_level = _step_id(rule, key, inst.line), _step_id(rule, key, None)
        if inst.line is not None:
            if same_line in present:
                found.append(same_line)
            elif order_level in present:
                found.append(order_level)
        elif order_level in present:
            found.append(order_level)
        else:
            prefix = f"{rule}.{key}@"
            found.extend(sorted(p for p in present if p.startswith(prefix)))
    return tuple(dict.fromkeys(found))


def _instantiate(
    inst: _Instance, line_ctxs: list[Context], ruleset: RuleSet, present: set[str]
) -> list[PlannedStep]:
    line, ctx = inst.line, inst.ctx
    lines = line_ctxs if line is None else [ctx]
    out = []
    for step in inst.rule.steps:
        state, message, payload = StepState.PENDING, "", {}
        try:
            payload = render(step.payload, ctx, lines, ruleset.tables)
            not_before = _not_before(step, ctx)
        except RecordError as exc:
            state, message, not_before = StepState.FATALLY_FAILED, _where(line, exc), None
        out.append(
            PlannedStep(
                step_id=_step_id(inst.rule.name, step.key, line),
                rule=inst.rule.name,
                key=step.key,
                kind=step.kind,
                system=step.system,
                action=step.action,
                title=_title(step, line),
                line_id=line.id if line else None,
                depends_on=_dependencies(inst, step, present),
                payload=payload,
                ponr=step.ponr,
                state=state,
                message=message,
                not_before=not_before,
                delay=step.delay if step.base_date is None else None,
                line_action=line.action if line else None,
                policy=ruleset.policy_for(step),
            )
        )
    return out


def _unmatched(line: OrderLine) -> PlannedStep:
    reason = f"no decomposition rule for product {line.product_label} (line {line.number})"
    title = f"Resolve line {line.number} ({line.product_label})"
    step = fallout_step(f"unmatched@{line.id}", title, reason, line.id)
    return step.model_copy(update={"line_action": line.action})


def fallout_step(suffix: str, title: str, reason: str, line_id: str | None = None) -> PlannedStep:
    """A step that waits for an operator from the start: what cannot be planned, said so."""
    return PlannedStep(
        step_id=f"{FALLOUT_RULE}.{suffix}",
        rule=FALLOUT_RULE,
        key=suffix.partition("@")[0],
        kind=StepKind.MANUAL,
        system=None,
        action=None,
        title=title[:255],
        line_id=line_id,
        depends_on=(),
        payload={},
        state=StepState.FATALLY_FAILED,
        message=reason[:255],
    )


def line_context(order: Order, line: OrderLine) -> Context:
    """What conditions and mappings of a line rule read: the order, the line, its product."""
    fields = {**line.fields, "action": line.action.value}
    return {"order": order.fields, "line": fields, "product": line.product}


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
