"""Record semantics of the emulated org: validation, defaults, auto-numbers, write rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from salesforce.emulator import constraints
from salesforce.emulator.access import Access
from salesforce.emulator.auth import ADMIN_USER_ID, API_USER_ID
from salesforce.emulator.errors import ApiError, bad_request, not_found
from salesforce.emulator.ids import is_id, make_id, to18
from salesforce.emulator.schema import (
    NUMBER_TYPES,
    STRING_TYPES,
    SYSTEM_FIELDS,
    FieldDef,
    ObjectDef,
    Schema,
)
from salesforce.emulator.store import Row, Store
from salesforce.emulator.values import format_datetime, normalize_date, normalize_datetime, now_ms

_AUTO_NUMBERS: dict[tuple[str, str], tuple[str, int]] = {
    ("Order", "OrderNumber"): ("{:08d}", 100),
    ("OrderItem", "OrderItemNumber"): ("{:010d}", 1),
    ("Invoice", "DocumentNumber"): ("INV-{:07d}", 1),
    ("Contract", "ContractNumber"): ("{:08d}", 100),
    ("Fulfillment_Task__c", "Name"): ("FT-{:06d}", 1),
}


def writer(api: bool) -> str:
    """The user a write is made as: the integration user for API writes, else an admin."""
    return API_USER_ID if api else ADMIN_USER_ID


_STATUS_CODES = {"activated": "Activated", "cancelled": "Canceled", "canceled": "Canceled"}


def _coerce(fdef: FieldDef, value: Any) -> Any:
    """``value`` as stored for ``fdef``; raises ValueError when of the wrong type."""
    if value is None:
        return None
    ftype = fdef.type
    if ftype in ("id", "reference"):
        if not isinstance(value, str) or not is_id(value):
            raise ValueError(f"invalid id: {value}")
        return to18(value)
    if ftype in STRING_TYPES:
        if not isinstance(value, str):
            raise ValueError(f"not a string: {value}")
        return value
    if ftype == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"not a boolean: {value}")
        return value
    if ftype in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"not a number: {value}")
        number = float(value)
        return int(number) if ftype == "int" else number
    if not isinstance(value, str):
        raise ValueError(f"not a {ftype}: {value}")
    return normalize_datetime(value) if ftype == "datetime" else normalize_date(value)


class Org:
    """The records of one org, over a :class:`Store`; every write stamps SystemModstamp.

    Writes with ``api=True`` are the API user's: limited by ``access`` (its permission
    sets; everything when None) and checked by :mod:`salesforce.emulator.constraints`. The
    others are the emulator's own seeding, an admin's data load.
    """

    def __init__(self, schema: Schema, store: Store, access: Access | None = None) -> None:
        self.schema = schema
        self.store = store
        self.access = access
        #: Saves by the API user, per record Id (creates and updates): what a test of
        #: writeback economy counts, as a debug log of an org's DML would show.
        self.api_saves: Counter[str] = Counter()

    def api_schema(self) -> Schema:
        """The schema as the API user sees it."""
        return self.access.view() if self.access is not None else self.schema

    def validate(
        self,
        odef: ObjectDef,
        fields: Mapping[str, Any],
        *,
        creating: bool,
        api: bool,
        existing: Row | None = None,
    ) -> dict[str, Any]:
        """Canonical field names and stored values; raises ApiError for a bad field."""
        out: dict[str, Any] = {}
        locked: list[str] = []
        seen = self.api_schema().obj(odef.name) if api else odef
        for name, value in fields.items():
            if name == "attributes":
                continue
            fdef = odef.field(name)
            if fdef is None:
                raise bad_request(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {odef.name}"
                )
            granted = seen.field(name)
            allowed = granted is not None and (
                granted.createable if creating else granted.updateable
            )
            if api and (not allowed or fdef.name in SYSTEM_FIELDS):
                locked.append(fdef.name)
                continue
            try:
                out[fdef.name] = _coerce(fdef, value)
            except ValueError as exc:
                raise bad_request(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{fdef.name}: value not of required type: {exc}",
                    fields=[fdef.name],
                ) from exc
        if locked:
            raise bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(locked)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                fields=locked,
            )
        if api:
            constraints.check(
                odef,
                out,
                record_id=existing.id if existing else None,
                existing=existing.fields if existing else None,
                find=lambda obj, name, value: [r.id for r in self.store.find(obj, name, value)],
            )
        return out

    def create_many(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        api: bool = False,
        modstamp: datetime | None = None,
    ) -> list[str]:
        """Insert records; returns their new Ids."""
        odef = self.schema.obj(sobject)
        if api and not self.api_schema().obj(sobject).createable:
            raise bad_request(
                "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {odef.name}"
            )
        checked = [self.validate(odef, rec, creating=True, api=api) for rec in records]
        with self.store.transaction(writer(api)):
            first = self.store.allocate(f"id:{odef.name}", len(checked), 1)
            numbers = self._numbers(odef.name, len(checked))
            stamp = format_datetime(modstamp or now_ms())
            rows: list[Row] = []
            for offset, fields in enumerate(checked):
                record_id = make_id(odef.key_prefix, first + offset)
                row = Row(odef.name, record_id, self._defaults(odef, fields, stamp))
                row.fields.update({name: fmt.format(n[offset]) for name, (fmt, n) in numbers})
                self._derive(row, None)
                row.parent_id = row.fields.get(odef.parent_field) if odef.parent_field else None
                rows.append(row)
            self.store.insert(rows)
            self._rollup(rows)
            if api:
                self.api_saves.update(row.id for row in rows)
        return [row.id for row in rows]

    def _numbers(self, sobject: str, n: int) -> list[tuple[str, tuple[str, range]]]:
        out = []
        for (obj, name), (fmt, start) in _AUTO_NUMBERS.items():
            if obj == sobject and self.schema.obj(obj).field(name) is not None:
                first = self.store.allocate(f"auto:{obj}.{name}", n, start)
                out.append((name, (fmt, range(first, first + n))))
        return out

    @staticmethod
    def _defaults(odef: ObjectDef, fields: dict[str, Any], stamp: str) -> dict[str, Any]:
        return {
            "Id": None,
            **fields,
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }

    def _derive(self, row: Row, changes: Mapping[str, Any] | None) -> None:
        """Fill the fields Salesforce computes (Id, StatusCode, ActivatedDate, TotalPrice,
        Product2Id)."""
        fields = row.fields
        fields["Id"] = row.id
        if row.sobject == "Order":
            if changes is None or "Status" in changes:
                status = str(fields.get("Status") or "Draft")
                fields.setdefault("Status", status)
                if changes is not None or "StatusCode" not in fields:
                    fields["StatusCode"] = _STATUS_CODES.get(status.lower(), "Draft")
                if fields["StatusCode"] == "Activated" and not fields.get("ActivatedDate"):
                    fields["ActivatedDate"] = fields["SystemModstamp"]  # stamped on activation
            fields.setdefault("TotalAmount", 0.0)
        elif row.sobject == "OrderItem":
            if fields.get("PricebookEntryId") and not fields.get("Product2Id"):
                entry = self.store.get(fields["PricebookEntryId"])
                fields["Product2Id"] = entry.fields.get("Product2Id") if entry else None
            quantity, price = fields.get("Quantity"), fields.get("UnitPrice")
            if quantity is not None and price is not None:
                fields["TotalPrice"] = round(float(quantity) * float(price), 2)

    def _rollup(self, rows: Sequence[Row]) -> None:
        """Keep Order.TotalAmount the sum of its items (without stamping the Order)."""
        order_ids = sorted({r.fields["OrderId"] for r in rows if r.sobject == "OrderItem"})
        if not order_ids or self.schema.find("Order") is None:
            return
        totals: dict[str, float] = dict.fromkeys(order_ids, 0.0)
        for item in self.store.scan("OrderItem", parent_ids=order_ids):
            totals[item.fields["OrderId"]] += float(item.fields.get("TotalPrice") or 0.0)
        orders = self.store.get_many(order_ids)
        for order in orders.values():
            order.fields["TotalAmount"] = round(totals[order.id], 2)
        self.store.save(orders.values())

    def load(self, sobject: str | None, record_id: str, *, deleted_ok: bool = False) -> Row:
        """A record by Id; 404 NOT_FOUND or ENTITY_IS_DELETED when it cannot be used."""
        if not is_id(record_id):
            raise bad_request("MALFORMED_ID", f"malformed id {record_id}")
        row = self.store.get(to18(record_id))
        if row is None or (sobject is not None and row.sobject.lower() != sobject.lower()):
            raise not_found()
        if row.is_deleted and not deleted_ok:
            raise bad_request("ENTITY_IS_DELETED", "entity is deleted")
        return row

    def update(
        self,
        sobject: str | None,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        api: bool = False,
        modstamp: datetime | None = None,
    ) -> Row:
        """Change fields of one live record and stamp it."""
        stamp = format_datetime(modstamp or now_ms())
        # Read and write under the store's lock so concurrent updates cannot lose fields.
        with self.store.transaction(writer(api)):
            row = self.load(sobject, record_id)
            odef = self.schema.obj(row.sobject)
            changes = self.validate(odef, fields, creating=False, api=api, existing=row)
            row.fields.update(changes)
            row.fields["SystemModstamp"] = row.fields["LastModifiedDate"] = stamp
            self._derive(row, changes)
            self.store.save([row])
            self._rollup([row])
            if api:
                self.api_saves[row.id] += 1
        return row

    def delete(self, sobject: str | None, record_id: str, *, api: bool = False) -> None:
        """Move a record (and its detail records) to the recycle bin."""
        stamp = format_datetime(now_ms())
        with self.store.transaction(writer(api)):
            row = self.load(sobject, record_id)
            doomed = [row]
            odef = self.schema.obj(row.sobject)
            for rel in odef.children.values():
                doomed.extend(self.store.scan(rel.child, parent_ids=[row.id]))
            for victim in doomed:
                victim.fields["IsDeleted"] = True
                victim.fields["SystemModstamp"] = victim.fields["LastModifiedDate"] = stamp
            self.store.save(doomed)
            self._rollup([r for r in doomed if r.sobject == "OrderItem"])

    def upsert(
        self, sobject: str, ext_field: str, value: str, fields: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """Create or update by external Id; returns (Id, created)."""
        odef = self.schema.obj(sobject)
        fdef = self.api_schema().obj(sobject).field(ext_field)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            raise not_found(
                f"Provided external ID field does not exist or is not accessible: {ext_field}"
            )
        body = {k: v for k, v in fields.items() if k.lower() not in ("id", fdef.name.lower())}
        with self.store.transaction(writer(True)):
            matches = self.store.find(odef.name, fdef.name, value)
            if len(matches) > 1:
                raise ApiError(
                    300, "MULTIPLE_CHOICES", f"more than one record found for {fdef.name}"
                )
            if matches:
                self.update(odef.name, matches[0].id, body, api=True)
                return matches[0].id, False
            return self.create_many(odef.name, [{**body, fdef.name: value}], api=True)[0], True

    def public_fields(self, row: Row, *, api: bool = False) -> dict[str, Any]:
        """A record's fields that the current schema knows (those the API user can read
        with ``api``), in schema order."""
        odef = (self.api_schema() if api else self.schema).obj(row.sobject)
        return {f.name: row.fields.get(f.name) for f in odef.fields.values()}
