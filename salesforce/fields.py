"""The Salesforce objects and fields Orderflow reads and writes, in one place.

``orderflow doctor`` checks each against the org's describe; writeback code takes the
written fields from here, so the check and the writes cannot drift apart. Add a field here
when Orderflow starts to read or write it.

The names writeback uses are :class:`StatusFields`: these defaults (the fields of
``salesforce/metadata/``), any of them renamed by ``ORDERFLOW_SF_WRITEBACK_FIELDS``, e.g.
``{"Order.Jeopardy_Status__c": "Risk__c"}`` (``"Fulfillment_Task__c"`` alone renames the
custom object).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum

from orchestration.jeopardy import Jeopardy
from orchestration.states import ErpSyncStatus, FulfillmentStatus, StepState
from salesforce.poller import LINE_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS

ORDER, ORDER_ITEM, TASK = "Order", "OrderItem", "Fulfillment_Task__c"

#: The one definition of the values Orderflow writes into each picklist of
#: ``salesforce/metadata`` (by default name); tests/unit/test_sf_picklists.py fails for a
#: value its field does not allow, and ``orderflow doctor`` compares them with describe.
PICKLISTS: dict[str, type[StrEnum]] = {
    "Order.Fulfillment_Status__c": FulfillmentStatus,
    "Order.Jeopardy_Status__c": Jeopardy,
    "OrderItem.Fulfillment_Status__c": FulfillmentStatus,
    "OrderItem.Jeopardy_Status__c": Jeopardy,
    "Fulfillment_Task__c.State__c": StepState,
    "Fulfillment_Task__c.Jeopardy__c": Jeopardy,
    "Invoice.ERP_Sync_Status__c": ErpSyncStatus,
}

#: Fields the poller reads, by object.
READ_FIELDS: dict[str, tuple[str, ...]] = {
    "Order": ORDER_FIELDS,
    "OrderItem": LINE_FIELDS,
    "Product2": PRODUCT_FIELDS,
}


@dataclass(frozen=True)
class StatusFields:
    """The API names of what writeback sets, by role."""

    order_status: str = "Fulfillment_Status__c"
    order_jeopardy: str = "Jeopardy_Status__c"
    order_message: str = "Fulfillment_Message__c"
    order_progress: str = "Fulfillment_Progress__c"
    order_updated: str = "Fulfillment_Updated__c"
    line_status: str = "Fulfillment_Status__c"
    line_jeopardy: str = "Jeopardy_Status__c"
    task_object: str = TASK
    task_key: str = "Task_Key__c"
    #: The Order lookup: set when the record is created only (like a master-detail field).
    task_order: str = "Order__c"
    task_system: str = "System__c"
    task_step: str = "Step__c"
    task_state: str = "State__c"
    task_sequence: str = "Sequence__c"
    task_jeopardy: str = "Jeopardy__c"
    task_planned_start: str = "Planned_Start__c"
    task_actual_start: str = "Actual_Start__c"
    task_actual_end: str = "Actual_End__c"
    task_due: str = "Due__c"
    task_attempts: str = "Attempts__c"
    task_external_ref: str = "External_Reference__c"
    task_message: str = "Message__c"

    @classmethod
    def renamed(cls, renames: Mapping[str, str]) -> StatusFields:
        """The defaults with ``renames`` (``"Object.DefaultName": "NewName"``) applied;
        ValueError names an unknown key."""
        by_key = {_key(f.name, str(f.default)): f.name for f in fields(cls)}
        unknown = sorted(set(renames) - set(by_key))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(by_key))}")
        return replace(cls(), **{by_key[key]: value for key, value in renames.items()})

    def configured(self, key: str) -> tuple[str, str]:
        """The object and field configured for ``key`` (``"Object.DefaultName"``); a key
        writeback does not rename (an Invoice field) is its own answer."""
        for f in fields(self):
            if f.name != "task_object" and _key(f.name, str(f.default)) == key:
                prefix = f.name.split("_")[0]
                sobject = {"order": ORDER, "line": ORDER_ITEM}.get(prefix, self.task_object)
                return sobject, str(getattr(self, f.name))
        sobject, _, name = key.partition(".")
        return sobject, name

    def by_object(self) -> dict[str, tuple[str, ...]]:
        """The fields set on update, by object (the Order lookup of a task is set once)."""
        out: dict[str, list[str]] = {ORDER: [], ORDER_ITEM: [], self.task_object: []}
        for f in fields(self):
            if f.name in ("task_object", "task_order"):
                continue
            obj = {"order": ORDER, "line": ORDER_ITEM}.get(f.name.split("_")[0], self.task_object)
            out[obj].append(getattr(self, f.name))
        return {obj: tuple(names) for obj, names in out.items()}


def _key(attribute: str, default: str) -> str:
    if attribute == "task_object":
        return TASK
    prefix = {"order": ORDER, "line": ORDER_ITEM, "task": TASK}[attribute.split("_")[0]]
    return f"{prefix}.{default}"


#: Fields writeback sets, by object (each must exist and be updateable), with the default
#: names; ``orderflow doctor`` checks the configured ones (see :func:`written_fields`).
WRITTEN_FIELDS: dict[str, tuple[str, ...]] = StatusFields().by_object()


def written_fields(status: StatusFields) -> dict[str, tuple[str, ...]]:
    """The fields writeback sets with ``status`` names, by object."""
    return status.by_object()


def objects() -> list[str]:
    """Every object Orderflow reads or writes, in a stable order."""
    return sorted({*READ_FIELDS, *WRITTEN_FIELDS})
