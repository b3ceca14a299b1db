"""The rules file: which commercial lines become which technical steps, and how they run.

A rule matches commercial order lines (``scope: line``, 1:1 and 1:many), the order as a whole
(``scope: order``, many:1) or a technical product another rule ``produces`` (``technical:
NAME``, multi-level decomposition: technical products decompose further, on the same line).

Dependencies name a step of the same rule (``billing``) or of another rule
(``erp_order.sales_order``). Between line rules the dependency is on the same line; an
order-scope step that depends on a line rule's step waits for it on every line. A dependency
on a rule that did not apply to the order is an ordering constraint only, and is dropped.

Loading validates everything a plan will rely on, so a bad file stops start-up with every
problem and its place in the file, instead of failing one order at a time later. That
includes the payload contracts (orchestration.contracts) and their files, which count in the
rules' digest. The YAML itself (anchors and aliases refused, lines) is orchestration.rules_yaml.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from orchestration.conditions import Condition
from orchestration.contracts import (
    Contract,
    Schema,
    check_payload,
    read_schema,
    schema_problems,
    validator,
)
from orchestration.durations import Duration
from orchestration.errors import ConfigError
from orchestration.mapping import Payload
from orchestration.rules_yaml import Problem as Problem
from orchestration.rules_yaml import read_document, report
from orchestration.states import StepKind

SCOPES = ("order", "line", "product")
NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
#: The error code a retriable failure (timeout, 5xx, 429) is filed under in fallout rules.
RETRIABLE = "*"


class RetryPolicy(BaseModel):
    """How often a failing step is tried, and how long to wait between tries."""

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


class Compensation(BaseModel):
    """What undoes a completed step when a change cancels it (``compensation``), or what
    changes it in place when a change alters it (``amend``); see orchestration.amend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal[StepKind.CALLOUT, StepKind.AUTO, StepKind.MANUAL] = StepKind.CALLOUT
    system: str | None = None
    action: str | None = None
    title: str | None = None
    payload: Payload = Field(default_factory=dict)

    @model_validator(mode="after")
    def _callout_needs_target(self) -> Compensation:
        if self.kind is StepKind.CALLOUT and not (self.system and self.action):
            raise ValueError("a callout compensation needs a 'system' and an 'action'")
        return self


class StepDef(BaseModel):
    """One technical step a rule produces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=NAME)
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
    compensation: Compensation | None = None
    #: How a completed step is changed in place when an amendment alters its payload;
    #: without it the step is compensated and done again.
    amend: Compensation | None = None
    #: The schema this step's payload must fit (else the file's ``contracts``, if any).
    contract: Contract | None = None

    @model_validator(mode="after")
    def _kind_needs(self) -> StepDef:
        kind = self.kind
        if kind is StepKind.CALLOUT and not (self.system and self.action):
            raise ValueError("a callout step needs a 'system' and an 'action'")
        if kind is StepKind.AUTO and not self.action:
            raise ValueError("an auto step needs an 'action' (a registered function)")
        if kind is StepKind.SCHEDULED and self.delay is None and self.base_date is None:
            raise ValueError("a scheduled step needs a 'delay' or a 'base_date'")
        if kind is StepKind.PAUSE and self.delay is None and self.base_date is None:
            raise ValueError("a pause step needs a 'delay' or a 'base_date' to wait for")
        if self.system and not self.action:
            raise ValueError("a step with a 'system' needs an 'action'")
        if kind in (StepKind.MANUAL, StepKind.MILESTONE, StepKind.PAUSE) and self.system:
            raise ValueError(f"a {kind.value} step calls no system")
        if self.contract is not None and not self.system:
            raise ValueError("a 'contract' is for a step that calls a system")
        return self

    @property
    def calls_system(self) -> bool:
        """A callout, or a scheduled step that calls a system when its time comes."""
        return self.system is not None


class Produce(BaseModel):
    """A technical product a rule produces, on a condition when one is given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product: str = Field(pattern=NAME)
    when: Condition | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"product": value} if isinstance(value, str) else value


class Rule(BaseModel):
    """A decomposition rule: when it applies and the steps it produces.

    ``scope: line`` rules apply to each order line they match (1:1 and 1:many);
    ``scope: order`` rules apply once per order (many:1, e.g. one ERP sales order);
    ``technical: NAME`` rules apply to each line that a matching rule ``produces`` NAME for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME)
    scope: Literal["line", "order"] = "line"
    technical: str | None = Field(default=None, pattern=NAME)
    when: Condition | None = None
    produces: list[Produce] = Field(default_factory=list)
    steps: list[StepDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if not self.steps and not self.produces:
            raise ValueError("a rule needs 'steps', 'produces' or both")
        if self.scope == "order" and (self.technical or self.produces):
            raise ValueError("an order-scope rule neither is nor produces a technical product")
        return self

    @property
    def commercial(self) -> bool:
        """Matches commercial lines (not a technical product)."""
        return self.scope == "line" and self.technical is None


class FalloutRule(BaseModel):
    """Retry policy for failures matching a step kind, system and error code (``*`` = any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "*"
    system: str = "*"
    code: str = "*"
    retry: RetryPolicy


class StepPolicy(BaseModel):
    """What a task needs from the rules at run time, pinned to it when the plan is made.

    ``retry`` maps an error code to its policy; ``*`` is for retriable failures (timeouts,
    5xx, 429) without a rule of their own. A permanent failure is retried only when a fallout
    rule names its code.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry: dict[str, RetryPolicy]
    sla: Sla | None = None
    compensation: Compensation | None = None
    amend: Compensation | None = None

    def retry_for(self, code: str, *, retriable: bool) -> RetryPolicy | None:
        """The policy for a failure with ``code``; None means no retry: Fatally Failed."""
        if code in self.retry:
            return self.retry[code]
        return self.retry.get(RETRIABLE) if retriable else None


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    systems: list[str] = Field(min_length=1)
    #: A line no rule matches: ``hold`` sends nothing for its order until it is fixed,
    #: ``continue`` plans the rest of the order without it.
    unmatched: Literal["hold", "continue"] = "hold"
    #: Payload schemas by system and action (orchestration.contracts).
    contracts: dict[str, dict[str, Contract]] = Field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sla: dict[str, Sla] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    fallout: list[FalloutRule] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)
    digest: str = ""
    _policies: dict[int, StepPolicy] = PrivateAttr(default_factory=dict)
    _validators: dict[int, Any] = PrivateAttr(default_factory=dict)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def step(self, rule: str, key: str) -> StepDef | None:
        """The definition of step ``key`` of rule ``rule``, if the rules still have it."""
        found = self.rule(rule)
        return next((s for s in found.steps if s.key == key), None) if found else None

    def contract_for(self, system: str, action: str, step: StepDef | None = None) -> Schema | None:
        """The schema a payload to ``system``/``action`` must fit: the step's own, else the
        file's; None when none is declared (or a file path was not read yet)."""
        if step is not None and step.contract is not None:
            own = step.contract if (step.system, step.action) == (system, action) else None
            if own is not None:
                return own if isinstance(own, dict) else None
        found = self.contracts.get(system, {}).get(action)
        return found if isinstance(found, dict) else None

    def check_payload(self, rule: str, key: str, system: str, action: str, payload: Any) -> None:
        """Raise PayloadError when ``payload`` does not fit its contract (none: no check)."""
        schema = self.contract_for(system, action, self.step(rule, key))
        if schema is None:
            return
        check = self._validators.get(id(schema))
        if check is None:
            check = self._validators[id(schema)] = validator(schema)
        check_payload(check, payload, rule, key)

    def technical_rules(self, technical: str) -> list[Rule]:
        return [r for r in self.rules if r.technical == technical]

    def policy_for(self, step: StepDef) -> StepPolicy:
        """The retry policies by error code, the SLA and the compensation of a step.

        For a code a fallout rule names, the first such rule matching the step's kind and
        system wins; otherwise the step's own policy, else the first matching ``*`` fallout
        rule, else the file's default.
        """
        cached = self._policies.get(id(step))
        if cached is None:
            cached = self._policies[id(step)] = self._policy(step)
        return cached

    def _policy(self, step: StepDef) -> StepPolicy:
        by_code: dict[str, RetryPolicy] = {}
        wildcard: RetryPolicy | None = None
        for rule in self.fallout:
            if rule.kind not in ("*", step.kind.value) or rule.system not in ("*", step.system):
                continue
            if rule.code == "*":
                wildcard = wildcard or rule.retry
            else:
                by_code.setdefault(rule.code, rule.retry)
        by_code[RETRIABLE] = step.retry or wildcard or self.retry
        return StepPolicy(
            retry=by_code,
            sla=self.sla_for(step),
            compensation=step.compensation,
            amend=step.amend,
        )

    def sla_for(self, step: StepDef) -> Sla | None:
        """Per step, else per ``kind/system``, else per kind."""
        if step.sla is not None:
            return step.sla
        return self.sla.get(f"{step.kind.value}/{step.system}") or self.sla.get(step.kind.value)


def load_rules(
    path: Path,
    polled_fields: Mapping[str, Iterable[str]] | None = None,
    auto_actions: Iterable[str] | None = None,
) -> RuleSet:
    """Load and check a rules file; raise ConfigError listing every problem with its place.

    ``polled_fields`` maps a scope (order, line, product) to the fields polled for it; when
    given, a condition or mapping that reads any other field is refused. ``auto_actions``,
    when given, are the registered functions auto steps may name.
    """
    from orchestration.checks import check

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the rules file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start + 1}"
        raise ConfigError(f"{path}: not UTF-8 text ({where}): is it the rules file?") from None
    data, lines = read_document(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the rules file must be a mapping with 'version' and 'rules'")
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = [
            (tuple(err["loc"]), _clean(err["msg"])) for err in exc.errors(include_url=False)
        ]
        raise ConfigError(report(path, problems, lines)) from None
    ruleset, problems, schema_texts = _with_contracts(ruleset, path.parent)
    problems += check(ruleset, polled_fields, auto_actions)
    if problems:
        raise ConfigError(report(path, problems, lines))
    # A contract file is part of the rules: changing one makes a new rules version too.
    digest = hashlib.sha256("\0".join([text, *schema_texts]).encode()).hexdigest()[:12]
    return ruleset.model_copy(update={"digest": digest})


def _with_contracts(ruleset: RuleSet, base: Path) -> tuple[RuleSet, list[Problem], list[str]]:
    """The rules with every contract file read in place of its path, the problems of every
    schema, and the texts of the files read."""
    problems: list[Problem] = []
    texts: list[str] = []

    def resolve(contract: Contract, where: tuple[Any, ...]) -> Contract:
        if isinstance(contract, str):
            try:
                schema, text = read_schema(contract, base)
            except ValueError as exc:
                problems.append((where, str(exc)))
                return contract
            texts.append(text)
            problems.extend(
                (where, f"schema file {contract!r}: {p}") for p in schema_problems(schema)
            )
            return schema
        problems.extend((where, p) for p in schema_problems(contract))
        return contract

    contracts = {
        system: {action: resolve(c, ("contracts", system, action)) for action, c in actions.items()}
        for system, actions in ruleset.contracts.items()
    }
    rules = []
    for i, rule in enumerate(ruleset.rules):
        steps = [
            step
            if step.contract is None
            else step.model_copy(
                update={"contract": resolve(step.contract, ("rules", i, "steps", j, "contract"))}
            )
            for j, step in enumerate(rule.steps)
        ]
        rules.append(rule.model_copy(update={"steps": steps}))
    return ruleset.model_copy(update={"contracts": contracts, "rules": rules}), problems, texts


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")
