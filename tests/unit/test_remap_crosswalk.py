"""The crosswalk file and the conflict rule (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from orchestration.errors import ConfigError
from remap.crosswalk import Candidate, Mapping, Source, conflicts, fresh
from remap.csvfile import parse_crosswalk
from remap.ids import Prefixes, to15, to18

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PREFIXES = Prefixes(
    {"SBQQ__Subscription__c": "a1X", "SBQQ__QuoteLine__c": "a0R", "SBQQ__Quote__c": "a0Q"}
)
HEADER = "legacy_id,legacy_type,standard_id,standard_type\n"


def sfid(prefix: str, n: int, letters: str = "") -> str:
    return to18(f"{prefix}5g0{letters}{n:0{9 - len(letters)}d}")


SUB1, SUB2 = sfid("a1X", 1, "Ab"), sfid("a1X", 2, "Cd")
LINE1, LINE2 = sfid("802", 1), sfid("802", 2)


def parse(text: str) -> list[Candidate]:
    return parse_crosswalk(text, "crosswalk.csv", PREFIXES, NOW)


def test_a_good_file_gives_canonical_mappings_named_by_file_and_line():
    text = HEADER + f"{to15(SUB1)},SBQQ__Subscription__c,{LINE1.lower()},OrderItem\n"
    (cand,) = parse(text)
    assert cand.where == "crosswalk.csv:2"
    assert cand.mapping.legacy_id == SUB1, "15 characters become the canonical 18"
    assert cand.mapping.standard_id == LINE1
    assert cand.mapping.source is Source.IMPORT
    assert cand.mapping.origin == "crosswalk.csv line 2"


def test_columns_may_come_in_any_order_and_a_spreadsheet_bom_is_fine():
    text = "\ufeffstandard_type,standard_id,legacy_type,legacy_id\n"
    text += f"OrderItem,{LINE1},SBQQ__Subscription__c,{SUB1}\n\n"
    assert [c.mapping.legacy_id for c in parse(text)] == [SUB1]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "legacy_id,standard_id,standard_type",
            "crosswalk.csv:1: bad header (missing legacy_type)",
        ),
        (HEADER.strip() + ",note", "unknown note"),
        ("legacy_id,legacy_id,legacy_type,standard_id,standard_type", "repeated legacy_id"),
    ],
)
def test_a_bad_header_is_refused(header, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(header + "\n")


def test_every_bad_row_is_reported_with_its_line_number():
    text = HEADER + "\n".join(
        [
            f"{SUB1},SBQQ__Subscription__c,{LINE1},OrderItem",  # 2: fine
            f"{SUB2},SBQQ__Subscription__c,{LINE2},Opportunity",  # 3
            f"a1X-bad,SBQQ__Subscription__c,{LINE2},OrderItem",  # 4
            f"{SUB2},SBQQ__Subscription__c,{sfid('800', 3)},OrderItem",  # 5
            f"{SUB2},SBQQ__Subscription__c",  # 6
            f"{SUB2},Widget__c,{LINE2},OrderItem",  # 7
            f"{LINE2},SBQQ__Subscription__c,{LINE2},OrderItem",  # 8
        ]
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        f"crosswalk.csv:{n}" for n in (3, 4, 5, 6, 7, 8)
    ]
    assert "standard_type 'Opportunity' is not one of" in lines[0]
    assert "legacy_id: 'a1X-bad' is not a Salesforce id" in lines[1]
    assert "is a Contract id, not OrderItem (802)" in lines[2]
    assert "2 values, the header has 4" in lines[3]
    assert "legacy_type 'Widget__c' is not one of" in lines[4]
    assert "legacy_id" in lines[5] and "is an OrderItem id, not SBQQ__Subscription__c" in lines[5]


def mapping(legacy: str, standard: str, kind: str = "SBQQ__Subscription__c") -> Mapping:
    return Mapping.make(legacy, kind, standard, "OrderItem", Source.IMPORT, "db", NOW)


def test_one_legacy_id_to_two_standard_ids_is_a_conflict_within_a_file():
    cands = [
        Candidate("f:2", mapping(SUB1, LINE1)),
        Candidate("f:3", mapping(to15(SUB1), LINE2)),
    ]
    assert conflicts(cands, []) == [
        f"f:3: legacy SBQQ__Subscription__c {SUB1} is mapped to {LINE2} here but to {LINE1} by f:2"
    ]


def test_one_standard_id_from_two_legacy_ids_of_one_type_is_a_conflict_against_the_store():
    known = [mapping(SUB1, LINE1)]
    (problem,) = conflicts([Candidate("f:7", mapping(SUB2, LINE1))], known)
    assert problem.startswith(f"f:7: OrderItem {LINE1} is mapped from SBQQ__Subscription__c")
    assert problem.endswith(f"but from {SUB1} by import db")


def test_a_line_from_a_quote_line_and_a_subscription_is_not_a_conflict():
    quote_line = sfid("a0R", 9)
    cands = [Candidate("f:2", mapping(quote_line, LINE1, "SBQQ__QuoteLine__c"))]
    assert conflicts(cands, [mapping(SUB1, LINE1)]) == []


def test_the_same_pair_again_is_no_conflict_and_is_not_added_twice():
    known = [mapping(SUB1, LINE1)]
    again = [mapping(to15(SUB1), LINE1.upper()), mapping(SUB2, LINE2), mapping(SUB2, LINE2)]
    assert conflicts([Candidate("f", m) for m in again], known) == []
    assert [m.legacy_id for m in fresh(again, known)] == [SUB2]
