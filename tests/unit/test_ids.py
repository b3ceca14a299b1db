"""Salesforce ids: validation, 15 → 18 characters, case-safe comparison, key prefixes."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remap.ids import InvalidId, Prefixes, canonical, is_id, same_id, to15, to18

ID15 = st.text(alphabet=string.ascii_letters + string.digits, min_size=15, max_size=15)


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        # Worked by hand from the rule in SALESFORCE.md: one letter per 5-character chunk.
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
        ("003A0000005QB3A", "003A0000005QB3AIAW"),
        ("001xx000003DGb2", "001xx000003DGb2AAG"),
    ],
)
def test_known_ids_convert_to_their_published_18_character_form(id15, id18):
    assert to18(id15) == id18
    assert to15(id18) == id15


@given(ID15)
def test_the_18_character_form_extends_the_15_and_converts_back(id15):
    id18 = to18(id15)
    assert len(id18) == 18
    assert id18.startswith(id15)
    assert to15(id18) == id15
    assert to18(id18) == id18


@given(ID15, ID15)
def test_the_checksum_tells_apart_ids_that_differ_only_in_case(a, b):
    assert (to18(a).lower() == to18(b).lower()) == (a == b)


@given(ID15, st.sampled_from([str.lower, str.upper]))
def test_an_18_character_id_whose_case_was_lost_converts_to_the_original(id15, mangle):
    id18 = to18(id15)
    assert to18(mangle(id18)) == id18
    assert same_id(mangle(id18), id15)


@given(ID15)
def test_15_and_18_character_forms_of_one_id_are_the_same_id(id15):
    assert same_id(id15, to18(id15))
    assert canonical(id15) == canonical(to18(id15))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("801xx000003DGb", "14 characters"),
        ("801xx000003DGb2AAGX", "19 characters"),
        ("801xx000003-Gb2", "'-' not allowed"),
        ("801xx000003dgb2aa9", "bad checksum character '9'"),
        ("801xx000003DGb2AAA", "its checksum does not match"),  # mixed case, wrong suffix
        ("", "0 characters"),
    ],
)
def test_malformed_ids_are_refused_with_the_reason(value, why):
    assert not is_id(value)
    with pytest.raises(InvalidId, match=why):
        to18(value)


def test_prefixes_name_standard_and_configured_objects():
    prefixes = Prefixes({"SBQQ__Subscription__c": "a1X"})
    assert prefixes.object_of("801xx000003DGb2AAG") == "Order"
    assert prefixes.object_of("802xx000003DGb2") == "OrderItem"
    assert prefixes.object_of("a1Xxx000003DGb2") == "SBQQ__Subscription__c"
    assert prefixes.is_custom("a1Xxx000003DGb2")
    assert not prefixes.is_custom("800xx000003DGb2")
    assert prefixes.object_of("a1xxx000003DGb2") is None, "prefixes are case-sensitive"
    assert [prefixes.prefix_of(o) for o in ("Contract", "Product2", "Asset", "Account")] == [
        "800",
        "01t",
        "02i",
        "001",
    ]


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ({"SBQQ__Quote__c": "a1"}, "must be 3 letters or digits"),
        ({"SBQQ__Quote__c": "801"}, "both have key prefix 801"),
    ],
)
def test_bad_configured_prefixes_are_refused(custom, message):
    with pytest.raises(ValueError, match=message):
        Prefixes(custom)
