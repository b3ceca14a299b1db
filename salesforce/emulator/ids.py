"""Salesforce record Ids: key prefixes, the 18-character case checksum, generation."""

from __future__ import annotations

import string

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase

# Standard objects' prefixes; the custom object's prefix is this org's own.
KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "Order": "801",
    "OrderItem": "802",
    "Contract": "800",
    "Asset": "02i",
    "Invoice": "3tt",
    "InvoiceLine": "3tu",
    "Fulfillment_Task__c": "a0F",
}

_POD = "5g0"


def _checksum(id15: str) -> str:
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def to18(record_id: str) -> str:
    """Return the 18-character form of a 15- or 18-character Id."""
    if len(record_id) == 18:
        return record_id[:15] + _checksum(record_id[:15])
    if len(record_id) != 15 or not record_id.isalnum():
        raise ValueError(f"not a Salesforce Id: {record_id!r}")
    return record_id + _checksum(record_id)


def is_id(value: str) -> bool:
    """True when ``value`` looks like a 15- or 18-character Id with a valid checksum."""
    if len(value) not in (15, 18) or not value.isalnum():
        return False
    return len(value) == 15 or to18(value[:15]) == value


def make_id(prefix: str, counter: int) -> str:
    """The 18-character Id number ``counter`` of an object with key ``prefix``."""
    digits = ""
    n = counter
    for _ in range(9):
        n, rem = divmod(n, 62)
        digits = _BASE62[rem] + digits
    if n:
        raise ValueError("Id counter overflow")
    return to18(prefix + _POD + digits)
