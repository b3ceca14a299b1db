"""What a rules file may not say: refused at load, every problem with its place."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.app import POLLED_FIELDS
from orchestration.auto import REGISTRY
from orchestration.errors import ConfigError
from orchestration.rules import RETRIABLE, RetryPolicy, StepPolicy, load_rules

BASE = """
version: "1"
systems: [erp, billing, provisioning]
rules:
  - name: erp_order
    scope: order
    steps:
      - {key: so, kind: callout, system: erp, action: so, depends_on: [lic.provision]}
  - name: sub
    when: {field: product.Family, op: "=", value: License}
    produces: [lic]
    steps:
      - {key: bill, kind: callout, system: billing, action: subs}
  - name: lic
    technical: lic
    steps:
      - {key: provision, kind: callout, system: provisioning, action: act, depends_on: [sub.bill]}
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return load_rules(path, POLLED_FIELDS, REGISTRY)


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_cross_rule_and_multi_level_dependencies_load(tmp_path):
    ruleset = load(tmp_path, BASE)
    assert ruleset.technical_rules("lic")[0].name == "lic"


def test_a_cycle_across_rules_is_refused_with_its_path(tmp_path):
    text = BASE.replace("action: subs}", "action: subs, depends_on: [erp_order.so]}")
    message = refused(tmp_path, text)
    assert "dependency cycle: " in message
    assert "erp_order.so -> lic.provision -> sub.bill -> erp_order.so" in message
    assert message.startswith(f"{tmp_path / 'rules.yaml'}:8:"), message


def test_technical_products_that_decompose_in_a_circle_are_refused(tmp_path):
    text = BASE.replace("    technical: lic\n", "    technical: lic\n    produces: [meter]\n")
    text += (
        "  - name: meter\n    technical: meter\n    produces: [lic]\n"
        "    steps:\n      - {key: m, kind: milestone}\n"
    )
    assert "technical products decompose in a circle: lic -> meter -> lic" in refused(
        tmp_path, text
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("produces: [lic]", "produces: [ghost]"), "no rule decomposes technical product 'ghost'"),
        (("depends_on: [sub.bill]", "depends_on: [sub.nope]"), "unknown step 'sub.nope'"),
        (("depends_on: [sub.bill]", "depends_on: [nope.bill]"), "unknown step 'nope.bill'"),
        (("technical: lic", "technical: orphan"), "no rule produces technical product 'orphan'"),
        (
            ("value: License}", "value: License}\n    scope: order"),
            "an order-scope rule neither is nor produces a technical product",
        ),
    ],
)
def test_bad_references_are_refused(tmp_path, change, expected):
    assert expected in refused(tmp_path, BASE.replace(*change))


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("{key: a, kind: auto, action: teleport}", "no auto function 'teleport'"),
        ("{key: a, kind: auto}", "an auto step needs an 'action'"),
        ("{key: a, kind: scheduled}", "a scheduled step needs a 'delay' or a 'base_date'"),
        ("{key: a, kind: pause}", "a pause step needs a 'delay' or a 'base_date'"),
        ("{key: a, kind: manual, system: erp, action: x}", "a manual step calls no system"),
        ("{key: a, kind: pause, base_date: line.Colour}", "'line.Colour' is not polled"),
        (
            "{key: a, kind: callout, system: erp, action: x,"
            " compensation: {system: crm, action: y}}",
            "unknown system 'crm'",
        ),
    ],
)
def test_bad_steps_are_refused(tmp_path, step, expected):
    text = BASE + f"  - name: extra\n    steps:\n      - {step}\n"
    assert expected in refused(tmp_path, text)


def test_conditions_on_the_line_action_are_checked(tmp_path):
    good = BASE.replace(
        '    when: {field: product.Family, op: "=", value: License}',
        "    when:\n      all:\n        - {field: product.Family, op: '=', value: License}\n"
        "        - {field: line.action, op: in, value: [Add, Renew]}",
    )
    load(tmp_path, good)
    bad = good.replace("[Add, Renew]", "[Add, Upsell]")
    assert "line action 'Upsell' is not one of Add, Amend, No Change, Renew, Cancel" in refused(
        tmp_path, bad
    )


def test_a_conditional_technical_product_reads_only_polled_fields(tmp_path):
    text = BASE.replace(
        "produces: [lic]", "produces: [{product: lic, when: {field: product.Colour, value: x}}]"
    )
    assert "'product.Colour' is not polled" in refused(tmp_path, text)


FALLOUT = """
retry: {max_attempts: 4}
fallout:
  - {kind: callout, system: billing, code: LOCKED, retry: {max_attempts: 9}}
  - {kind: callout, system: "*", code: "*", retry: {max_attempts: 2}}
"""


def test_policies_by_error_code_specific_first_then_the_step_then_wildcards(tmp_path):
    text = BASE.replace("systems:", FALLOUT.strip() + "\nsystems:").replace(
        "action: subs}", "action: subs, retry: {max_attempts: 7}}"
    )
    ruleset = load(tmp_path, text)
    bill = ruleset.step("sub", "bill")
    so = ruleset.step("erp_order", "so")
    assert bill is not None and so is not None
    policy = ruleset.policy_for(bill)
    assert policy.retry_for("LOCKED", retriable=False) == RetryPolicy(max_attempts=9)
    assert policy.retry_for("", retriable=True) == RetryPolicy(max_attempts=7), "step's own"
    assert policy.retry_for("BAD", retriable=False) is None, "a refusal falls out at once"
    assert ruleset.policy_for(so).retry_for(RETRIABLE, retriable=True) == RetryPolicy(
        max_attempts=2
    )


def test_a_pinned_policy_survives_the_store_round_trip():
    policy = StepPolicy(
        retry={RETRIABLE: RetryPolicy(initial=timedelta(seconds=90), maximum=timedelta(hours=2))}
    )
    assert StepPolicy.model_validate(policy.model_dump(mode="json")) == policy
