"""The deployable metadata names every custom field and object Orderflow writes."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # our own files, not untrusted input
from pathlib import Path

import pytest

from daemon.cycle.writeback import FIELDS_WRITTEN

METADATA = Path(__file__).resolve().parents[2] / "salesforce" / "metadata"
ROOT = METADATA / "force-app/main/default"
#: Invoice support is a package directory of its own (orgs without Revenue Cloud Billing).
INVOICES = METADATA / "invoices/main/default"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}

#: Every custom field Orderflow writes or will write (the jeopardy and invoice issues).
EXPECTED = {
    "Order": {
        "Fulfillment_Status__c",
        "Jeopardy_Status__c",
        "Fulfillment_Message__c",
        "Fulfillment_Progress__c",
        "Fulfillment_Updated__c",
    },
    "OrderItem": {"Fulfillment_Status__c", "Jeopardy_Status__c"},
    "Invoice": {"ERP_Document_Number__c", "ERP_Sync_Status__c"},
    "Fulfillment_Task__c": {
        "Order__c",
        "Task_Key__c",
        "System__c",
        "Step__c",
        "State__c",
        "Jeopardy__c",
        "Planned_Start__c",
        "Actual_Start__c",
        "Actual_End__c",
        "Due__c",
        "Attempts__c",
        "External_Reference__c",
        "Message__c",
        "Sequence__c",
    },
}


def _parse(path: Path) -> ET.ElementTree[ET.Element]:
    return ET.parse(path)  # noqa: S314 - the repository's own metadata


MD = "{http://soap.sforce.com/2006/04/metadata}"


def _fields() -> dict[str, dict[str, ET.Element]]:
    found: dict[str, dict[str, ET.Element]] = {}
    paths = [*ROOT.glob("objects/*/fields/*.field-meta.xml")]
    paths += INVOICES.glob("objects/*/fields/*.field-meta.xml")
    for path in sorted(paths):
        root = _parse(path).getroot()
        assert root.tag == f"{MD}CustomField", path
        name = root.findtext("md:fullName", namespaces=NS)
        assert f"{name}.field-meta.xml" == path.name, path
        found.setdefault(path.parent.parent.name, {})[str(name)] = root
    return found


def test_every_xml_file_parses():
    files = list(METADATA.rglob("*.xml"))
    assert len(files) >= 25
    for path in files:
        _parse(path)


def test_every_field_orderflow_writes_is_deployed():
    deployed = {obj: set(fields) for obj, fields in _fields().items()}
    assert deployed == EXPECTED
    for obj, names in FIELDS_WRITTEN.items():
        assert set(names) <= deployed[obj], obj


def test_field_types_fit_what_is_written():
    fields = _fields()

    def kind(obj: str, name: str) -> str:
        return str(fields[obj][name].findtext("md:type", namespaces=NS))

    assert kind("Order", "Fulfillment_Progress__c") == "Percent"
    assert kind("Order", "Fulfillment_Updated__c") == "DateTime"
    message = fields["Order"]["Fulfillment_Message__c"]
    assert message.findtext("md:length", namespaces=NS) == "255"
    key = fields["Fulfillment_Task__c"]["Task_Key__c"]
    assert key.findtext("md:externalId", namespaces=NS) == "true"
    assert key.findtext("md:unique", namespaces=NS) == "true"
    assert kind("Fulfillment_Task__c", "Order__c") in ("Lookup", "MasterDetail")
    statuses = {
        v.findtext("md:fullName", namespaces=NS)
        for v in fields["Order"]["Fulfillment_Status__c"].iter(f"{MD}value")
    }
    assert statuses == {"Not Started", "In Progress", "Completed", "Fallout", "Cancelled",
                        "Superseded"}  # fmt: skip


def test_the_custom_object_is_defined():
    root = _parse(
        ROOT / "objects/Fulfillment_Task__c/Fulfillment_Task__c.object-meta.xml"
    ).getroot()
    assert root.findtext("md:deploymentStatus", namespaces=NS) == "Deployed"
    assert root.findtext("md:pluralLabel", namespaces=NS) == "Fulfillment Tasks"


def _grants(path: Path) -> tuple[dict[str, str], dict[str, set[str]], set[str]]:
    """(field -> "edit" or "read", object -> permissions, user permissions) of a set."""
    root = _parse(path).getroot()
    fields = {
        str(p.findtext("md:field", namespaces=NS)): (
            "edit" if p.findtext("md:editable", namespaces=NS) == "true" else "read"
        )
        for p in root.findall("md:fieldPermissions", NS)
    }
    objects = {
        str(p.findtext("md:object", namespaces=NS)): {
            tag
            for tag in ("allowRead", "allowCreate", "allowEdit", "allowDelete")
            if p.findtext(f"md:{tag}", namespaces=NS) == "true"
        }
        for p in root.findall("md:objectPermissions", NS)
    }
    user = {
        str(p.findtext("md:name", namespaces=NS))
        for p in root.findall("md:userPermissions", NS)
        if p.findtext("md:enabled", namespaces=NS) == "true"
    }
    return fields, objects, user


MAIN_SET = ROOT / "permissionsets/Orderflow_Integration.permissionset-meta.xml"
INVOICE_SET = INVOICES / "permissionsets/Orderflow_Integration_Invoices.permissionset-meta.xml"


@pytest.mark.parametrize("obj", sorted(EXPECTED))
def test_the_permission_sets_grant_every_field_written(obj):
    path = INVOICE_SET if obj == "Invoice" else MAIN_SET
    fields, objects, _user = _grants(path)
    edited = {name for name, level in fields.items() if level == "edit"}
    assert {f"{obj}.{name}" for name in EXPECTED[obj]} <= edited
    assert {"allowRead", "allowEdit"} <= objects[obj]


def test_the_main_set_grants_api_access_and_nothing_of_invoices():
    fields, objects, user = _grants(MAIN_SET)
    assert user == {"ApiEnabled"}
    assert not any(name.startswith("Invoice") for name in [*fields, *objects])
    assert objects["Fulfillment_Task__c"] == {"allowRead", "allowCreate", "allowEdit"}
    assert objects["Product2"] == {"allowRead"}
    # Nothing deleted, nothing beyond the objects Orderflow reads or writes.
    assert set(objects) == {"Account", "Order", "OrderItem", "Product2", "Fulfillment_Task__c"}


def test_the_invoice_set_is_only_about_invoices():
    fields, objects, user = _grants(INVOICE_SET)
    assert set(objects) == {"Invoice", "InvoiceLine"}
    assert objects["InvoiceLine"] == {"allowRead"}
    assert all(name.startswith(("Invoice.", "InvoiceLine.")) for name in fields)
    assert user == set()


def test_account_names_come_with_account_read_as_a_deploy_allows():
    from salesforce.emulator import metadata
    from salesforce.emulator.access import undeployable
    from salesforce.emulator.schema import Schema

    deployed = metadata.load()
    schema = Schema(deployed, invoices=True)
    # Account.Name is required, so it has no field-level security: a permission set naming
    # it does not deploy, and the Account read the main set grants is what lets Orderflow
    # read it (Order.Account.Name in the poll).
    assert "allowRead" in _grants(MAIN_SET)[1]["Account"]
    naming = metadata.Grants(fields={"Account.Name": "read", "Order.Description": "read"})
    assert undeployable(schema, naming) == ["You cannot deploy to a required field: Account.Name"]
    for name, grants in deployed.permission_sets.items():
        assert undeployable(schema, grants) == [], name
