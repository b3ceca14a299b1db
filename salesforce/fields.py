"""The Salesforce objects and fields Orderflow reads and writes, in one place.

``orderflow doctor`` checks each against the org's describe; writeback code takes the
written fields from here, so the check and the writes cannot drift apart. Add a field here
when Orderflow starts to read or write it.
"""

from __future__ import annotations

from salesforce.poller import LINE_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS

#: Fields the poller reads, by object.
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "Order": ORDER_FIELDS,
    "OrderItem": LINE_FIELDS,
    "Product2": PRODUCT_FIELDS,
}

#: Fields writeback sets, by object (each must exist and be updateable).
WRITTEN_FIELDS: dict[str, tuple[str, ...]] = {
    "Order": ("Fulfillment_Status__c",),
}


def objects() -> list[str]:
    """Every object Orderflow reads or writes, in a stable order."""
    return sorted({*READ_FIELDS, *WRITTEN_FIELDS})
