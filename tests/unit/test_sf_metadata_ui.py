"""What Salesforce users see, as deployed: the viewer permission set, the Fulfillment Task
tab, list views and layouts, field history on the Order, and the record-page component
reading only fields that are deployed and granted to viewers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # our own files, not untrusted input
from pathlib import Path

import pytest

from tests.unit.test_sf_metadata import EXPECTED, MD, NS, ROOT, _fields, _grants, _parse

VIEWER_SET = ROOT / "permissionsets/Orderflow_Viewer.permissionset-meta.xml"
TASK = ROOT / "objects/Fulfillment_Task__c"
COMPONENT = ROOT / "lwc/orderflowFulfillment"
#: The fields Salesforce defines on every object, which list views and layouts may name.
STANDARD = {"Name", "NAME", "CreatedById", "LastModifiedById"}


def _texts(root: ET.Element, tag: str) -> list[str]:
    return [str(node.text) for node in root.iter(f"{MD}{tag}")]


def _picklist(obj: str, name: str) -> set[str]:
    field = _fields()[obj][name]
    return {str(v.findtext("md:fullName", namespaces=NS)) for v in field.iter(f"{MD}value")}


def test_the_viewer_set_reads_every_orderflow_field_and_edits_nothing():
    fields, objects, user = _grants(VIEWER_SET)
    shown = {
        f"{obj}.{name}" for obj, names in EXPECTED.items() if obj != "Invoice" for name in names
    }
    assert fields == dict.fromkeys(shown, "read")
    assert objects == {"Fulfillment_Task__c": {"allowRead"}}
    assert user == set()
    tabs = _parse(VIEWER_SET).getroot().findall("md:tabSettings", NS)
    assert [(t.findtext("md:tab", namespaces=NS), t.findtext("md:visibility", namespaces=NS))
            for t in tabs] == [("Fulfillment_Task__c", "Visible")]  # fmt: skip


def test_the_tab_is_the_fulfillment_task_objects():
    tab = _parse(ROOT / "tabs/Fulfillment_Task__c.tab-meta.xml").getroot()
    assert tab.findtext("md:customObject", namespaces=NS) == "true"
    assert tab.findtext("md:motif", namespaces=NS)


LIST_VIEWS = sorted(ROOT.glob("objects/*/listViews/*.listView-meta.xml"))


def test_the_list_views_the_issue_names_are_deployed():
    labels = {
        (path.parent.parent.name, _parse(path).getroot().findtext("md:label", namespaces=NS))
        for path in LIST_VIEWS
    }
    assert labels == {
        ("Fulfillment_Task__c", "Steps in jeopardy"),
        ("Fulfillment_Task__c", "Fallout"),
        ("Fulfillment_Task__c", "Waiting for a person"),
        ("Order", "Orders in jeopardy"),
    }


@pytest.mark.parametrize("path", LIST_VIEWS, ids=lambda p: p.name)
def test_list_views_filter_on_deployed_fields_and_picklist_values(path: Path):
    obj = path.parent.parent.name
    view = _parse(path).getroot()
    assert view.findtext("md:fullName", namespaces=NS) == path.name.split(".")[0]
    deployed = _fields()[obj]
    for column in _texts(view, "columns"):
        assert column in deployed or not column.endswith("__c"), column
    filters = view.findall("md:filters", NS)
    assert filters
    for item in filters:
        name = str(item.findtext("md:field", namespaces=NS))
        assert name in deployed, name
        value = item.findtext("md:value", namespaces=NS)
        if deployed[name].findtext("md:type", namespaces=NS) == "Picklist" and value:
            assert set(value.split(",")) <= _picklist(obj, name), value


def test_compact_search_and_page_layouts_name_deployed_fields():
    deployed = set(_fields()["Fulfillment_Task__c"]) | STANDARD
    obj = _parse(TASK / "Fulfillment_Task__c.object-meta.xml").getroot()
    compact_name = obj.findtext("md:compactLayoutAssignment", namespaces=NS)
    compact = _parse(TASK / f"compactLayouts/{compact_name}.compactLayout-meta.xml").getroot()
    assert set(_texts(compact, "fields")) <= deployed
    search = obj.find("md:searchLayouts", NS)
    assert search is not None
    assert {str(node.text) for node in search} <= deployed
    layout = _parse(ROOT / "layouts/Fulfillment_Task__c-Fulfillment Task Layout.layout-meta.xml")
    placed = _texts(layout.getroot(), "field")
    assert set(placed) == deployed - {"NAME"}  # every field, once
    assert len(placed) == len(set(placed))


def test_the_orders_status_and_jeopardy_keep_their_history():
    order = _fields()["Order"]
    tracked = {name for name, f in order.items() if f.findtext("md:trackHistory", namespaces=NS)}
    assert tracked == {"Fulfillment_Status__c", "Jeopardy_Status__c"}
    assert all(order[n].findtext("md:trackHistory", namespaces=NS) == "true" for n in tracked)


def test_the_component_reads_only_deployed_fields_a_viewer_may_read():
    source = (COMPONENT / "orderflowFulfillment.js").read_text()
    read = set(re.findall(r"'((?:Order|OrderItem|Fulfillment_Task__c)\.\w+)'", source))
    viewer, _objects, _user = _grants(VIEWER_SET)
    custom = {name for name in read if name.endswith("__c")}
    assert len(custom) >= 15
    assert custom <= set(viewer)
    assert read - custom == {"OrderItem.OrderId", "Fulfillment_Task__c.Name"}


def test_the_component_is_exposed_on_order_and_order_product_record_pages():
    meta = _parse(COMPONENT / "orderflowFulfillment.js-meta.xml").getroot()
    assert meta.findtext("md:isExposed", namespaces=NS) == "true"
    assert _texts(meta, "target") == ["lightning__RecordPage"]
    assert _texts(meta, "object") == ["Order", "OrderItem"]
