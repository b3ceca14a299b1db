"""Payload contracts in the rules file: checked at load against each mapping, and at send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon import app
from daemon.app import POLLED_FIELDS
from daemon.commands.main import main
from daemon.settings import DEFAULT_RULES, load_settings
from orchestration.contracts import PayloadError
from orchestration.errors import ConfigError
from orchestration.rules import RuleSet, load_rules

LINES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["sku", "quantity"],
        "properties": {"sku": {"type": "string"}, "quantity": {"type": "number", "minimum": 0}},
    },
}
RULES = """
version: "1"
systems: [erp, billing]
contracts:
  billing:
    subs: CONTRACT
rules:
  - name: subscription
    scope: order
    steps:
      - key: billing
        kind: callout
        system: billing
        action: subs
        payload:
          order: {from: order.OrderNumber}
          lines:
            each_line:
              sku: {from: product.ProductCode}
              quantity: {from: line.Quantity}
"""


def write(tmp_path: Path, text: str, contract: object | None = None) -> Path:
    schema = contract or {"type": "object", "properties": {"lines": LINES}}
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace("CONTRACT", json.dumps(schema)))
    return path


def load(tmp_path: Path, text: str = RULES, contract: object | None = None) -> RuleSet:
    return load_rules(write(tmp_path, text, contract), POLLED_FIELDS)


def refused(tmp_path: Path, text: str = RULES, contract: object | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, contract)
    return str(info.value)


def send(ruleset: RuleSet, payload: dict[str, object], action: str = "subs") -> None:
    ruleset.check_payload("subscription", "billing", "billing", action, payload)


def test_a_payload_that_breaks_its_contract_names_the_pointer_rule_and_step(tmp_path):
    ruleset = load(tmp_path)
    send(ruleset, {"order": "100", "lines": [{"sku": "A", "quantity": 1}]})
    with pytest.raises(PayloadError) as info:
        send(ruleset, {"order": "100", "lines": [{"sku": "A", "quantity": -1}]})
    assert str(info.value) == (
        "payload /lines/0/quantity: -1 is less than the minimum of 0 "
        "(rule subscription, step billing)"
    )


def test_each_problem_is_counted_and_the_root_is_named(tmp_path):
    ruleset = load(tmp_path, contract={"type": "object", "required": ["order", "lines"]})
    with pytest.raises(PayloadError, match=r"^payload /: 'order' is a required .*; and 1 more\)$"):
        send(ruleset, {})


def test_formats_are_asserted(tmp_path):
    contract = {"type": "object", "properties": {"order": {"type": "string", "format": "date"}}}
    ruleset = load(tmp_path, contract=contract)
    send(ruleset, {"order": "2026-12-01"})
    with pytest.raises(PayloadError, match=r"^payload /order: 'soon' is not a 'date'"):
        send(ruleset, {"order": "soon"})


def test_an_action_without_a_contract_is_not_checked(tmp_path):
    send(load(tmp_path), {"anything": object()}, action="charges")


def test_a_steps_own_contract_wins_over_the_files(tmp_path):
    own = "        contract: {type: object, required: [account]}\n        payload:\n"
    text = RULES.replace("        payload:\n", own, 1).replace("order: {from", "account: {from")
    ruleset = load(tmp_path, text)
    send(ruleset, {"account": "001", "lines": "not checked: the file's contract is not used"})
    with pytest.raises(PayloadError, match="'account' is a required property"):
        send(ruleset, {"lines": []})


def test_a_contract_file_is_read_relative_to_the_rules_and_counts_in_the_digest(tmp_path):
    (tmp_path / "contracts").mkdir()
    schema = tmp_path / "contracts" / "subs.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"lines": LINES}}))
    path = write(tmp_path, RULES.replace("CONTRACT", "contracts/subs.json"))
    first = load_rules(path, POLLED_FIELDS)
    with pytest.raises(PayloadError, match=r"^payload /lines/0: 'sku' is a required"):
        send(first, {"lines": [{"quantity": 1}]})
    schema.write_text(json.dumps({"type": "object"}))
    assert load_rules(path, POLLED_FIELDS).digest != first.digest


# -- at load: the mapping rendered against the contract ----------------------------------
def test_a_mapped_field_a_closed_contract_does_not_allow_is_refused_with_its_line(tmp_path):
    contract = {"type": "object", "additionalProperties": False, "properties": {"lines": LINES}}
    message = refused(tmp_path, contract=contract)
    assert message == (
        f"{tmp_path / 'rules.yaml'}:16: rules.0.steps.0.payload.order: field 'order' is not in "
        "the contract (additionalProperties: false)"
    )


def test_a_required_property_no_mapping_fills_is_refused_with_its_line(tmp_path):
    items = {**LINES["items"], "required": ["sku", "quantity", "price"]}  # type: ignore[dict-item]
    contract = {
        "type": "object",
        "required": ["account"],
        "properties": {"lines": {**LINES, "items": items}},
    }
    lines = refused(tmp_path, contract=contract).splitlines()
    assert lines == [
        f"{tmp_path / 'rules.yaml'}:18: rules.0.steps.0.payload.lines.each_line: the contract "
        "requires 'price', which no mapping fills",
        f"{tmp_path / 'rules.yaml'}:15: rules.0.steps.0.payload: the contract requires "
        "'account', which no mapping fills",
    ]


def test_constants_and_transforms_of_the_wrong_type_are_refused(tmp_path):
    text = RULES.replace(
        "quantity: {from: line.Quantity}", "quantity: {from: line.Quantity, transform: str}"
    ).replace("order: {from: order.OrderNumber}", "order: {const: 7}")
    contract = {
        "type": "object",
        "properties": {"order": {"$ref": "#/$defs/text"}, "lines": LINES},
        "$defs": {"text": {"type": "string"}},
    }
    lines = refused(tmp_path, text, contract).splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "rules.0.steps.0.payload.order: field 'order' is integer; the contract wants string",
        "rules.0.steps.0.payload.lines.each_line.quantity: field 'quantity' is string; "
        "the contract wants number",
    ]


def test_scale_and_int_fit_integer_and_number(tmp_path):
    text = RULES.replace(
        "quantity: {from: line.Quantity}", "quantity: {from: line.Quantity, transform: int}"
    ).replace("order: {from: order.OrderNumber}", "order: {from: line.UnitPrice, transform: scale}")
    contract = {"type": "object", "properties": {"order": {"type": "integer"}, "lines": LINES}}
    assert load(tmp_path, text, contract).contracts["billing"]["subs"] == contract


def test_the_default_rules_declare_the_demo_systems_contracts():
    ruleset = load_rules(DEFAULT_RULES, POLLED_FIELDS)
    declared = {(system, action) for system, acts in ruleset.contracts.items() for action in acts}
    assert declared == {
        ("erp", "sales-orders"),
        ("erp", "invoices"),
        ("billing", "subscriptions"),
        ("billing", "charges"),
        ("provisioning", "activations"),
        ("provisioning", "engagements"),
    }
    with pytest.raises(PayloadError, match=r"^payload /seats: 0 is less than the minimum of 1"):
        ruleset.check_payload(
            "license",
            "provision",
            "provisioning",
            "activations",
            {
                "order_item_id": "802A",
                "tenant": "001A",
                "license_sku": "LIC",
                "seats": 0,
                "start_date": "2026-12-01",
            },
        )


# -- bad schemas: one line naming the file and the line, exit 2 ---------------------------
@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (
            {"type": "strnig"},
            ":6: contracts.billing.subs: not valid JSON Schema: 'strnig' is not valid under any "
            "of the given schemas (at /type)",
        ),
        (
            {"$ref": "https://schemas.example.com/order.json"},
            ":6: contracts.billing.subs: $ref 'https://schemas.example.com/order.json' points "
            "outside the schema: only references inside it (#/...) are allowed, nothing is "
            "fetched",
        ),
        (
            {"properties": {"a": {"$ref": "#/$defs/missing"}}},
            ":6: contracts.billing.subs: $ref '#/$defs/missing' does not resolve inside the schema",
        ),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#"},
            ":6: contracts.billing.subs: $schema 'http://json-schema.org/draft-07/schema#': only "
            "JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12/schema) is supported",
        ),
        (
            "nowhere/subs.json",
            ":6: contracts.billing.subs: schema file 'nowhere/subs.json' not found",
        ),
    ],
)
def test_a_bad_contract_is_one_line_naming_the_file_and_line(tmp_path, contract, expected):
    text = RULES if isinstance(contract, dict) else RULES.replace("CONTRACT", contract)
    message = refused(tmp_path, text, contract if isinstance(contract, dict) else None)
    assert message.startswith(f"{tmp_path / 'rules.yaml'}{expected}"), message
    assert "\n" not in message


def test_a_contract_file_that_is_not_json_names_its_line(tmp_path):
    (tmp_path / "subs.json").write_text('{\n  "type": "object",\n}\n')
    message = refused(tmp_path, RULES.replace("CONTRACT", "subs.json"))
    assert message.startswith(
        f"{tmp_path / 'rules.yaml'}:6: contracts.billing.subs: schema file 'subs.json' line 3: "
        "not JSON"
    ), message


def test_a_contract_for_an_unknown_system_is_refused(tmp_path):
    assert "contracts.crm: unknown system 'crm'" in refused(
        tmp_path, RULES.replace("contracts:\n", "contracts:\n  crm: {x: {}}\n")
    )


def test_rules_check_exits_2_with_one_line_for_a_network_ref(tmp_path, capsys):
    path = write(tmp_path, RULES, {"$ref": "http://169.254.169.254/latest/meta-data"})
    assert main(["rules", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"orderflow: {path}:6: contracts.billing.subs: $ref ")


# -- YAML aliases --------------------------------------------------------------------------
LAUGHS = """version: "1"
systems: [erp]
tables:
  a: &a {x: [1, 1, 1, 1, 1, 1, 1, 1, 1]}
  b: &b {x: [*a, *a, *a, *a, *a, *a, *a, *a, *a]}
  c: &c {x: [*b, *b, *b, *b, *b, *b, *b, *b, *b]}
  d: &d {x: [*c, *c, *c, *c, *c, *c, *c, *c, *c]}
  e: &e {x: [*d, *d, *d, *d, *d, *d, *d, *d, *d]}
  f: &f {x: [*e, *e, *e, *e, *e, *e, *e, *e, *e]}
  g: &g {x: [*f, *f, *f, *f, *f, *f, *f, *f, *f]}
rules: [*g]
"""


def test_yaml_anchors_are_refused_before_anything_expands_them(tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text(LAUGHS)
    assert main(["rules", "check", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"orderflow: {path}:4: YAML anchors and aliases are not allowed in a rules file "
        "(&a / *a): write the value out\n"
    )


def test_an_alias_alone_is_refused_at_its_line(tmp_path):
    text = RULES.replace("subs: CONTRACT", "subs: {}").replace(
        "        payload:", "        title: *t\n        payload:"
    )
    assert refused(tmp_path, text).startswith(f"{tmp_path / 'rules.yaml'}:15: YAML anchors")


def test_unmatched_takes_hold_or_continue(tmp_path):
    text = RULES.replace("subs: CONTRACT", "subs: {}")
    assert load(tmp_path, text).unmatched == "hold"
    assert load(tmp_path, "unmatched: continue\n" + text).unmatched == "continue"
    assert "unmatched: Input should be 'hold' or 'continue'" in refused(
        tmp_path, "unmatched: skip\n" + text
    )


def test_the_daemon_does_not_start_with_a_bad_contract(tmp_path, monkeypatch):
    path = write(tmp_path, RULES, {"type": "object", "required": "order"})
    monkeypatch.setenv("ORDERFLOW_RULES_FILE", str(path))
    with pytest.raises(ConfigError) as info:
        app.context(load_settings())
    assert str(info.value) == (
        f"{path}:6: contracts.billing.subs: not valid JSON Schema: 'order' is not of type "
        "'array' (at /required)"
    )


def test_a_compensation_is_checked_against_its_own_actions_contract(tmp_path):
    text = RULES.replace(
        "    subs: CONTRACT\n", "    subs: CONTRACT\n    stops: {type: object, required: [sub]}\n"
    ) + ("        compensation:\n          system: billing\n          action: stops\n")
    message = refused(tmp_path, text)
    assert message.endswith(
        "rules.0.steps.0.compensation.payload: the contract requires 'sub', which no mapping fills"
    ), message
