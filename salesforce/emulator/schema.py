"""The emulated org's objects and fields (a describe-like schema)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from salesforce.emulator.errors import bad_request
from salesforce.emulator.ids import KEY_PREFIXES

if TYPE_CHECKING:
    from salesforce.emulator.metadata import Metadata

STRING_TYPES = frozenset({"string", "picklist", "textarea", "id", "reference", "url", "email"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
# Fields the REST API refuses to write, reported as INVALID_FIELD_FOR_INSERT_UPDATE.
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass
class FieldDef:
    """One field of an object, as ``describe()`` shows it, with the rules writes obey."""

    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    label: str = ""
    length: int | None = None  # text: the most characters
    precision: int | None = None  # numbers: digits in all, of which ``scale`` decimals
    scale: int | None = None
    required: bool = False  # REQUIRED_FIELD_MISSING when absent or null
    unique: bool = False  # DUPLICATE_VALUE when another record holds the value
    picklist: tuple[str, ...] = ()
    restricted: bool = False  # a restricted picklist refuses values it does not list
    #: Whether field-level security applies; a field without it (system, auto-number,
    #: required fields) is visible to whoever can read its object.
    permissionable: bool = True

    def __post_init__(self) -> None:
        if not self.label:
            base = self.name.removesuffix("__c").replace("_", " ")
            self.label = base[:-2] + " ID" if base.endswith("Id") and len(base) > 2 else base
        if self.name in SYSTEM_FIELDS or self.required:
            self.permissionable = False

    def describe(self) -> dict[str, object]:
        """This field in describe's shape."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": self.name not in ("Id", "IsDeleted") and not self.required,
            "unique": self.unique,
            "length": self.length or 0,
            "precision": self.precision or 0,
            "scale": self.scale or 0,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
            "custom": self.name.endswith("__c"),
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": False}
                for v in self.picklist
            ],
        }


@dataclass(frozen=True)
class ChildRelationship:
    """A parent-to-children relationship usable as a SOQL subquery."""

    name: str
    child: str
    field: str


@dataclass
class ObjectDef:
    """One sObject: its fields (keyed by lower-case name) and child relationships."""

    name: str
    key_prefix: str
    fields: dict[str, FieldDef]
    children: dict[str, ChildRelationship] = field(default_factory=dict)
    createable: bool = True
    parent_field: str | None = None  # the master lookup, indexed for subqueries

    def field(self, name: str) -> FieldDef | None:
        """The field named ``name`` (case-insensitive), or None."""
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The lookup field whose relationship is ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for fdef in self.fields.values():
            if fdef.relationship_name and fdef.relationship_name.lower() == lowered:
                return fdef
        return None


def _f(name: str, ftype: str = "string", **kwargs: object) -> FieldDef:
    return FieldDef(name, ftype, **kwargs)  # type: ignore[arg-type]


def _req(name: str, ftype: str = "string") -> FieldDef:
    return FieldDef(name, ftype, required=True)


def _ro(name: str, ftype: str = "string") -> FieldDef:
    return FieldDef(name, ftype, createable=False, updateable=False)


def _auto(name: str) -> FieldDef:
    """An auto-number: read-only and visible to whoever reads the object."""
    return FieldDef(name, "string", createable=False, updateable=False, permissionable=False)


def _ref(name: str, target: str, *, updateable: bool = True, required: bool = False) -> FieldDef:
    rel = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
    return FieldDef(name, "reference", True, updateable, False, target, rel, required=required)


def _system() -> list[FieldDef]:
    return [
        _ro("Id", "id"),
        _ro("IsDeleted", "boolean"),
        _ro("CreatedDate", "datetime"),
        _ro("LastModifiedDate", "datetime"),
        _ro("SystemModstamp", "datetime"),
    ]


# Standard fields (and those of packages Orderflow does not deploy: CPQ's SBQQ__ fields, an
# org's migration field). Orderflow's own custom fields come from salesforce/metadata.
# Required fields are the ones Salesforce will not save a record without; field-level
# security does not apply to them.
_FIELDS: dict[str, list[FieldDef]] = {
    "Account": [_req("Name"), _f("AccountNumber"), _f("Industry", "picklist"),
                _f("Type", "picklist"), _f("BillingCountry")],
    "Product2": [_req("Name"), _f("ProductCode"), _f("Family", "picklist"),
                 _f("IsActive", "boolean"), _f("Description", "textarea")],
    "Pricebook2": [_req("Name"), _f("IsActive", "boolean"), _ro("IsStandard", "boolean")],
    "PricebookEntry": [_ref("Pricebook2Id", "Pricebook2", updateable=False, required=True),
                       _ref("Product2Id", "Product2", updateable=False, required=True),
                       _f("UnitPrice", "currency"), _f("IsActive", "boolean"),
                       _f("UseStandardPrice", "boolean"), _ro("Name"), _ro("ProductCode")],
    "Contract": [_ref("AccountId", "Account", required=True), _f("Status", "picklist"),
                 _f("StartDate", "date"), _f("ContractTerm", "int"), _ro("EndDate", "date"),
                 _auto("ContractNumber")],
    "Asset": [_req("Name"), _ref("AccountId", "Account"), _ref("Product2Id", "Product2"),
              _f("Quantity", "double"), _f("Status", "picklist"), _f("InstallDate", "date"),
              _f("UsageEndDate", "date"), _f("SerialNumber")],
    "Order": [_ref("AccountId", "Account", required=True), _req("Status", "picklist"),
              _ro("StatusCode", "picklist"), _req("EffectiveDate", "date"),
              _f("EndDate", "date"), _f("ActivatedDate", "datetime"), _auto("OrderNumber"),
              _f("Type", "picklist"), _ref("OriginalOrderId", "Order", updateable=False),
              _f("IsReductionOrder", "boolean", updateable=False),
              _ref("ContractId", "Contract"), _ro("TotalAmount", "currency"),
              _ref("Pricebook2Id", "Pricebook2"), _f("Description", "textarea"),
              _ref("SBQQ__Quote__c", "SBQQ__Quote__c")],
    "OrderItem": [_ref("OrderId", "Order", updateable=False, required=True),
                  _ref("Product2Id", "Product2", updateable=False),
                  _ref("PricebookEntryId", "PricebookEntry", updateable=False, required=True),
                  _req("Quantity", "double"), _req("UnitPrice", "currency"),
                  _ro("TotalPrice", "currency"), _f("ServiceDate", "date"),
                  _f("EndDate", "date"), _auto("OrderItemNumber"),
                  _ref("OriginalOrderItemId", "OrderItem", updateable=False),
                  _f("Description", "textarea"),
                  _ref("SBQQ__Subscription__c", "SBQQ__Subscription__c"),
                  _ref("SBQQ__QuoteLine__c", "SBQQ__QuoteLine__c"),
                  _f("SBQQ__ContractAction__c", "picklist"),
                  _f("Legacy_CPQ_Id__c", external_id=True)],
    "Invoice": [_auto("DocumentNumber"), _f("Status", "picklist"),
                _ref("BillingAccountId", "Account"), _ro("Balance", "currency"),
                _ro("TotalAmount", "currency"), _f("InvoiceDate", "date"),
                _f("DueDate", "date"), _ref("ReferenceEntityId", "Order")],
    "InvoiceLine": [_ref("InvoiceId", "Invoice", updateable=False, required=True),
                    _ref("Product2Id", "Product2"), _f("Quantity", "double"),
                    _f("ChargeAmount", "currency"),
                    _ref("ReferenceEntityItemId", "OrderItem")],
    "Fulfillment_Task__c": [_auto("Name")],
}  # fmt: skip

#: Objects only an org with Revenue Cloud Billing has.
INVOICE_OBJECTS = ("Invoice", "InvoiceLine")
_CHILDREN = [
    ChildRelationship("OrderItems", "OrderItem", "OrderId"),
    ChildRelationship("InvoiceLines", "InvoiceLine", "InvoiceId"),
    ChildRelationship("Fulfillment_Tasks__r", "Fulfillment_Task__c", "Order__c"),
]
_PARENT_OF_CHILD = {rel.child: rel.field for rel in _CHILDREN}
_NOT_CREATEABLE = {"Invoice", "InvoiceLine"}


class Schema:
    """The org's objects; each emulator owns a copy so tests may remove fields.

    Standard objects come from this module, Orderflow's custom fields from ``metadata``
    (salesforce/metadata as deployed; loaded when not given). Without ``invoices`` the org
    has no Invoice objects (no Revenue Cloud Billing).
    """

    def __init__(self, metadata: Metadata | None = None, *, invoices: bool = True) -> None:
        if metadata is None:
            from salesforce.emulator.metadata import load  # it builds this module's FieldDefs

            metadata = load()
        #: Bumped by every schema change, so views of it (access.py) know to rebuild.
        self.revision = 0
        self.objects: dict[str, ObjectDef] = {}
        for name, fields in _FIELDS.items():
            if not invoices and name in INVOICE_OBJECTS:
                continue
            custom = copy.deepcopy(metadata.fields.get(name, []))
            defs = {f.name.lower(): f for f in [*_system(), *copy.deepcopy(fields), *custom]}
            self.objects[name.lower()] = ObjectDef(
                name,
                KEY_PREFIXES[name],
                defs,
                createable=name not in _NOT_CREATEABLE,
                parent_field=_PARENT_OF_CHILD.get(name),
            )
        for rel in _CHILDREN:
            if self.find(rel.child) is None:
                continue
            target = self.obj(rel.child).fields[rel.field.lower()].reference_to
            assert target is not None
            self.obj(target).children[rel.name.lower()] = rel

    def find(self, name: str) -> ObjectDef | None:
        """The object named ``name`` (case-insensitive), or None."""
        return self.objects.get(name.lower())

    def obj(self, name: str) -> ObjectDef:
        """The object named ``name`` or a 404 ``NOT_FOUND`` / INVALID_TYPE error."""
        found = self.find(name)
        if found is None:
            raise bad_request(
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        return found

    def by_prefix(self, record_id: str) -> ObjectDef | None:
        """The object whose key prefix starts ``record_id``, or None."""
        for odef in self.objects.values():
            if record_id.startswith(odef.key_prefix):
                return odef
        return None

    def set_picklist(self, sobject: str, name: str, values: tuple[str, ...]) -> None:
        """Replace a picklist's values (as if an admin edited them in the org)."""
        fdef = self.obj(sobject).field(name)
        if fdef is None:
            raise KeyError(f"{sobject}.{name}")
        fdef.picklist = values
        self.revision += 1

    def remove_field(self, sobject: str, name: str) -> None:
        """Drop a field (as if an admin deleted it)."""
        odef = self.obj(sobject)
        if odef.fields.pop(name.lower(), None) is None:
            raise KeyError(f"{sobject}.{name}")
        self.revision += 1
