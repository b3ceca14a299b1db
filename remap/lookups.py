"""Lookups of a polled Order that must name one object: another object's id is fallout.

Salesforce refuses a lookup to the wrong object when it is written through the API
(FIELD_INTEGRITY_EXCEPTION), yet an Order can still reach Orderflow with one: a data load
that bypassed it, a migration from CPQ, a value copied from a polymorphic field. An Order
whose ``AccountId`` holds a Contract's id must not be fulfilled with that id sent to the
ERP and billing as an account: the order is held with one fallout step naming the field and
the object the id belongs to (by its key prefix, :mod:`remap.ids`), and nothing is sent.

Pure: an order in, :class:`WrongObject` out.
"""

from __future__ import annotations

from orchestration.errors import RecordError
from orchestration.records import Order
from remap.ids import STANDARD_PREFIXES, is_id

#: Order fields whose id must be of one object.
ORDER_LOOKUPS: dict[str, str] = {"AccountId": "Account"}

#: Key prefixes of standard objects, to name the object a wrong id belongs to.
OBJECT_BY_PREFIX: dict[str, str] = {
    **{prefix: name for name, prefix in STANDARD_PREFIXES.items()},
    "003": "Contact",
    "005": "User",
    "006": "Opportunity",
    "00Q": "Lead",
    "01s": "Pricebook2",
    "01u": "PricebookEntry",
    "0Q0": "Quote",
    "3tt": "Invoice",
    "500": "Case",
}


class WrongObject(RecordError):
    """A lookup of the order holds something other than an id of its object."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def check_lookups(order: Order) -> None:
    """Raise :class:`WrongObject` for the first lookup that names the wrong object."""
    for name, target in ORDER_LOOKUPS.items():
        value = order.fields.get(name)
        if not value:
            continue  # a missing value is the rules' to require (require_fields)
        expected = STANDARD_PREFIXES[target]
        text = str(value)
        if not is_id(text):
            raise WrongObject(name, f"Order.{name} {text!r} is not a Salesforce id")
        prefix = text[:3]
        if prefix != expected:
            owner = OBJECT_BY_PREFIX.get(prefix, "an unknown object")
            raise WrongObject(
                name,
                f"Order.{name} {text} is the id of {_article(owner)} (key prefix {prefix}), "
                f"not of an {target} ({expected}): set the Order's {target}",
            )


def _article(name: str) -> str:
    if name.startswith("an "):
        return name
    return f"an {name}" if name[0] in "AEIOU" else f"a {name}"
