"""Salesforce record ids done right: validation, 15 → 18 characters, case-safe comparison.

An id is 15 case-sensitive characters, or those 15 plus a 3-character checksum of their
case: for each 5-character chunk, bit ``i`` is set when character ``i`` is an upper-case
letter, and the 5-bit value indexes ``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``. The suffix makes the
18-character form safe in case-insensitive places (spreadsheets, some databases), so this
module goes further than comparing: an 18-character id whose case was lost (``801ABC...``
lower-cased by a tool) is restored from its suffix. :func:`canonical` is the one form the
crosswalk stores and compares.

The first three characters are the key prefix, naming the object. Standard objects have
fixed prefixes; custom objects (the CPQ ``SBQQ__*__c`` ones) differ per org and come from
configuration (:class:`Prefixes`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping

CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits)

#: The standard objects the remap workstream deals with.
STANDARD_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Product2": "01t",
    "Contract": "800",
    "Order": "801",
    "OrderItem": "802",
    "Asset": "02i",
}


class InvalidId(ValueError):
    """A value that is not a Salesforce id; the message says why."""


def _checksum(id15: str) -> str:
    suffix = ""
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        suffix += CHECKSUM_ALPHABET[bits]
    return suffix


def _check_characters(value: str) -> None:
    if len(value) not in (15, 18):
        raise InvalidId(f"{value!r} is not a Salesforce id: {len(value)} characters, not 15 or 18")
    bad = sorted({c for c in value if c not in ID_CHARACTERS})
    if bad:
        raise InvalidId(f"{value!r} is not a Salesforce id: {''.join(bad)!r} not allowed")


def _restore_case(value: str) -> str:
    """The 15-character id an 18-character one stands for, its case taken from the suffix."""
    head, suffix = value[:15], value[15:].upper()
    if _checksum(head) == suffix:
        return head
    letters = [c for c in head if c.isalpha()]
    if not (all(c.islower() for c in letters) or all(c.isupper() for c in letters)):
        # Mixed case that disagrees with the suffix is a corrupted id, not a lost case.
        raise InvalidId(f"{value!r} is not a Salesforce id: its checksum does not match")
    restored = []
    for chunk, code in enumerate(suffix):
        bits = CHECKSUM_ALPHABET.find(code)
        if bits < 0:
            raise InvalidId(f"{value!r} is not a Salesforce id: bad checksum character {code!r}")
        for pos, char in enumerate(head[chunk * 5 : chunk * 5 + 5]):
            upper = bool(bits & (1 << pos))
            if upper and not char.isalpha():
                raise InvalidId(f"{value!r} is not a Salesforce id: its checksum does not match")
            restored.append(char.upper() if upper else char.lower() if char.isalpha() else char)
    return "".join(restored)


def to18(value: str) -> str:
    """The 18-character form of a 15- or 18-character id.

    A 15-character id is taken as written (its case is the id). An 18-character one is checked
    against its checksum; a copy whose letters were all lower- or upper-cased (a spreadsheet,
    a case-insensitive database) is restored from it. Mixed case that disagrees with the
    checksum is a corrupted id and raises InvalidId.
    """
    value = value.strip()
    _check_characters(value)
    id15 = value if len(value) == 15 else _restore_case(value)
    return id15 + _checksum(id15)


def to15(value: str) -> str:
    """The 15-character (case-sensitive) form of an id."""
    return to18(value)[:15]


canonical = to18


def is_id(value: object) -> bool:
    """True when ``value`` is a 15- or 18-character Salesforce id."""
    if not isinstance(value, str):
        return False
    try:
        to18(value)
    except InvalidId:
        return False
    return True


def same_id(a: str, b: str) -> bool:
    """True when two ids name the same record, whatever their length or suffix case."""
    return to18(a) == to18(b)


def key_prefix(value: str) -> str:
    """The key prefix (first three characters) of an id."""
    return to18(value)[:3]


class Prefixes:
    """Key prefix ↔ object name: the standard ones plus the org's configured custom objects."""

    def __init__(self, custom: Mapping[str, str] | None = None) -> None:
        self._by_object = dict(STANDARD_PREFIXES)
        for name, prefix in (custom or {}).items():
            check_prefix(name, prefix)
            self._by_object[name] = prefix
        by_prefix: dict[str, str] = {}
        for name, prefix in self._by_object.items():
            if prefix in by_prefix:
                raise ValueError(f"{name} and {by_prefix[prefix]} both have key prefix {prefix}")
            by_prefix[prefix] = name
        self._by_prefix = by_prefix
        self.custom = {n: p for n, p in self._by_object.items() if n not in STANDARD_PREFIXES}

    def object_of(self, value: str) -> str | None:
        """The object an id belongs to, when its prefix is known."""
        return self._by_prefix.get(value[:3]) if len(value) >= 3 else None

    def prefix_of(self, sobject: str) -> str | None:
        return self._by_object.get(sobject)

    def is_custom(self, value: str) -> bool:
        """True when the id's prefix is one of the configured custom (CPQ) objects."""
        return self.object_of(value) in self.custom


def check_prefix(name: str, prefix: str) -> None:
    """A configured key prefix must be three id characters; raises ValueError if not."""
    if len(prefix) != 3 or any(c not in ID_CHARACTERS for c in prefix):
        raise ValueError(f"key prefix of {name} must be 3 letters or digits, not {prefix!r}")
