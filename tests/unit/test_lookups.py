"""Order lookups that must name one object (pure)."""

from __future__ import annotations

import pytest

from orchestration.records import Order
from remap.ids import to18
from remap.lookups import WrongObject, check_lookups


def _order(account: object) -> Order:
    return Order(id="801000000000001AAA", number="1", fields={"AccountId": account}, lines=())


def test_an_account_id_passes_and_a_missing_one_is_left_to_the_rules():
    check_lookups(_order(to18("0015g00000000Ab")))
    check_lookups(_order("0015g00000000Ab"))
    check_lookups(_order(None))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("8005g0000000001AAA", "is the id of a Contract (key prefix 800), not of an Account"),
        ("0035g0000000001AAA", "is the id of a Contact (key prefix 003)"),
        (to18("a0X5g0000000001"), "is the id of an unknown object (key prefix a0X)"),
        ("ACME-42", "'ACME-42' is not a Salesforce id"),
    ],
)
def test_another_objects_id_is_refused_naming_the_field_and_the_object(value, reason):
    with pytest.raises(WrongObject) as caught:
        check_lookups(_order(value))
    assert caught.value.field == "AccountId"
    assert str(caught.value).startswith("Order.AccountId ")
    assert reason in str(caught.value)
