"""Fallout rules, retries with back-off, auto functions and operator resolutions, run by the
real engine against in-memory fakes (see test_engine_run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.app import POLLED_FIELDS
from daemon.cycle.advance import advance_plans
from daemon.settings import DEFAULT_RULES
from downstream.protocol import Outcome, SubmitResult, TaskRequest
from orchestration.auto import REGISTRY, AutoCall
from orchestration.errors import OperatorError, RecordError, RetriableError
from orchestration.rules import RuleSet, load_rules
from orchestration.states import Resolution
from tests.unit.test_engine_run import START, Engine, make_engine, schema  # noqa: F401 - fixture

FALLOUT = """
fallout:
  - {kind: callout, system: billing, code: CREDIT_HOLD,
     retry: {max_attempts: 3, initial: 1m, factor: 2, jitter: 0.1}}
"""


def down(request: TaskRequest) -> SubmitResult:
    raise RetriableError("HTTP 503", retry_after=None)


def refused(code: str):
    def answer(request: TaskRequest) -> SubmitResult:
        return SubmitResult(outcome=Outcome.FAILED, code=code, message=f"billing: {code}")

    return answer


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    text = DEFAULT_RULES.read_text().replace("\nfallout:\n", FALLOUT + "  # (default)\n", 1)
    path.write_text(text)
    return load_rules(path, POLLED_FIELDS, REGISTRY)


@pytest.fixture
def engine(schema: Path, tmp_path: Path, rules: RuleSet) -> Iterator[Engine]:  # noqa: F811
    with make_engine(schema, tmp_path, rules) as made:
        yield made


def test_retriable_failures_back_off_with_jitter_then_succeed(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [down, down]
    engine.plan("ADD-SSO")
    engine.run(rounds=1)
    billing = engine.task("subscription.billing")
    assert (billing.state, billing.attempts) == ("Failed", 1)
    assert billing.next_attempt_at is not None
    wait = billing.next_attempt_at - START
    assert timedelta(seconds=1.6) <= wait <= timedelta(seconds=2.4), "2s ± 20% jitter"

    engine.run()
    assert engine.task("subscription.billing").state == "Failed", "not before its time"
    engine.clock.tick(seconds=3)
    engine.run(rounds=1)
    second = engine.task("subscription.billing")
    assert (second.state, second.attempts) == ("Failed", 2)
    assert second.next_attempt_at is not None
    assert second.next_attempt_at - engine.clock() >= timedelta(seconds=3.2), "it grows"
    engine.clock.tick(seconds=5)
    engine.run()
    final = engine.task("subscription.billing")
    assert (final.state, final.attempts) == ("Completed", 3)
    keys = {r.idempotency_key for r in engine.systems["billing"].requests}
    assert len(keys) == 1, "every try carries the same idempotency key"


def test_retries_used_up_make_the_step_fatally_failed_and_the_order_fallout(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [down] * 6
    plan_id = engine.plan("ADD-SSO")
    for _ in range(6):
        engine.run(rounds=1)
        engine.clock.tick(minutes=10)
    billing = engine.task("subscription.billing")
    assert billing.state == "Fatally Failed"
    assert billing.message.startswith("retries used up (6 of 6): HTTP 503")
    assert engine.plan_row(plan_id).status == "Fallout"
    assert engine.task("license.provision").state == "Pending", "its dependents wait"


def test_a_refusal_falls_out_at_once_unless_a_fallout_rule_names_its_code(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [refused("BAD_SKU")]
    engine.plan("ADD-SSO")
    engine.run(rounds=1)
    billing = engine.task("subscription.billing")
    assert (billing.state, billing.attempts, billing.message) == (
        "Fatally Failed",
        1,
        "billing: BAD_SKU",
    )


def test_a_code_with_a_fallout_rule_is_retried_as_that_rule_says(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [refused("CREDIT_HOLD")] * 3
    engine.plan("ADD-SSO")
    engine.run(rounds=1)
    billing = engine.task("subscription.billing")
    assert billing.state == "Failed"
    assert billing.next_attempt_at is not None
    assert timedelta(seconds=54) <= billing.next_attempt_at - START <= timedelta(seconds=66)
    for _ in range(3):
        engine.clock.tick(minutes=5)
        engine.run(rounds=1)
    assert engine.task("subscription.billing").state == "Fatally Failed"
    assert len(engine.systems["billing"].requests) == 3


def test_operator_retry_gives_a_fresh_budget_and_the_plan_finishes(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [refused("BAD_SKU")]
    plan_id = engine.plan("ADD-SSO")
    engine.run(rounds=1)
    billing = engine.task("subscription.billing")

    engine.resolve(billing.id, Resolution.RETRY, actor="maria")
    engine.run()
    engine.clock.tick(seconds=5)  # the scheduled welcome step
    engine.run()
    assert engine.task("subscription.billing").state == "Completed"
    assert engine.plan_row(plan_id).status == "Completed"
    audit = [(e.to_state, e.actor) for e in engine.events(billing.id)]
    assert ("Ready", "maria") in audit


def test_operator_skip_lets_dependents_go_on(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [refused("BAD_SKU")]
    plan_id = engine.plan("ADD-SSO")
    engine.run(rounds=1)
    engine.resolve(engine.task("subscription.billing").id, Resolution.SKIP)
    engine.run()
    engine.clock.tick(seconds=5)
    engine.run()
    assert engine.task("license.provision").state == "Completed"
    assert engine.plan_row(plan_id).status == "Completed"


def test_operator_moves_that_do_not_fit_are_refused_and_change_nothing(engine: Engine):
    engine.plan("ADD-SSO")
    engine.run()
    done = engine.task("subscription.billing")
    with pytest.raises(OperatorError, match="cannot retry a task that is Completed"):
        engine.resolve(done.id, Resolution.RETRY)
    with pytest.raises(OperatorError, match="cannot complete a task that is Completed"):
        engine.resolve(done.id, Resolution.COMPLETE)
    with pytest.raises(OperatorError, match="no task with id 9999"):
        engine.resolve(9999, Resolution.SKIP)
    assert len(engine.events(done.id)) == 4  # planned, ready, in progress, completed


def test_an_unmatched_line_is_resolved_by_an_operator(engine: Engine):
    plan_id = engine.plan("PLAT-ENT", "MYSTERY")
    engine.run()
    fallout = engine.task("fallout.unmatched")
    assert fallout.message == "no decomposition rule for product MYSTERY (line 2)"
    assert engine.plan_row(plan_id).status == "Fallout"
    engine.resolve(fallout.id, Resolution.COMPLETE)
    engine.clock.tick(seconds=5)
    engine.run()
    engine.clock.tick(seconds=5)
    engine.run()
    assert engine.plan_row(plan_id).status == "Completed"


def test_auto_functions_errors_become_fallout_or_retries(engine: Engine):
    calls: list[AutoCall] = []

    def flaky(call: AutoCall) -> str:
        calls.append(call)
        if len(calls) == 1:
            raise RetriableError("registry busy")
        if len(calls) == 2:
            raise RecordError("account is blocked")
        raise ZeroDivisionError("a bug")

    engine.ctx.auto_actions = {**REGISTRY, "require_fields": flaky}
    engine.plan("ADD-SSO")
    engine.run(rounds=1)
    check = engine.task("erp_order.check")
    assert (check.state, check.message[:13]) == ("Failed", "registry busy")
    assert calls[0].payload["order_number"] == "00000100"

    engine.clock.tick(seconds=10)
    engine.run(rounds=1)
    check = engine.task("erp_order.check")
    assert (check.state, check.message) == ("Fatally Failed", "account is blocked")

    engine.resolve(check.id, Resolution.RETRY)
    engine.run(rounds=1)
    check = engine.task("erp_order.check")
    assert check.state == "Fatally Failed"
    assert check.message == "auto function require_fields failed: ZeroDivisionError: a bug"
    assert engine.systems["erp"].requests == [], "the sales order waits for its check"


def test_an_auto_function_that_is_not_registered_falls_out(engine: Engine):
    engine.ctx.auto_actions = {}
    engine.plan("ADD-SSO")
    engine.run(rounds=1)
    check = engine.task("erp_order.check")
    assert check.state == "Fatally Failed"
    assert check.message == "no auto function named 'require_fields' is registered"


def test_a_plan_sleeps_until_its_retry_and_a_pass_looks_only_at_plans_due(engine: Engine):
    engine.systems["billing"].scripts["subscriptions"] = [down]
    waiting = engine.plan("ADD-SSO")
    engine.run(rounds=1)
    billing = engine.task("subscription.billing")
    assert billing.state == "Failed" and billing.next_attempt_at is not None
    # Nothing but the back-off can move it: the plan wakes at the retry, not before.
    assert engine.plan_row(waiting).wake_at == billing.next_attempt_at
    assert advance_plans(engine.ctx).plans == 0, "no plan due: nothing loaded"

    other = engine.plan("ADD-SSO", order_id="801000000000002AAA")
    assert advance_plans(engine.ctx).plans == 1, "the new plan only"
    assert engine.plan_row(other).wake_at is not None, "its SLA's first threshold"

    engine.clock.tick(seconds=3)
    engine.run()
    assert engine.task("subscription.billing").state == "Completed"
