"""Unit tests of the emulator's SOQL tokenizer, parser and pure evaluator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from salesforce.emulator.schema import Schema
from salesforce.emulator.soql import (
    And,
    Comparison,
    Count,
    Field,
    In,
    Like,
    Not,
    Or,
    OrderBy,
    Query,
    SoqlError,
    Value,
    parse,
    tokenize,
)
from salesforce.emulator.soql_eval import Rec, bind, matches, project, select

ORDER_A = "8015g0000000001AAA"
ORDER_B = "8015g0000000002AAA"
ACCOUNT = "0015g0000000001AAA"


def _order(record_id: str, **fields: Any) -> Rec:
    return Rec({"Id": record_id, **fields})


# -- tokenizer ---------------------------------------------------------------------------


def test_tokenize_kinds() -> None:
    tokens = tokenize(
        "SELECT Id FROM Order WHERE X >= 2026-11-01T00:00:00.000+0000 AND d < 2026-11-01"
    )
    kinds = [t.kind for t in tokens]
    assert kinds == [
        "name",
        "name",
        "name",
        "name",
        "name",
        "name",
        "op",
        "datetime",
        "name",
        "name",
        "op",
        "date",
    ]


def test_tokenize_string_escapes() -> None:
    (token,) = tokenize(r"'O\'Brien \\ \n'")
    assert token.kind == "string"
    assert token.text == "O'Brien \\ \n"


def test_tokenize_unterminated_string() -> None:
    with pytest.raises(SoqlError) as info:
        tokenize("'abc")
    assert info.value.code == "MALFORMED_QUERY"


def test_tokenize_rejects_garbage() -> None:
    with pytest.raises(SoqlError):
        tokenize('SELECT Id FROM Order WHERE Name = "x"')


# -- parser --------------------------------------------------------------------------------


def test_parse_full_query() -> None:
    query = parse(
        "select Id, Product2.ProductCode, (SELECT Id FROM OrderItems WHERE Quantity > 1 "
        "ORDER BY Quantity DESC) FROM Order WHERE (Status = 'Activated' OR Status != null) "
        "AND NOT Type IN ('New', 'Renewal') AND Name LIKE 'A%' "
        "ORDER BY EffectiveDate DESC NULLS LAST, Id LIMIT 10 OFFSET 5"
    )
    assert query.sobject == "Order"
    assert query.items[0] == Field(("Id",))
    assert query.items[1] == Field(("Product2", "ProductCode"))
    sub = query.items[2]
    assert isinstance(sub, Query)
    assert sub.sobject == "OrderItems"
    assert sub.order_by == (OrderBy(Field(("Quantity",)), descending=True),)
    assert isinstance(query.where, And)
    first, second, third = query.where.items
    assert isinstance(first, Or)
    assert second == Not(
        In(Field(("Type",)), (Value("string", "New"), Value("string", "Renewal")), False)
    )
    assert third == Like(Field(("Name",)), "A%")
    assert query.order_by[0] == OrderBy(Field(("EffectiveDate",)), True, True)
    assert query.limit == 10
    assert query.offset == 5


def test_parse_literals() -> None:
    query = parse(
        "SELECT Id FROM Order WHERE A = 1.5 AND B = true AND C = null AND D = 2026-01-01 "
        "AND E > 2026-01-01T00:00:00Z AND F NOT IN ('x') AND G <> -3"
    )
    assert isinstance(query.where, And)
    values = [item.value for item in query.where.items if isinstance(item, Comparison)]
    assert values == [
        Value("number", Decimal("1.5")),
        Value("boolean", True),
        Value("null", None),
        Value("date", "2026-01-01"),
        Value("datetime", "2026-01-01T00:00:00Z"),
        Value("number", Decimal("-3")),
    ]
    assert query.where.items[5] == In(Field(("F",)), (Value("string", "x"),), True)
    assert query.where.items[6] == Comparison(Field(("G",)), "!=", Value("number", Decimal(-3)))


def test_parse_count() -> None:
    assert parse("SELECT COUNT() FROM Order").items == (Count(),)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Order",
        "SELECT Id Order",
        "SELECT Id FROM Order WHERE",
        "SELECT Id FROM Order WHERE A = 1 AND B = 2 OR C = 3",
        "SELECT Id FROM Order WHERE A IN ()",
        "SELECT Id FROM Order LIMIT x",
        "SELECT Id FROM Order ORDER BY Id NULLS MIDDLE",
        "SELECT Id FROM Order extra",
        "SELECT Id, FROM Order",
        "SELECT Id FROM Order WHERE Name LIKE 5",
    ],
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert info.value.code == "MALFORMED_QUERY"
    assert info.value.status == 400


# -- binding ----------------------------------------------------------------------------------


@pytest.fixture
def schema() -> Schema:
    return Schema()


def test_bind_resolves_case_insensitively(schema: Schema) -> None:
    bq = bind(parse("SELECT id, account.name, orderNumber FROM order"), schema)
    assert bq.obj.name == "Order"
    keys = [item.key for item in bq.items if not isinstance(item, tuple)]
    assert keys == [("Id",), ("Account", "Name"), ("OrderNumber",)]
    assert set(bq.lookups) == {"Account"}


def test_bind_custom_relationship_and_subqueries(schema: Schema) -> None:
    bq = bind(
        parse("SELECT Order__r.OrderNumber FROM Fulfillment_Task__c WHERE Order__r.Status = 'x'"),
        schema,
    )
    assert bq.lookups["Order__r"][0].name == "Order__c"
    parent = bind(
        parse(
            "SELECT Id, (SELECT Id FROM Fulfillment_Tasks__r), (SELECT Id FROM OrderItems) "
            "FROM Order"
        ),
        schema,
    )
    assert [rel.child for rel, _ in parent.subqueries] == ["Fulfillment_Task__c", "OrderItem"]
    invoice = bind(parse("SELECT Id, (SELECT ChargeAmount FROM InvoiceLines) FROM Invoice"), schema)
    assert invoice.subqueries[0][0].field == "InvoiceId"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Bogus__c FROM Order", "INVALID_FIELD"),
        ("SELECT Nope.Name FROM Order", "INVALID_FIELD"),
        ("SELECT Account.Bogus FROM Order", "INVALID_FIELD"),
        ("SELECT Id, (SELECT Id FROM Nope) FROM Order", "INVALID_TYPE"),
        ("SELECT Id FROM Order WHERE Bogus = 1", "INVALID_FIELD"),
        ("SELECT Id FROM Order ORDER BY Bogus", "INVALID_FIELD"),
        ("SELECT Id FROM Order WHERE SystemModstamp > '2026-01-01T00:00:00Z'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Order WHERE SystemModstamp > 2026-01-01", "MALFORMED_QUERY"),
        ("SELECT Id FROM Order WHERE EffectiveDate > 2026-01-01T00:00:00Z", "MALFORMED_QUERY"),
        ("SELECT Id FROM Order WHERE Status = 5", "MALFORMED_QUERY"),
        ("SELECT Id FROM Order WHERE TotalAmount > '5'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Order WHERE Id = 'notanid'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Order WHERE TotalAmount LIKE 'x'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT COUNT(), Id FROM Order", "MALFORMED_QUERY"),
    ],
)
def test_bind_errors(schema: Schema, text: str, code: str) -> None:
    with pytest.raises(SoqlError) as info:
        bind(parse(text), schema)
    assert info.value.code == code


def test_unknown_field_message(schema: Schema) -> None:
    with pytest.raises(SoqlError) as info:
        bind(parse("SELECT Bogus__c FROM Order"), schema)
    assert info.value.message.startswith("No such column 'Bogus__c' on entity 'Order'")


def test_removed_field_is_unknown(schema: Schema) -> None:
    schema.remove_field("Order", "Jeopardy_Status__c")
    with pytest.raises(SoqlError):
        bind(parse("SELECT Jeopardy_Status__c FROM Order"), schema)


# -- evaluation -------------------------------------------------------------------------------


def _where(schema: Schema, condition: str, rec: Rec, sobject: str = "Order") -> bool:
    bq = bind(parse(f"SELECT Id FROM {sobject} WHERE {condition}"), schema)
    assert bq.query.where is not None
    return matches(bq.query.where, rec, bq)


def test_datetime_compares_by_instant(schema: Schema) -> None:
    rec = _order(ORDER_A, SystemModstamp="2026-11-27T00:38:00.000+0000")
    assert _where(schema, "SystemModstamp > 2026-11-27T01:00:00+0100", rec)
    assert _where(schema, "SystemModstamp = 2026-11-27T00:38:00Z", rec)
    assert not _where(schema, "SystemModstamp > 2026-11-27T00:38:00.000+0000", rec)
    assert _where(schema, "SystemModstamp >= 2026-11-27T00:38:00.000+0000", rec)
    assert _where(schema, "SystemModstamp < 2026-11-26T20:00:00-0500", rec)


def test_string_equality_is_case_insensitive_and_ids_match_15(schema: Schema) -> None:
    rec = _order(ORDER_A, Status="Activated", AccountId=ACCOUNT)
    assert _where(schema, "Status = 'activated'", rec)
    assert _where(schema, f"AccountId = '{ACCOUNT[:15]}'", rec)
    assert _where(schema, "Status IN ('Draft', 'ACTIVATED')", rec)
    assert not _where(schema, "Status NOT IN ('Draft', 'ACTIVATED')", rec)


def test_nulls_and_booleans(schema: Schema) -> None:
    rec = _order(ORDER_A, Status=None, IsReductionOrder=False, TotalAmount=5.0)
    assert _where(schema, "Status = null", rec)
    assert not _where(schema, "Status != null", rec)
    assert _where(schema, "Status != 'Draft'", rec)
    assert not _where(schema, "Status < 'x'", rec)
    assert _where(schema, "IsReductionOrder = false", rec)
    assert _where(schema, "TotalAmount >= 5 AND TotalAmount < 5.5", rec)
    assert _where(schema, "NOT (TotalAmount > 5 OR Status = 'x')", rec)


def test_like(schema: Schema) -> None:
    rec = _order(ORDER_A, Description="Demo order 12_a")
    assert _where(schema, "Description LIKE 'demo%'", rec)
    assert _where(schema, "Description LIKE '%order 1__a'", rec)
    assert _where(schema, r"Description LIKE '%12\_a'", rec)
    assert not _where(schema, "Description LIKE 'order%'", rec)


def test_relationship_filter(schema: Schema) -> None:
    rec = Rec({"Id": "8025g0000000001AAA"}, parents={"Product2": {"ProductCode": "ADD-SSO"}})
    assert _where(schema, "Product2.ProductCode = 'ADD-SSO'", rec, "OrderItem")
    orphan = Rec({"Id": "8025g0000000001AAA"}, parents={"Product2": None})
    assert _where(schema, "Product2.ProductCode = null", orphan, "OrderItem")


def test_select_orders_nulls_and_limits(schema: Schema) -> None:
    recs = [
        _order("8015g0000000001AAA", Status="b", TotalAmount=1.0),
        _order("8015g0000000002AAA", Status=None, TotalAmount=2.0),
        _order("8015g0000000003AAA", Status="A", TotalAmount=3.0),
        _order("8015g0000000004AAA", Status="b", TotalAmount=4.0),
    ]

    def ids(text: str) -> list[str]:
        bq = bind(parse(f"SELECT Id FROM Order {text}"), schema)
        return [str(r.fields["Id"])[14] for r in select(recs, bq)]

    assert ids("ORDER BY Status") == ["2", "3", "1", "4"]
    assert ids("ORDER BY Status DESC") == ["1", "4", "3", "2"]
    assert ids("ORDER BY Status NULLS LAST, TotalAmount DESC") == ["3", "4", "1", "2"]
    assert ids("ORDER BY Status DESC NULLS FIRST, TotalAmount DESC") == ["2", "4", "1", "3"]
    assert ids("WHERE TotalAmount > 1 ORDER BY TotalAmount DESC LIMIT 2") == ["4", "3"]
    assert ids("ORDER BY TotalAmount LIMIT 2 OFFSET 1") == ["2", "3"]


def test_project_shapes_relationships_and_subqueries(schema: Schema) -> None:
    bq = bind(
        parse(
            "SELECT Id, Account.Name, Account.Industry, Pricebook2.Name, "
            "(SELECT Id, Quantity FROM OrderItems WHERE Quantity > 1 ORDER BY Quantity DESC), "
            "(SELECT Id FROM Fulfillment_Tasks__r) FROM Order"
        ),
        schema,
    )
    items = [Rec({"Id": f"8025g000000000{n}AAA", "Quantity": float(n)}) for n in (1, 2, 3)]
    rec = Rec(
        {"Id": ORDER_A},
        parents={
            "Account": {"Id": ACCOUNT, "Name": "Acme", "Industry": "Tech"},
            "Pricebook2": None,
        },
        children={"OrderItems": items, "Fulfillment_Tasks__r": []},
    )
    out = project(rec, bq, "62.0")
    assert out["attributes"] == {
        "type": "Order",
        "url": f"/services/data/v62.0/sobjects/Order/{ORDER_A}",
    }
    assert out["Account"] == {
        "attributes": {
            "type": "Account",
            "url": f"/services/data/v62.0/sobjects/Account/{ACCOUNT}",
        },
        "Name": "Acme",
        "Industry": "Tech",
    }
    assert out["Pricebook2"] is None
    assert out["OrderItems"]["totalSize"] == 2
    assert out["OrderItems"]["done"] is True
    assert [r["Quantity"] for r in out["OrderItems"]["records"]] == [3.0, 2.0]
    assert out["Fulfillment_Tasks__r"] is None
    assert list(out) == [
        "attributes",
        "Id",
        "Account",
        "Pricebook2",
        "OrderItems",
        "Fulfillment_Tasks__r",
    ]
