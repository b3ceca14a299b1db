"""Every value Orderflow writes into a picklist is one the deployed picklist allows."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the repository's own metadata
from pathlib import Path

import pytest

from salesforce.fields import PICKLISTS

METADATA = Path(__file__).resolve().parents[2] / "salesforce" / "metadata"
MD = "{http://soap.sforce.com/2006/04/metadata}"


def _picklists() -> dict[str, tuple[bool, set[str]]]:
    """``Object.Field`` -> (restricted, values) for every picklist field deployed."""
    found: dict[str, tuple[bool, set[str]]] = {}
    for path in METADATA.glob("*/main/default/objects/*/fields/*.field-meta.xml"):
        root = ET.parse(path).getroot()  # noqa: S314
        if root.findtext(f"{MD}type") != "Picklist":
            continue
        values = {str(v.findtext(f"{MD}fullName")) for v in root.iter(f"{MD}value")}
        restricted = root.findtext(f"{MD}valueSet/{MD}restricted") == "true"
        found[f"{path.parent.parent.name}.{root.findtext(f'{MD}fullName')}"] = (restricted, values)
    return found


def test_every_deployed_picklist_has_its_values_defined_in_the_code():
    assert set(_picklists()) == set(PICKLISTS)


@pytest.mark.parametrize("name", sorted(PICKLISTS))
def test_every_value_written_is_allowed(name):
    restricted, allowed = _picklists()[name]
    assert restricted, f"{name} should be restricted: Orderflow writes only known values"
    written = {member.value for member in PICKLISTS[name]}
    assert written - allowed == set(), f"{name} does not allow {sorted(written - allowed)}"


def test_the_invoice_transfer_writes_only_its_picklist_values():
    from daemon.cycle.invoices import SYNC_STATUS
    from orchestration.states import ErpSyncStatus

    assert set(SYNC_STATUS.values()) <= set(ErpSyncStatus)
