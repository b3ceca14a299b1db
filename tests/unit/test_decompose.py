from __future__ import annotations

import pytest

from daemon.app import POLLED_FIELDS
from daemon.settings import DEFAULT_RULES
from orchestration.decompose import decompose, holds, idempotency_key, plan_steps
from orchestration.rules import load_rules
from orchestration.states import StepState
from tests.unit.factories import order


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(DEFAULT_RULES, POLLED_FIELDS)


def test_one_erp_order_per_order_and_billing_then_provisioning_per_line(ruleset):
    steps = {s.step_id: s for s in decompose(order("PLAT-ENT", "ADD-SSO"), ruleset)}
    erp = [s for s in steps.values() if s.system == "erp"]
    assert len(erp) == 1, "many:1: one sales order whatever the lines"
    assert [line["product_code"] for line in erp[0].payload["lines"]] == ["PLAT-ENT", "ADD-SSO"]
    provision = steps["license.provision@802000000000002AAA"]
    assert provision.depends_on == (
        "subscription.billing@802000000000002AAA",
        "erp_order.sales_order",
    )
    assert provision.payload == {
        "order_item_id": "802000000000002AAA",
        "tenant": "001000000000001AAA",
        "license_sku": "LIC-ADDON-SSO",
        "seats": 20,
        "start_date": "2026-12-01",
    }
    assert steps["subscription.billing@802000000000001AAA"].payload["unit_price_cents"] == 9950


def test_a_line_without_a_rule_is_fallout_never_dropped(ruleset):
    steps = decompose(order("PLAT-ENT", "MYSTERY"), ruleset)
    fallout = [s for s in steps if s.state is StepState.FATALLY_FAILED]
    assert len(fallout) == 1
    assert fallout[0].message == "no decomposition rule for product MYSTERY (line 2)"
    assert any(s.system == "provisioning" for s in steps), "the other line still plans"


def test_an_unmatched_line_is_left_out_of_each_line(ruleset):
    (erp,) = [s for s in decompose(order("PLAT-ENT", "MYSTERY"), ruleset) if s.system == "erp"]
    assert [line["product_code"] for line in erp.payload["lines"]] == ["PLAT-ENT"]


def test_unmatched_hold_plans_only_the_fallout_and_continue_plans_the_rest(ruleset):
    held = plan_steps(order("PLAT-ENT", "MYSTERY"), ruleset)
    assert [s.step_id for s in held] == ["fallout.unmatched@802000000000002AAA"]
    assert holds(held)
    going_on = plan_steps(
        order("PLAT-ENT", "MYSTERY"), ruleset.model_copy(update={"unmatched": "continue"})
    )
    assert not holds(going_on)
    assert any(s.system == "erp" for s in going_on)
    assert not holds(plan_steps(order("PLAT-ENT"), ruleset)), "nothing unmatched: planned"


def test_a_bad_value_makes_that_step_fallout_with_the_field_named(ruleset):
    record = order("PLAT-ENT").model_copy()
    broken = record.lines[0].model_copy(
        update={"fields": {**record.lines[0].fields, "Quantity": "lots"}}
    )
    bad = record.model_copy(update={"lines": (broken,)})
    steps = {s.key: s for s in decompose(bad, ruleset) if s.line_id}
    assert steps["provision"].state is StepState.FATALLY_FAILED
    assert "seats" in steps["provision"].message
    assert steps["billing"].state is StepState.PENDING


def test_idempotency_key_is_stable_and_changes_with_revision():
    key = idempotency_key("801A", "erp_order.sales_order", 1)
    assert key == idempotency_key("801A", "erp_order.sales_order", 1)
    assert key != idempotency_key("801A", "erp_order.sales_order", 2)
    assert key != idempotency_key("801B", "erp_order.sales_order", 1)


def test_decomposition_is_deterministic(ruleset):
    first = decompose(order("PLAT-ENT", "PS-ONBOARD"), ruleset)
    assert first == decompose(order("PLAT-ENT", "PS-ONBOARD"), ruleset)
