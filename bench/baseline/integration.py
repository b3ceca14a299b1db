"""One point-to-point integration: poll, send, write its own status back per record."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from salesforce.emulator import Emulator
from salesforce.emulator.schema import FieldDef

IN_PROGRESS, COMPLETED, FAILED = "In Progress", "Completed", "Failed"


@dataclass(frozen=True)
class Spec:
    """What one integration does: its system, its status field, what it waits for."""

    system: str
    field: str  # on Order, and on OrderItem when ``per_line``
    action: str
    per_line: bool
    after: tuple[str, ...] = ()  # status fields that must say Completed first


SPECS = (
    Spec("erp", "ERP_Status__c", "sales-orders", per_line=False),
    Spec("billing", "Billing_Status__c", "subscriptions", per_line=True),
    Spec(
        "provisioning",
        "Provisioning_Status__c",
        "activations",
        per_line=True,
        after=("ERP_Status__c", "Billing_Status__c"),
    ),
)
LINE_FIELDS = "Id, Product2Id, Quantity, UnitPrice, ServiceDate, EndDate"


def deploy_fields(emu: Emulator) -> None:
    """The custom status fields each old integration deployed, on Order and OrderItem, and
    the edit access to them its integration user was granted."""
    for spec in SPECS:
        for sobject in ("Order", "OrderItem"):
            emu.schema.obj(sobject).fields[spec.field.lower()] = FieldDef(spec.field, "picklist")
            emu.access.grant(f"{sobject}.{spec.field}", "edit")


class Integration:
    """Polls every ``interval`` seconds in its own thread until stopped."""

    def __init__(
        self, spec: Spec, sf: Salesforce, url: str, token: str, *, timeout: float = 30
    ) -> None:
        self.spec = spec
        self.sf = sf
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.polls = 0
        self.sent = 0
        self.errors = 0

    def soql(self) -> str:
        spec = self.spec
        waits = "".join(f" AND {name} = '{COMPLETED}'" for name in spec.after)
        reads = "".join(f", {name}" for name in spec.after)
        return (
            f"SELECT Id, OrderNumber, AccountId, EffectiveDate{reads},"
            f" (SELECT {LINE_FIELDS} FROM OrderItems)"
            f" FROM Order WHERE Status = 'Activated' AND {spec.field} = null{waits}"
        )

    def poll_once(self) -> int:
        """One poll: handle every order found. Returns how many."""
        self.polls += 1
        orders = self.sf.query_all(self.soql())["records"]
        for order in orders:
            self.handle(order)
        return len(orders)

    def handle(self, order: dict[str, Any]) -> None:
        spec = self.spec
        sobject: Any = self.sf.Order  # an SFType (typed as a union)
        sobject.update(order["Id"], {spec.field: IN_PROGRESS})
        lines = (order.get("OrderItems") or {}).get("records") or []
        ok = True
        if spec.per_line:
            items: Any = self.sf.OrderItem
            for line in lines:
                status = self.send(f"{spec.system}-{line['Id']}", {"order": order["Id"], **line})
                items.update(line["Id"], {spec.field: status})
                ok = ok and status == COMPLETED
        else:
            body = {"order": order["Id"], "number": order.get("OrderNumber"), "lines": lines}
            ok = self.send(f"{spec.system}-{order['Id']}", body) == COMPLETED
        sobject.update(order["Id"], {spec.field: COMPLETED if ok else FAILED})

    def send(self, key: str, body: dict[str, Any]) -> str:
        clean = {k: v for k, v in body.items() if k != "attributes"}
        try:
            answer = self.http.post(
                f"{self.url}/{self.spec.action}",
                json=clean,
                headers={"Idempotency-Key": key, "X-Orderflow-Step": key},
                timeout=self.timeout,
            )
        except requests.RequestException:
            self.errors += 1
            return FAILED
        self.sent += 1
        return COMPLETED if answer.ok else FAILED

    def run(self, interval: float, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.poll_once()
                stop.wait(interval)
        finally:
            self.http.close()
            self.sf.session.close()
