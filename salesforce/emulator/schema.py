"""The emulated org's objects and fields (a describe-like schema)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from salesforce.emulator.errors import bad_request
from salesforce.emulator.ids import KEY_PREFIXES

STRING_TYPES = frozenset({"string", "picklist", "textarea", "id", "reference", "url", "email"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})


@dataclass
class FieldDef:
    """One field of an object, as ``describe()`` shows it."""

    name: str
    type: str
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None

    def describe(self) -> dict[str, object]:
        """This field in describe's shape."""
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "idLookup": self.external_id or self.name == "Id",
            "nillable": self.name not in ("Id", "IsDeleted"),
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
            "custom": self.name.endswith("__c"),
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


def _ro(name: str, ftype: str = "string") -> FieldDef:
    return FieldDef(name, ftype, createable=False, updateable=False)


def _ref(name: str, target: str, *, updateable: bool = True) -> FieldDef:
    rel = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
    return FieldDef(name, "reference", True, updateable, False, target, rel)


def _system() -> list[FieldDef]:
    return [
        _ro("Id", "id"),
        _ro("IsDeleted", "boolean"),
        _ro("CreatedDate", "datetime"),
        _ro("LastModifiedDate", "datetime"),
        _ro("SystemModstamp", "datetime"),
    ]


_FIELDS: dict[str, list[FieldDef]] = {
    "Account": [_f("Name"), _f("AccountNumber"), _f("Industry", "picklist"),
                _f("Type", "picklist"), _f("BillingCountry")],
    "Product2": [_f("Name"), _f("ProductCode"), _f("Family", "picklist"),
                 _f("IsActive", "boolean"), _f("Description", "textarea")],
    "Pricebook2": [_f("Name"), _f("IsActive", "boolean"), _ro("IsStandard", "boolean")],
    "PricebookEntry": [_ref("Pricebook2Id", "Pricebook2", updateable=False),
                       _ref("Product2Id", "Product2", updateable=False),
                       _f("UnitPrice", "currency"), _f("IsActive", "boolean"),
                       _f("UseStandardPrice", "boolean"), _ro("Name"), _ro("ProductCode")],
    "Contract": [_ref("AccountId", "Account"), _f("Status", "picklist"),
                 _f("StartDate", "date"), _f("ContractTerm", "int"), _ro("EndDate", "date"),
                 _ro("ContractNumber")],
    "Asset": [_f("Name"), _ref("AccountId", "Account"), _ref("Product2Id", "Product2"),
              _f("Quantity", "double"), _f("Status", "picklist"), _f("InstallDate", "date"),
              _f("UsageEndDate", "date"), _f("SerialNumber")],
    "Order": [_ref("AccountId", "Account"), _f("Status", "picklist"),
              _ro("StatusCode", "picklist"), _f("EffectiveDate", "date"),
              _f("EndDate", "date"), _f("ActivatedDate", "datetime"), _ro("OrderNumber"),
              _f("Type", "picklist"), _ref("OriginalOrderId", "Order", updateable=False),
              _f("IsReductionOrder", "boolean", updateable=False),
              _ref("ContractId", "Contract"), _ro("TotalAmount", "currency"),
              _ref("Pricebook2Id", "Pricebook2"), _f("Description", "textarea"),
              _ref("SBQQ__Quote__c", "SBQQ__Quote__c"),
              _f("Fulfillment_Status__c", "picklist"), _f("Jeopardy_Status__c", "picklist"),
              _f("Fulfillment_Message__c", "textarea"),
              _f("Fulfillment_Progress__c", "percent"),
              _f("Fulfillment_Updated__c", "datetime")],
    "OrderItem": [_ref("OrderId", "Order", updateable=False),
                  _ref("Product2Id", "Product2", updateable=False),
                  _ref("PricebookEntryId", "PricebookEntry", updateable=False),
                  _f("Quantity", "double"), _f("UnitPrice", "currency"),
                  _ro("TotalPrice", "currency"), _f("ServiceDate", "date"),
                  _f("EndDate", "date"), _ro("OrderItemNumber"),
                  _ref("OriginalOrderItemId", "OrderItem", updateable=False),
                  _f("Description", "textarea"),
                  _ref("SBQQ__Subscription__c", "SBQQ__Subscription__c"),
                  _ref("SBQQ__QuoteLine__c", "SBQQ__QuoteLine__c"),
                  _f("SBQQ__ContractAction__c", "picklist"),
                  _f("Fulfillment_Status__c", "picklist"), _f("Jeopardy_Status__c", "picklist"),
                  _f("Legacy_CPQ_Id__c", external_id=True)],
    "Invoice": [_ro("DocumentNumber"), _f("Status", "picklist"),
                _ref("BillingAccountId", "Account"), _ro("Balance", "currency"),
                _ro("TotalAmount", "currency"), _f("InvoiceDate", "date"),
                _f("DueDate", "date"), _ref("ReferenceEntityId", "Order"),
                _f("ERP_Document_Number__c", external_id=True),
                _f("ERP_Sync_Status__c", "picklist")],
    "InvoiceLine": [_ref("InvoiceId", "Invoice", updateable=False),
                    _ref("Product2Id", "Product2"), _f("Quantity", "double"),
                    _f("ChargeAmount", "currency"),
                    _ref("ReferenceEntityItemId", "OrderItem")],
    "Fulfillment_Task__c": [_ro("Name"), _ref("Order__c", "Order", updateable=False),
                            _f("Task_Key__c", external_id=True), _f("System__c", "picklist"),
                            _f("Step__c"), _f("State__c", "picklist"),
                            _f("Jeopardy__c", "picklist"),
                            _f("Planned_Start__c", "datetime"),
                            _f("Actual_Start__c", "datetime"),
                            _f("Actual_End__c", "datetime"), _f("Due__c", "datetime"),
                            _f("Attempts__c", "double"), _f("External_Reference__c"),
                            _f("Message__c", "textarea")],
}  # fmt: skip

_CHILDREN = [
    ChildRelationship("OrderItems", "OrderItem", "OrderId"),
    ChildRelationship("InvoiceLines", "InvoiceLine", "InvoiceId"),
    ChildRelationship("Fulfillment_Tasks__r", "Fulfillment_Task__c", "Order__c"),
]
_PARENT_OF_CHILD = {rel.child: rel.field for rel in _CHILDREN}
_NOT_CREATEABLE = {"Invoice", "InvoiceLine"}

# Fields the REST API refuses to write, reported as INVALID_FIELD_FOR_INSERT_UPDATE.
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


class Schema:
    """The org's objects; each emulator owns a copy so tests may remove fields."""

    def __init__(self) -> None:
        self.objects: dict[str, ObjectDef] = {}
        for name, fields in _FIELDS.items():
            defs = {f.name.lower(): f for f in [*_system(), *copy.deepcopy(fields)]}
            self.objects[name.lower()] = ObjectDef(
                name,
                KEY_PREFIXES[name],
                defs,
                createable=name not in _NOT_CREATEABLE,
                parent_field=_PARENT_OF_CHILD.get(name),
            )
        for rel in _CHILDREN:
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

    def remove_field(self, sobject: str, name: str) -> None:
        """Drop a field (as if an admin deleted it)."""
        odef = self.obj(sobject)
        if odef.fields.pop(name.lower(), None) is None:
            raise KeyError(f"{sobject}.{name}")
