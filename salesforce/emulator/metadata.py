"""The deployable metadata (``salesforce/metadata``) read as the emulated org's own.

An admin deploys those files to a real org; the emulator loads the same files, so the org
the tests run against has exactly the custom fields, picklist values, lengths and
permission-set grants a deployed org has. Every package directory listed in
``sfdx-project.json`` is read (Invoice support is a folder of its own).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # the repository's own files, not untrusted input
from dataclasses import dataclass, field
from pathlib import Path

from salesforce.emulator.schema import FieldDef

ROOT = Path(__file__).resolve().parents[1] / "metadata"
#: The sets an admin assigns to Orderflow's integration user (the README says who gets which);
#: Orderflow_Viewer is for the people who read Orders and is never the API user's.
INTEGRATION_SETS = ("Orderflow_Integration", "Orderflow_Integration_Invoices")
_NS = "{http://soap.sforce.com/2006/04/metadata}"

#: Metadata field types as describe names them.
_TYPES = {
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Picklist": "picklist",
    "Number": "double",
    "Percent": "percent",
    "Currency": "currency",
    "DateTime": "datetime",
    "Date": "date",
    "Checkbox": "boolean",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "Url": "url",
    "Email": "email",
}


@dataclass
class Grants:
    """What the permission sets assigned to a user grant: objects, fields, user perms."""

    #: Object -> the permissions granted ("read", "create", "edit", "delete").
    objects: dict[str, set[str]] = field(default_factory=dict)
    #: "Object.Field" -> "read" or "edit" (edit implies read).
    fields: dict[str, str] = field(default_factory=dict)
    user: set[str] = field(default_factory=set)

    def merge(self, other: Grants) -> None:
        """Add ``other``'s grants to these (permission sets add up)."""
        for obj, perms in other.objects.items():
            self.objects.setdefault(obj, set()).update(perms)
        for name, level in other.fields.items():
            if self.fields.get(name) != "edit":
                self.fields[name] = level
        self.user |= other.user


@dataclass
class Metadata:
    """Custom fields by object and permission sets by name, as deployed."""

    fields: dict[str, list[FieldDef]] = field(default_factory=dict)
    permission_sets: dict[str, Grants] = field(default_factory=dict)
    #: Change event entities selected for Change Data Capture (``OrderChangeEvent``, ...).
    cdc_entities: list[str] = field(default_factory=list)


def _text(node: ET.Element, tag: str, default: str = "") -> str:
    found = node.find(f"{_NS}{tag}")
    return (found.text or default).strip() if found is not None else default


def _int(node: ET.Element, tag: str) -> int | None:
    value = _text(node, tag)
    return int(value) if value else None


def _field(root: ET.Element) -> FieldDef:
    name = _text(root, "fullName")
    kind = _text(root, "type")
    if kind not in _TYPES:
        raise ValueError(f"{name}: field type {kind} is not modelled by the emulator")
    values = tuple(
        _text(value, "fullName") for value in root.iter(f"{_NS}value") if _text(value, "fullName")
    )
    reference = _text(root, "referenceTo") or None
    length = _int(root, "length")
    if kind == "TextArea":
        length = 255
    return FieldDef(
        name,
        _TYPES[kind],
        external_id=_text(root, "externalId") == "true",
        reference_to=reference,
        relationship_name=name.removesuffix("__c") + "__r" if reference else None,
        label=_text(root, "label", name),
        length=length,
        precision=_int(root, "precision"),
        scale=_int(root, "scale"),
        required=_text(root, "required") == "true" or kind == "MasterDetail",
        unique=_text(root, "unique") == "true",
        picklist=values,
        restricted=root.findtext(f"{_NS}valueSet/{_NS}restricted") == "true",
    )


def _permission_set(root: ET.Element) -> Grants:
    grants = Grants()
    flags = {"allowRead": "read", "allowCreate": "create", "allowEdit": "edit"}
    flags["allowDelete"] = "delete"
    for perm in root.findall(f"{_NS}objectPermissions"):
        granted = {name for tag, name in flags.items() if _text(perm, tag) == "true"}
        grants.objects.setdefault(_text(perm, "object"), set()).update(granted)
    for perm in root.findall(f"{_NS}fieldPermissions"):
        if _text(perm, "editable") == "true":
            grants.fields[_text(perm, "field")] = "edit"
        elif _text(perm, "readable") == "true":
            grants.fields[_text(perm, "field")] = "read"
    for perm in root.findall(f"{_NS}userPermissions"):
        if _text(perm, "enabled") == "true":
            grants.user.add(_text(perm, "name"))
    return grants


def package_dirs(root: Path = ROOT) -> list[Path]:
    """The package directories ``sfdx-project.json`` lists, in its order."""
    project = json.loads((root / "sfdx-project.json").read_text())
    return [root / str(entry["path"]) for entry in project["packageDirectories"]]


def load(root: Path = ROOT) -> Metadata:
    """Every custom field, permission set and channel member (entities selected for Change
    Data Capture) of every package directory under ``root``; what else is deployed
    (layouts, list views, tabs, components) the emulator leaves out."""
    found = Metadata()
    for package in package_dirs(root):
        for path in sorted(package.glob("**/objects/*/fields/*.field-meta.xml")):
            sobject = path.parent.parent.name
            found.fields.setdefault(sobject, []).append(_field(ET.parse(path).getroot()))  # noqa: S314
        for path in sorted(package.glob("**/permissionsets/*.permissionset-meta.xml")):
            name = path.name.removesuffix(".permissionset-meta.xml")
            found.permission_sets[name] = _permission_set(ET.parse(path).getroot())  # noqa: S314
        members = "**/platformEventChannelMembers/*.platformEventChannelMember-meta.xml"
        for path in sorted(package.glob(members)):
            member = ET.parse(path).getroot()  # noqa: S314
            if _text(member, "eventChannel") == "ChangeEvents":
                found.cdc_entities.append(_text(member, "selectedEntity"))
    return found
