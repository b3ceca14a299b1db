"""Orders built from polled records (pure)."""

from __future__ import annotations

import pytest

from orchestration.records import Order


def _record(children: dict[str, object]) -> dict[str, object]:
    return {"Id": "8015g0000000001AAA", "OrderNumber": "00000100", "OrderItems": children}


def test_a_first_child_page_alone_is_refused_never_planned_in_part():
    line = {"Id": "8025g0000000001AAA", "Quantity": 1}
    first_page = {
        "totalSize": 450,
        "done": False,
        "nextRecordsUrl": "/q/01g-200",
        "records": [line],
    }
    with pytest.raises(ValueError, match="OrderItems not read completely: 1 of 450 lines"):
        Order.from_record(_record(first_page))
    complete = Order.from_record(_record({"totalSize": 1, "done": True, "records": [line]}))
    assert [li.id for li in complete.lines] == [line["Id"]]
