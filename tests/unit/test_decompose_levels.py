"""Multi-level decomposition, the line action, dependencies across rules, pinned policies."""

from __future__ import annotations

import pytest

from daemon.app import POLLED_FIELDS
from daemon.settings import DEFAULT_RULES
from orchestration.auto import REGISTRY
from orchestration.decompose import decompose
from orchestration.records import LineAction
from orchestration.rules import RETRIABLE, RuleSet, load_rules
from orchestration.states import StepState
from tests.unit.factories import order

RULES = """
version: "1"
systems: [erp, billing, provisioning]
rules:
  - name: erp_order
    scope: order
    steps:
      - {key: so, kind: callout, system: erp, action: so}
      - {key: all_active, kind: milestone, depends_on: [so, tenant.create, sub.bill]}
  - name: sub
    when:
      all:
        - {field: product.Family, op: in, value: [Subscription, License]}
        - {field: line.action, op: "=", value: Add}
    produces:
      - tenant
      - {product: seats, when: {field: line.Quantity, op: ">=", value: 20}}
    steps:
      - {key: bill, kind: callout, system: billing, action: subs}
  - name: bundle
    when: {field: product.ProductCode, op: "=", value: PLAT-ENT}
    produces: [tenant]
  - name: tenant
    technical: tenant
    produces: [sso]
    steps:
      - {key: create, kind: callout, system: provisioning, action: tenants,
         depends_on: [sub.bill, erp_order.so]}
  - name: sso
    technical: sso
    when: {field: product.ProductCode, op: "=", value: ADD-SSO}
    steps:
      - {key: enable, kind: callout, system: provisioning, action: sso, depends_on: [tenant.create]}
  - name: seats
    technical: seats
    steps:
      - {key: allocate, kind: auto, action: log_event, depends_on: [tenant.create, ghost.x]}
  - name: ghost
    when: {field: product.ProductCode, op: "=", value: NEVER}
    steps:
      - {key: x, kind: milestone}
"""


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES)
    return load_rules(path, POLLED_FIELDS, REGISTRY)


def by_id(record, ruleset):
    return {s.step_id: s for s in decompose(record, ruleset)}


def test_technical_products_decompose_further_on_the_same_line(ruleset):
    # Line 1 PLAT-ENT (qty 10), line 2 ADD-SSO (qty 20).
    steps = by_id(order("PLAT-ENT", "ADD-SSO"), ruleset)
    line1, line2 = "802000000000001AAA", "802000000000002AAA"
    assert f"tenant.create@{line1}" in steps
    assert f"sso.enable@{line2}" in steps, "level 2: the tenant's sso, for the SSO line"
    assert f"sso.enable@{line1}" not in steps, "a technical rule's condition still applies"
    assert steps[f"sso.enable@{line2}"].depends_on == (f"tenant.create@{line2}",)
    creates = [k for k in steps if k.startswith("tenant.create")]
    assert sorted(creates) == [f"tenant.create@{line1}", f"tenant.create@{line2}"], (
        "produced by two rules on line 1, planned once"
    )


def test_a_conditional_technical_product_and_dropped_ordering_dependencies(ruleset):
    steps = by_id(order("PLAT-ENT", "ADD-SSO"), ruleset)
    line1, line2 = "802000000000001AAA", "802000000000002AAA"
    assert f"seats.allocate@{line2}" in steps, "quantity 20 asks for seats"
    assert f"seats.allocate@{line1}" not in steps, "quantity 10 does not"
    # ghost.x never applies: an ordering constraint on nothing, dropped.
    assert steps[f"seats.allocate@{line2}"].depends_on == (f"tenant.create@{line2}",)


def test_dependencies_across_rules_same_line_and_order_wide(ruleset):
    steps = by_id(order("PLAT-ENT", "ADD-SSO"), ruleset)
    line1, line2 = "802000000000001AAA", "802000000000002AAA"
    assert steps[f"tenant.create@{line1}"].depends_on == (
        f"sub.bill@{line1}",
        "erp_order.so",
    )
    assert steps["erp_order.all_active"].depends_on == (
        "erp_order.so",
        f"tenant.create@{line1}",
        f"tenant.create@{line2}",
        f"sub.bill@{line1}",
        f"sub.bill@{line2}",
    ), "an order step waits for a line rule's step on every line"


def test_every_line_has_an_action_and_rules_can_test_it(ruleset):
    record = order("ADD-SSO")
    assert record.lines[0].action is LineAction.ADD
    renewal = record.model_copy(
        update={"lines": (record.lines[0].model_copy(update={"action": LineAction.RENEW}),)}
    )
    steps = decompose(renewal, ruleset)
    fallout = [s for s in steps if s.state is StepState.FATALLY_FAILED]
    assert [s.message for s in fallout] == ["no decomposition rule for product ADD-SSO (line 1)"], (
        "no rule takes a Renew line: said so, not dropped"
    )
    assert all(s.line_action is LineAction.RENEW for s in steps if s.line_id)


def test_steps_carry_their_policy_from_planning_time():
    ruleset = load_rules(DEFAULT_RULES, POLLED_FIELDS, REGISTRY)
    steps = by_id(order("PLAT-ENT"), ruleset)
    sales = steps["erp_order.sales_order"].policy
    provision = steps["license.provision@802000000000001AAA"].policy
    assert sales is not None and provision is not None
    assert sales.retry[RETRIABLE].max_attempts == 8, "the erp fallout rule"
    assert provision.retry["TENANT_LOCKED"].max_attempts == 4
    assert provision.sla is not None and provision.sla.estimate.total_seconds() == 8 * 3600
    assert provision.compensation is not None
    assert provision.compensation.action == "deactivations"


def test_decomposition_is_deterministic(ruleset):
    record = order("PLAT-ENT", "ADD-SSO", "PS-ONBOARD")
    assert decompose(record, ruleset) == decompose(record, ruleset)
