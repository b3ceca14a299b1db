from __future__ import annotations

from pathlib import Path

import pytest

from daemon.app import POLLED_FIELDS
from daemon.settings import DEFAULT_RULES
from orchestration.errors import ConfigError
from orchestration.rules import load_rules

GOOD = """
version: "1"
systems: [erp, billing]
rules:
  - name: lic
    when: {field: product.Family, op: "=", value: License}
    steps:
      - {key: bill, kind: callout, system: billing, action: subs}
      - {key: erp, kind: callout, system: erp, action: so, depends_on: [bill]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_default_rules_load_and_are_pinned_by_digest():
    ruleset = load_rules(DEFAULT_RULES, POLLED_FIELDS)
    assert {r.name for r in ruleset.rules} == {
        "erp_order",
        "subscription",
        "license",
        "usage_meter",
        "services",
    }
    kinds = {s.kind.value for r in ruleset.rules for s in r.steps}
    assert kinds == {"callout", "auto", "manual", "milestone", "pause", "scheduled"}
    assert len(ruleset.digest) == 12


def test_a_good_file_loads(tmp_path):
    ruleset = load_rules(write(tmp_path, GOOD), POLLED_FIELDS)
    assert ruleset.step("lic", "erp") is not None
    assert ruleset.step("lic", "nope") is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("depends_on: [bill]", "depends_on: [erp]"), "dependency cycle"),
        (("depends_on: [bill]", "depends_on: [ship]"), "unknown step 'ship'"),
        (("system: erp,", "system: warehouse,"), "unknown system 'warehouse'"),
        (("product.Family", "product.Colour"), "field 'product.Colour' is not polled"),
        (("kind: callout, system: billing", "kind: teleport, system: billing"), "kind"),
    ],
)
def test_problems_are_refused_with_their_place(tmp_path, change, expected):
    text = GOOD.replace(*change)
    if "[erp]" in change[1]:
        text = text.replace("action: subs}", "action: subs, depends_on: [erp]}")
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, text), POLLED_FIELDS)
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"{tmp_path / 'rules.yaml'}:")
    line = int(message.split(":")[1])
    assert 5 <= line <= 10, message


def test_jeopardy_threshold_must_be_below_estimate(tmp_path):
    text = GOOD.replace("systems:", "sla: {callout: {estimate: 1h, jeopardy: 2h}}\nsystems:")
    with pytest.raises(ConfigError, match="smaller than the estimate"):
        load_rules(write(tmp_path, text), POLLED_FIELDS)


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    text = GOOD.replace("system: erp,", "system: warehouse,").replace(
        "depends_on: [bill]", "depends_on: [bill, ghost]"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, text), POLLED_FIELDS)
    assert len(str(info.value).splitlines()) == 2


def test_not_yaml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(write(tmp_path, "rules: [unclosed"), POLLED_FIELDS)
    with pytest.raises(ConfigError, match="cannot read the rules file"):
        load_rules(tmp_path / "absent.yaml", POLLED_FIELDS)
