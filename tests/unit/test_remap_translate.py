"""Translation both ways, and the coverage report (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestration.errors import RecordError
from orchestration.records import Order
from orchestration.states import StepState
from remap.config import Outbound, RemapConfig, Speaks
from remap.coverage import coverage
from remap.crosswalk import Mapping, Source
from remap.ids import to15, to18
from remap.inbound import Unresolved, discover, referenced, resolve
from remap.outbound import Lookups, payload_ids, translate

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CONFIG = RemapConfig.build(
    prefixes={"SBQQ__Subscription__c": "a1X", "SBQQ__Quote__c": "a0Q"},
    discovery=["OrderItem.Legacy_CPQ_Id__c", "Order.SBQQ__Quote__c"],
    references=["OrderItem.SBQQ__Subscription__c"],
    outbound={"erp": Outbound(speaks=Speaks.LEGACY, until=datetime(2027, 1, 1, tzinfo=UTC))},
)


def sfid(prefix: str, n: int) -> str:
    return to18(f"{prefix}5g0Xy{n:07d}")


ORDER, OLD_ORDER = sfid("801", 1), sfid("801", 900)
LINE, OTHER_LINE, OLD_LINE = sfid("802", 1), sfid("802", 2), sfid("802", 900)
SUB, QUOTE, OWN_SUB = sfid("a1X", 1), sfid("a0Q", 1), sfid("a1X", 7)


def order(**line_fields: object) -> Order:
    return Order.from_record(
        {
            "Id": ORDER,
            "OrderNumber": "00000101",
            "SBQQ__Quote__c": QUOTE,
            "OrderItems": {
                "records": [
                    {"Id": LINE, "Quantity": 2.0, **line_fields},
                    {"Id": OTHER_LINE, "Quantity": 1.0},
                ]
            },
        }
    )


def mapping(legacy: str, standard: str, kind: str, standard_type: str = "OrderItem") -> Mapping:
    return Mapping.make(legacy, kind, standard, standard_type, Source.IMPORT, "x.csv line 2", NOW)


def test_discovery_fields_teach_mappings_to_the_record_that_carries_them():
    found, problems = discover(order(Legacy_CPQ_Id__c=to15(OWN_SUB)), CONFIG, NOW)
    assert problems == []
    got = {(c.mapping.legacy_id, c.mapping.legacy_type, c.mapping.standard_id) for _, c in found}
    assert got == {
        (OWN_SUB, "SBQQ__Subscription__c", LINE),
        (QUOTE, "SBQQ__Quote__c", ORDER),
    }
    assert all(c.mapping.source is Source.SALESFORCE for _, c in found)


@pytest.mark.parametrize("written", [SUB, to15(SUB), SUB.lower()])
def test_a_reference_resolves_to_the_standard_id_whatever_its_form(written):
    polled = order(SBQQ__Subscription__c=written)
    assert referenced(polled, CONFIG) == {SUB}
    resolved = resolve(polled, CONFIG, {SUB: mapping(SUB, OLD_LINE, "SBQQ__Subscription__c")})
    assert resolved.lines[0].fields["SBQQ__Subscription__c"] == OLD_LINE
    assert resolved.lines[0].fields["Quantity"] == 2.0
    assert resolved.fields["SBQQ__Quote__c"] == QUOTE, "discovery fields are left as they are"


def test_an_unresolved_reference_holds_the_order_with_a_fallout_step_saying_which():
    polled = order(SBQQ__Subscription__c=to15(SUB))
    with pytest.raises(Unresolved) as caught:
        resolve(polled, CONFIG, {})
    (step,) = caught.value.steps
    assert step.message == f"legacy SBQQ__Subscription__c {to15(SUB)} has no standard mapping"
    assert step.state is StepState.FATALLY_FAILED
    assert step.line_id == LINE
    assert caught.value.order is polled


def test_a_reference_that_is_not_an_id_is_fallout_too():
    with pytest.raises(Unresolved, match=r"OrderItem\.SBQQ__Subscription__c: 'n/a' is not"):
        resolve(order(SBQQ__Subscription__c="n/a"), CONFIG, {})


ERP = CONFIG.outbound["erp"]
PAYLOAD = {
    "salesforce_order_id": ORDER,
    "account": sfid("001", 1),
    "order_number": "00000101",
    "lines": [{"line_id": LINE, "sku": "LIC-PLATFORM-PRO"}, {"line_id": OTHER_LINE}],
}
LOOKUPS = Lookups(
    to_legacy={
        ORDER: [mapping(OLD_ORDER, ORDER, "Order", "Order")],
        LINE: [
            mapping(QUOTE, LINE, "SBQQ__Quote__c"),
            mapping(SUB, LINE, "SBQQ__Subscription__c"),
        ],
    },
    own={ORDER: "SO-000042"},
)


def test_the_erp_gets_legacy_ids_before_its_cut_over_and_standard_ids_after():
    before, after = datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert ERP.at(before) is Speaks.LEGACY
    assert ERP.at(after) is Speaks.STANDARD
    legacy = translate(PAYLOAD, ERP, ERP.at(before), LOOKUPS, CONFIG.prefixes)
    assert legacy["salesforce_order_id"] == OLD_ORDER
    assert [line["line_id"] for line in legacy["lines"]] == [SUB, OTHER_LINE], (
        "the subscription is preferred to the quote; a line born after the migration keeps "
        "its standard id"
    )
    assert legacy["account"] == PAYLOAD["account"]
    assert legacy["order_number"] == "00000101"
    assert translate(PAYLOAD, ERP, ERP.at(after), LOOKUPS, CONFIG.prefixes) == PAYLOAD


def test_a_system_speaking_its_own_keys_gets_them_where_it_told_us_one():
    rule = Outbound(speaks=Speaks.OWN)
    own = translate(PAYLOAD, rule, Speaks.OWN, LOOKUPS, CONFIG.prefixes)
    assert own["salesforce_order_id"] == "SO-000042"
    assert own["lines"][0]["line_id"] == LINE


def test_keys_limit_translation_to_the_named_payload_fields():
    rule = Outbound(speaks=Speaks.LEGACY, keys=("lines",))
    assert payload_ids(PAYLOAD, rule, CONFIG.prefixes) == {LINE, OTHER_LINE}
    out = translate(PAYLOAD, rule, Speaks.LEGACY, LOOKUPS, CONFIG.prefixes)
    assert out["salesforce_order_id"] == ORDER
    assert out["lines"][0]["line_id"] == SUB


def test_a_cpq_id_in_a_payload_with_no_mapping_is_never_sent():
    payload = {"subscription": to15(SUB)}
    with pytest.raises(RecordError, match=f"legacy SBQQ__Subscription__c {to15(SUB)} has no"):
        translate(payload, Outbound(), Speaks.STANDARD, Lookups(), CONFIG.prefixes)
    known = Lookups(to_standard={SUB: mapping(SUB, OLD_LINE, "SBQQ__Subscription__c")})
    out = translate(payload, Outbound(), Speaks.STANDARD, known, CONFIG.prefixes)
    assert out == {"subscription": OLD_LINE}


def test_coverage_counts_each_legacy_id_once_per_type_with_the_orders_it_blocks():
    first = order(SBQQ__Subscription__c=SUB, Legacy_CPQ_Id__c=OWN_SUB)
    second = Order.from_record(
        {
            "Id": sfid("801", 2),
            "OrderNumber": "00000102",
            "OrderItems": {"records": [{"Id": sfid("802", 5), "SBQQ__Subscription__c": SUB}]},
        }
    )
    known = {
        OWN_SUB: mapping(OWN_SUB, LINE, "SBQQ__Subscription__c"),
        QUOTE: mapping(QUOTE, ORDER, "SBQQ__Quote__c", "Order"),
    }
    report = coverage([first, second], CONFIG, known)
    assert report.by_type() == {
        "SBQQ__Quote__c": {"referenced": 1, "resolved": 1, "unresolved": 0},
        "SBQQ__Subscription__c": {"referenced": 2, "resolved": 1, "unresolved": 1},
    }
    (missing,) = report.unresolved()
    assert (missing.legacy_id, sorted(missing.orders)) == (SUB, ["00000101", "00000102"])
    assert report.totals() == {"orders_scanned": 2, "referenced": 3, "resolved": 2, "unresolved": 1}
