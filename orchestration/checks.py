"""The semantic checks of a rules file that pydantic cannot make alone.

References (steps, systems, tables, technical products, auto functions), cycles (in the
dependencies across rules, and in technical products decomposing into each other), fields
that are not polled, and payload mappings against their contracts (as far as can be told
without data: orchestration.contracts). Each problem carries its place in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestration.conditions import Condition, fields_of, walk
from orchestration.contracts import mapping_problems, schema_problems
from orchestration.mapping import Payload, source_fields
from orchestration.records import DERIVED_FIELDS, LineAction
from orchestration.rules import SCOPES, Problem, Rule, RuleSet, StepDef
from orchestration.states import StepKind

ACTIONS = {a.value for a in LineAction}


def check(
    ruleset: RuleSet,
    polled_fields: Mapping[str, Iterable[str]] | None,
    auto_actions: Iterable[str] | None = None,
) -> list[Problem]:
    """Every problem of ``ruleset``, each with its path in the file."""
    polled = {scope: set(names) for scope, names in (polled_fields or {}).items()}
    for scope, derived in DERIVED_FIELDS.items():
        if polled:
            polled.setdefault(scope, set()).update(derived)
    autos = None if auto_actions is None else set(auto_actions)
    problems: list[Problem] = []
    names = [r.name for r in ruleset.rules]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append((("rules",), f"rule name {dup!r} is used twice"))
    for i, rule in enumerate(ruleset.rules):
        problems.extend(_rule_problems(ruleset, i, rule, polled, autos))
        problems.extend(_contract_problems(ruleset, i, rule))
    for system in ruleset.contracts:
        if system not in ruleset.systems:
            problems.append((("contracts", system), f"unknown system {system!r}"))
    problems.extend(_technical_problems(ruleset))
    cycle = find_cycle(dependency_graph(ruleset))
    if cycle:
        problems.append((_place(ruleset, cycle[0]), "dependency cycle: " + " -> ".join(cycle)))
    return problems


def _place(ruleset: RuleSet, step: str) -> tuple[Any, ...]:
    rule_name, _, key = step.partition(".")
    for i, rule in enumerate(ruleset.rules):
        for j, candidate in enumerate(rule.steps):
            if rule.name == rule_name and candidate.key == key:
                return ("rules", i, "steps", j, "depends_on")
    return ("rules",)


def _rule_problems(
    ruleset: RuleSet,
    i: int,
    rule: Rule,
    polled: dict[str, set[str]],
    autos: set[str] | None,
) -> list[Problem]:
    problems: list[Problem] = []
    keys = [s.key for s in rule.steps]
    for j, step in enumerate(rule.steps):
        here: tuple[Any, ...] = ("rules", i, "steps", j)
        if keys.count(step.key) > 1:
            problems.append(((*here, "key"), f"step key {step.key!r} is used twice"))
        if step.system is not None and step.system not in ruleset.systems:
            problems.append(((*here, "system"), f"unknown system {step.system!r}"))
        for dep in step.depends_on:
            if not _known_dependency(ruleset, rule, step, dep):
                problems.append(((*here, "depends_on"), f"unknown step {dep!r}"))
        problems.extend(_payload_problems(ruleset, here, step.payload, rule.scope, polled))
        if step.base_date:
            problems.extend(_field_problem((*here, "base_date"), step.base_date, rule, polled))
        if _runs_function(step) and autos is not None and step.action not in autos:
            known = ", ".join(sorted(autos)) or "none"
            problems.append(
                ((*here, "action"), f"no auto function {step.action!r} (known: {known})")
            )
        for name, comp in (("compensation", step.compensation), ("amend", step.amend)):
            if comp is None:
                continue
            where = (*here, name)
            if comp.system is not None and comp.system not in ruleset.systems:
                problems.append(((*where, "system"), f"unknown system {comp.system!r}"))
            if comp.kind is StepKind.AUTO and autos is not None and comp.action not in autos:
                problems.append(((*where, "action"), f"no auto function {comp.action!r}"))
            problems.extend(_payload_problems(ruleset, where, comp.payload, rule.scope, polled))
    if rule.when is not None:
        where = ("rules", i, "when")
        for field in fields_of(rule.when):
            problems.extend(_field_problem(where, field, rule, polled))
        problems.extend(_action_problems(where, rule.when))
    for j, produce in enumerate(rule.produces):
        if produce.when is not None:
            where = ("rules", i, "produces", j, "when")
            for field in fields_of(produce.when):
                problems.extend(_field_problem(where, field, rule, polled))
            problems.extend(_action_problems(where, produce.when))
    return problems


def _contract_problems(ruleset: RuleSet, i: int, rule: Rule) -> list[Problem]:
    """Each payload mapping rendered against its contract, where one is declared (and valid:
    an invalid schema is reported where it is written)."""
    problems: list[Problem] = []
    for j, step in enumerate(rule.steps):
        here: tuple[Any, ...] = ("rules", i, "steps", j)
        targets: list[tuple[tuple[Any, ...], str | None, str | None, Payload, StepDef | None]]
        targets = [(here, step.system, step.action, step.payload, step)]
        for name in ("compensation", "amend"):
            comp = getattr(step, name)
            if comp is not None:
                targets.append(((*here, name), comp.system, comp.action, comp.payload, None))
        for where, system, action, payload, own in targets:
            schema = ruleset.contract_for(system, action, own) if system and action else None
            if schema is None or schema_problems(schema):
                continue
            problems.extend(
                ((*where, "payload", *place), message)
                for place, message in mapping_problems(payload, schema)
            )
    return problems


def _runs_function(step: StepDef) -> bool:
    return step.kind is StepKind.AUTO or (
        step.kind is StepKind.SCHEDULED and step.action is not None and step.system is None
    )


def _known_dependency(ruleset: RuleSet, rule: Rule, step: StepDef, dep: str) -> bool:
    if "." not in dep:
        return dep != step.key and any(s.key == dep for s in rule.steps)
    other, _, key = dep.partition(".")
    target = ruleset.rule(other)
    return target is not None and any(s.key == key for s in target.steps)


def _payload_problems(
    ruleset: RuleSet,
    here: tuple[Any, ...],
    payload: Payload,
    scope: str,
    polled: dict[str, set[str]],
) -> list[Problem]:
    problems: list[Problem] = []
    for value in payload.values():
        if value.table and value.table not in ruleset.tables:
            problems.append(((*here, "payload"), f"unknown table {value.table!r}"))
    for field in source_fields(payload):
        problems.extend(_field_problem((*here, "payload"), field, scope, polled))
    return problems


def _field_problem(
    where: tuple[Any, ...], field: str, rule: Rule | str, polled: dict[str, set[str]]
) -> list[Problem]:
    scope = rule if isinstance(rule, str) else rule.scope
    head, _, name = field.partition(".")
    if head not in SCOPES or not name:
        return [(where, f"field {field!r} must start with order., line. or product.")]
    if scope == "order" and head != "order" and where[-1] == "when":
        return [(where, f"an order-scope rule can only test order fields, not {field!r}")]
    if polled and name not in polled.get(head, set()):
        return [(where, f"field {field!r} is not polled (add it to the polled fields)")]
    return []


def _action_problems(where: tuple[Any, ...], condition: Condition) -> list[Problem]:
    problems: list[Problem] = []
    for comparison in walk(condition):
        if comparison.field != "line.action" or comparison.op in ("exists",):
            continue
        values = comparison.value if isinstance(comparison.value, list) else [comparison.value]
        for value in values:
            if value not in ACTIONS:
                allowed = ", ".join(a.value for a in LineAction)
                problems.append((where, f"line action {value!r} is not one of {allowed}"))
    return problems


def _technical_problems(ruleset: RuleSet) -> list[Problem]:
    problems: list[Problem] = []
    handled = {r.technical for r in ruleset.rules if r.technical}
    produced = {p.product for r in ruleset.rules for p in r.produces}
    for i, rule in enumerate(ruleset.rules):
        for j, produce in enumerate(rule.produces):
            if produce.product not in handled:
                problems.append(
                    (
                        ("rules", i, "produces", j),
                        f"no rule decomposes technical product {produce.product!r}",
                    )
                )
        if rule.technical and rule.technical not in produced:
            problems.append(
                (
                    ("rules", i, "technical"),
                    f"no rule produces technical product {rule.technical!r}",
                )
            )
    graph: dict[str, list[str]] = {}
    for rule in ruleset.rules:
        if rule.technical:
            graph.setdefault(rule.technical, []).extend(p.product for p in rule.produces)
    cycle = find_cycle(graph)
    if cycle:
        problems.append(
            (("rules",), "technical products decompose in a circle: " + " -> ".join(cycle))
        )
    return problems


def dependency_graph(ruleset: RuleSet) -> dict[str, list[str]]:
    """Every step definition (``rule.key``) and the step definitions it waits for."""
    graph: dict[str, list[str]] = {}
    for rule in ruleset.rules:
        for step in rule.steps:
            graph[f"{rule.name}.{step.key}"] = [
                dep if "." in dep else f"{rule.name}.{dep}" for dep in step.depends_on
            ]
    return graph


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle as a list of nodes ending where it started, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []
