"""What the API user may see and change: the permission sets assigned to it, applied.

The daemon logs in as an integration user whose profile grants nothing ("Minimum Access -
API Only Integrations"), so everything comes from permission sets: an object it cannot read
does not exist for it (INVALID_TYPE), a field it cannot read is no column (INVALID_FIELD),
and a field it may read but not edit is refused on write (INVALID_FIELD_FOR_INSERT_UPDATE).
Fields without field-level security (system, auto-number and required fields) follow their
object's permissions. The emulator's own seeding is an admin's and is not limited by this.
"""

from __future__ import annotations

from dataclasses import replace

from salesforce.emulator.metadata import Grants
from salesforce.emulator.schema import ObjectDef, Schema

#: What the demo org's integration user gets from outside Orderflow's metadata: the CPQ
#: package's own permission set (its SBQQ__ fields) and the org's migration field. A
#: permission set that named them could not be deployed to an org without them.
ORG_GRANTS = Grants(
    fields={
        "Order.SBQQ__Quote__c": "read",
        "OrderItem.SBQQ__Subscription__c": "read",
        "OrderItem.SBQQ__QuoteLine__c": "read",
        "OrderItem.SBQQ__ContractAction__c": "read",
        "OrderItem.Legacy_CPQ_Id__c": "read",
    }
)


def undeployable(schema: Schema, grants: Grants) -> list[str]:
    """The field grants a deploy refuses: a field without field-level security (required,
    system or auto-number) in a permission set is "You cannot deploy to a required field";
    its object's permissions are what grant it."""
    refused = []
    for name in sorted(grants.fields):
        sobject, _, field_name = name.partition(".")
        odef = schema.find(sobject)
        fdef = odef.field(field_name) if odef is not None else None
        if fdef is not None and not fdef.permissionable:
            refused.append(f"You cannot deploy to a required field: {name}")
    return refused


class Access:
    """The API user's grants over a schema, and the schema as that user sees it."""

    def __init__(self, schema: Schema, grants: Grants) -> None:
        self.schema = schema
        self.grants = grants
        self._view: tuple[int, Schema] | None = None

    def revoke(self, name: str) -> None:
        """Take a grant away: ``"Object.Field"`` a field's, ``"Object"`` the object's."""
        if "." in name:
            self.grants.fields.pop(name, None)
        else:
            self.grants.objects.pop(name, None)
        self._view = None

    def grant(self, name: str, level: str) -> None:
        """Set a field's grant: ``"Object.Field"`` to "read" or "edit"."""
        self.grants.fields[name] = level
        self._view = None

    def view(self) -> Schema:
        """The objects and fields the user can read, each createable and updateable only
        where the grants allow it (rebuilt when the schema or the grants change)."""
        if self._view is None or self._view[0] != self.schema.revision:
            seen = Schema.__new__(Schema)
            seen.revision = self.schema.revision
            seen.objects = {}
            for key, odef in self.schema.objects.items():
                visible = self._visible(odef)
                if visible is not None:
                    seen.objects[key] = visible
            for odef in seen.objects.values():
                odef.children = {
                    key: rel
                    for key, rel in odef.children.items()
                    if (child := seen.find(rel.child)) is not None and child.field(rel.field)
                }
            self._view = (self.schema.revision, seen)
        return self._view[1]

    def _visible(self, odef: ObjectDef) -> ObjectDef | None:
        perms = self.grants.objects.get(odef.name, set())
        if "read" not in perms:
            return None
        fields = {}
        for key, fdef in odef.fields.items():
            level = self.grants.fields.get(f"{odef.name}.{fdef.name}")
            if fdef.permissionable and level is None:
                continue
            editable = not fdef.permissionable or level == "edit"
            fields[key] = replace(
                fdef,
                createable=fdef.createable and editable and "create" in perms,
                updateable=fdef.updateable and editable and "edit" in perms,
            )
        return replace(
            odef,
            fields=fields,
            children=dict(odef.children),
            createable=odef.createable and "create" in perms,
        )
