"""Poll windows, the SOQL they read, and packing of writes and IN lists (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from salesforce.batches import (
    CHUNK_LIMIT,
    TYPE,
    collection_requests,
    grouped_chunks,
    in_chunks,
    packs,
)
from salesforce.poller import EPOCH, PollFields, next_window

NOW = datetime(2026, 11, 3, 12, 0, 0, 500_000, tzinfo=UTC)
OVERLAP, SETTLE = timedelta(minutes=10), timedelta(seconds=2)


def test_the_first_window_reads_everything_up_to_just_before_now():
    window = next_window(None, NOW, overlap=OVERLAP, settle=SETTLE)
    assert window.after == EPOCH
    assert window.until == datetime(2026, 11, 3, 11, 59, 58, tzinfo=UTC)


def test_a_window_reaches_back_the_overlap_and_never_past_the_query_start():
    mark = NOW - timedelta(minutes=1)
    window = next_window(mark, NOW, overlap=OVERLAP, settle=SETTLE)
    assert window.after == (mark - OVERLAP).replace(microsecond=0)
    assert window.until <= NOW - SETTLE
    # A watermark ahead of the clock (a clock step back) never makes after > until.
    ahead = next_window(NOW + timedelta(hours=1), NOW, overlap=OVERLAP, settle=SETTLE)
    assert ahead.after <= ahead.until


def test_window_queries_use_query_all_fields_strict_bounds_and_a_total_order():
    fields = PollFields(statuses=("Activated", "O'Brien"))
    window = next_window(NOW - timedelta(hours=1), NOW, overlap=OVERLAP, settle=SETTLE)
    soql = fields.window_query("Order", window)
    assert (
        "SystemModstamp > 2026-11-03T10:50:00Z AND SystemModstamp <= 2026-11-03T11:59:58Z" in soql
    )
    assert soql.endswith("ORDER BY SystemModstamp, Id")
    assert "(IsDeleted = true OR Status IN ('Activated', 'O\\'Brien'))" in soql
    assert "FROM OrderItems" in soql and "Product2.ProductCode" in soql
    assert "LIMIT" not in soql
    line_soql = fields.window_query("OrderItem", window)
    assert line_soql.startswith("SELECT Id, SystemModstamp, IsDeleted, OrderId")


def test_re_read_queries_stay_under_the_uri_limit():
    ids = [f"8015g{n:010d}AAA" for n in range(3000)]
    queries = PollFields().orders_by_id(ids)
    assert len(queries) > 1
    assert all(len(quote(q)) <= 16_384 - 1_000 for q in queries)
    assert sum(q.count("'8015g") for q in queries) == 3000


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=600))
def test_grouped_chunks_keep_a_parents_records_together(parents):
    records = [{"Id": str(i), "OrderId": f"p{p}"} for i, p in enumerate(parents)]
    chunks = grouped_chunks(records, lambda r: r["OrderId"], size=200)
    assert sorted(r["Id"] for c in chunks for r in c) == sorted(r["Id"] for r in records)
    assert all(0 < len(c) <= 200 for c in chunks)
    where: dict[str, set[int]] = {}
    for n, chunk in enumerate(chunks):
        for r in chunk:
            where.setdefault(r["OrderId"], set()).add(n)
    assert all(len(spots) == 1 for spots in where.values())


def test_1000_updates_are_5_requests_in_one_pack():
    records = [{"Id": f"801{n:015d}", "Fulfillment_Status__c": "Completed"} for n in range(1000)]
    requests = collection_requests("Order", records)
    assert [len(r.records) for r in requests] == [200] * 5
    assert len(list(packs(requests))) == 1
    body = requests[0].body()
    assert body["allOrNone"] is False
    assert body["records"][0] == {
        "attributes": {"type": "Order"},
        "Fulfillment_Status__c": "Completed",
        "id": "801000000000000000",
    }


def test_line_updates_drop_the_parent_field():
    requests = collection_requests(
        "OrderItem", [{"Id": "802A", "OrderId": "801A", "X": 1}], parent="OrderId"
    )
    assert requests[0].records == [{"Id": "802A", "X": 1}]


def test_in_chunks_of_nothing():
    assert in_chunks([], lambda c: ",".join(c)) == []


def test_an_order_its_lines_and_invoices_share_requests_a_run_per_object():
    updates = [
        {"Id": f"3tt{n:03d}", TYPE: "Invoice", "__parent": f"3tt{n:03d}", "S": 1} for n in range(30)
    ]
    for n in range(100):
        order = f"801{n:03d}"
        updates.append({"Id": order, TYPE: "Order", "__parent": order, "S": 1})
        updates += [
            {"Id": f"802{n:03d}{k}", TYPE: "OrderItem", "__parent": order, "S": 1} for k in range(3)
        ]
    requests = collection_requests("Order", updates, parent="__parent")
    sizes = [len(r.records) for r in requests]
    assert sum(sizes) == 430 and len(sizes) == 3 and max(sizes) <= 200
    for request in requests:
        types = [request.sobject_of(r) for r in request.records]
        runs = sum(1 for n, t in enumerate(types) if n == 0 or t != types[n - 1])
        assert runs <= CHUNK_LIMIT and runs == len(set(types))
        body = request.body()["records"]
        assert all(TYPE not in r and "__parent" not in r for r in body)
        assert [r["attributes"]["type"] for r in body] == types
    where = {
        r["Id"][:6]: n
        for n, req in enumerate(requests)
        for r in req.records
        if r["Id"][:3] == "801"
    }
    assert all(
        where["801" + r["Id"][3:6]] == n
        for n, req in enumerate(requests)
        for r in req.records
        if r["Id"][:3] == "802"
    ), "an Order's lines go in its request"
