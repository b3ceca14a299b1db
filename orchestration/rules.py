"""The rules file: which commercial lines become which technical steps, and how they run.

Loading validates everything a plan will rely on, so a bad file stops start-up with every
problem and its place in the file, instead of failing one order at a time later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestration.conditions import Condition, fields_of
from orchestration.durations import Duration
from orchestration.errors import ConfigError
from orchestration.mapping import Payload, source_fields
from orchestration.states import StepKind

SCOPES = ("order", "line", "product")


class RetryPolicy(BaseModel):
    """How often a failing step is retried, and how long to wait between tries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial: Duration = timedelta(seconds=5)
    factor: float = Field(default=2.0, ge=1.0)
    maximum: Duration = timedelta(minutes=30)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class Sla(BaseModel):
    """Estimated duration and the jeopardy threshold before it (At Risk from estimate - it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    estimate: Duration
    jeopardy: Duration

    @model_validator(mode="after")
    def _threshold_below_estimate(self) -> Sla:
        if self.jeopardy >= self.estimate:
            raise ValueError("jeopardy threshold must be smaller than the estimate")
        return self


class StepDef(BaseModel):
    """One technical step a rule produces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    kind: StepKind
    system: str | None = None
    action: str | None = None
    title: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    payload: Payload = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    sla: Sla | None = None
    ponr: bool = False
    delay: Duration | None = None
    base_date: str | None = None
    compensation: str | None = None

    @model_validator(mode="after")
    def _callout_needs_target(self) -> StepDef:
        if self.kind is StepKind.CALLOUT and not (self.system and self.action):
            raise ValueError("a callout step needs a 'system' and an 'action'")
        if self.kind is StepKind.SCHEDULED and self.delay is None:
            raise ValueError("a scheduled step needs a 'delay'")
        return self


class Rule(BaseModel):
    """A decomposition rule: when it applies and the steps it produces.

    ``scope: line`` rules apply to each order line they match (1:1 and 1:many);
    ``scope: order`` rules apply once per order (many:1, e.g. one ERP sales order).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    scope: Literal["line", "order"] = "line"
    when: Condition | None = None
    steps: list[StepDef] = Field(min_length=1)


class FalloutRule(BaseModel):
    """Retry policy for failures matching a step kind, system and error code (``*`` = any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "*"
    system: str = "*"
    code: str = "*"
    retry: RetryPolicy


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    systems: list[str] = Field(min_length=1)
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sla: dict[str, Sla] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    fallout: list[FalloutRule] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)
    digest: str = ""

    def step(self, rule: str, key: str) -> StepDef | None:
        """The definition of step ``key`` of rule ``rule``, if the rules still have it."""
        for candidate in self.rules:
            if candidate.name == rule:
                return next((s for s in candidate.steps if s.key == key), None)
        return None

    def retry_for(self, step: StepDef, code: str) -> RetryPolicy:
        """The step's own policy, else the first fallout rule that matches, else the default."""
        if step.retry is not None:
            return step.retry
        for rule in self.fallout:
            if (
                rule.kind in ("*", step.kind.value)
                and rule.system in ("*", step.system)
                and rule.code in ("*", code)
            ):
                return rule.retry
        return self.retry

    def sla_for(self, step: StepDef) -> Sla | None:
        """Per step, else per ``kind/system``, else per kind."""
        if step.sla is not None:
            return step.sla
        return self.sla.get(f"{step.kind.value}/{step.system}") or self.sla.get(step.kind.value)


def load_rules(path: Path, polled_fields: Mapping[str, Iterable[str]] | None = None) -> RuleSet:
    """Load and check a rules file; raise ConfigError listing every problem with its place.

    ``polled_fields`` maps a scope (order, line, product) to the fields polled for it; when
    given, a condition or mapping that reads any other field is refused.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the rules file ({exc.strerror})") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the rules file must be a mapping with 'version' and 'rules'")
    lines = _line_index(node)
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = [
            (tuple(err["loc"]), _clean(err["msg"])) for err in exc.errors(include_url=False)
        ]
        raise ConfigError(_report(path, problems, lines)) from None
    problems = check(ruleset, polled_fields)
    if problems:
        raise ConfigError(_report(path, problems, lines))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return ruleset.model_copy(update={"digest": digest})


Problem = tuple[tuple[Any, ...], str]


def check(ruleset: RuleSet, polled_fields: Mapping[str, Iterable[str]] | None) -> list[Problem]:
    """Semantic checks pydantic cannot make alone: references, cycles, polled fields."""
    problems: list[Problem] = []
    polled = {scope: set(names) for scope, names in (polled_fields or {}).items()}
    names = [r.name for r in ruleset.rules]
    order_steps = {
        f"{r.name}.{s.key}" for r in ruleset.rules if r.scope == "order" for s in r.steps
    }
    for dup in {n for n in names if names.count(n) > 1}:
        problems.append((("rules",), f"rule name {dup!r} is used twice"))
    for i, rule in enumerate(ruleset.rules):
        keys = [s.key for s in rule.steps]
        for j, step in enumerate(rule.steps):
            here: tuple[Any, ...] = ("rules", i, "steps", j)
            if keys.count(step.key) > 1:
                problems.append(((*here, "key"), f"step key {step.key!r} is used twice"))
            if step.system is not None and step.system not in ruleset.systems:
                problems.append(((*here, "system"), f"unknown system {step.system!r}"))
            for dep in step.depends_on:
                local = dep in keys and dep != step.key
                crosses = rule.scope == "line" and dep in order_steps
                if not (local or crosses):
                    problems.append(((*here, "depends_on"), f"unknown step {dep!r}"))
            for value in step.payload.values():
                if value.table and value.table not in ruleset.tables:
                    problems.append(((*here, "payload"), f"unknown table {value.table!r}"))
            used = source_fields(step.payload) + ([step.base_date] if step.base_date else [])
            for field in used:
                problems.extend(_field_problem((*here, "payload"), field, rule.scope, polled))
        if rule.when is not None:
            for field in fields_of(rule.when):
                problems.extend(_field_problem(("rules", i, "when"), field, rule.scope, polled))
        cycle = _find_cycle({s.key: [d for d in s.depends_on if d in keys] for s in rule.steps})
        if cycle:
            problems.append((("rules", i, "steps"), "dependency cycle: " + " -> ".join(cycle)))
    return problems


def _field_problem(
    where: tuple[Any, ...], field: str, scope: str, polled: dict[str, set[str]]
) -> list[Problem]:
    head, _, name = field.partition(".")
    if head not in SCOPES or not name:
        return [(where, f"field {field!r} must start with order., line. or product.")]
    if scope == "order" and head != "order" and where[-1] == "when":
        return [(where, f"an order-scope rule can only test order fields, not {field!r}")]
    if polled and name not in polled.get(head, set()):
        return [(where, f"field {field!r} is not polled (add it to the polled fields)")]
    return []


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A dependency cycle as a list of keys ending where it started, or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(key: str) -> list[str]:
        state[key] = 1
        stack.append(key)
        for dep in graph.get(key, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[key] = 2
        return []

    for key in graph:
        if key not in state and (found := visit(key)):
            return found
    return []


def _line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map each path in the YAML document to its 1-based line number."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(value, (*path, key.value))
                index[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def _report(path: Path, problems: list[Problem], lines: dict[tuple[Any, ...], int]) -> str:
    out = []
    for loc, msg in problems:
        place = loc
        while place and place not in lines:
            place = place[:-1]
        where = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top)"
        out.append(f"{path}:{lines.get(place, 1)}: {where}: {msg}")
    return "\n".join(out)


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")
