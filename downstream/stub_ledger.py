"""What a stub system remembers: its effects by idempotency key, and its jobs' states.

Kept apart from the HTTP server (:mod:`downstream.stubs`) so the rules of exactly-once are
in one small place: a repeated key returns the first answer and makes no second effect;
``duplicates`` counts effects made for a step (``X-Orderflow-Step``) that already had one,
which only happens if a client sends the same step under a new key; ``payload_doubles``
counts effects whose payload (canonical, volatile fields left out: :data:`VOLATILE`) an
earlier effect of the same action already carried under another key, so the same work sent
again under a new revision, a new plan or a new key is seen too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PREFIXES = {"erp": "SO", "billing": "SUB", "provisioning": "PRV"}
#: Invoice transfers get ERP document numbers of their own series.
DOCUMENT_PREFIX = "DOC"
#: Payload fields that differ between two sendings of the same work (times, keys, tokens).
VOLATILE = frozenset(
    {"sent_at", "requested_at", "timestamp", "idempotency_key", "correlation", "event_id"}
)


@dataclass
class Effect:
    key: str
    action: str
    step_ref: str
    payload: dict[str, Any]
    reference: str
    state: str = "completed"  # completed | pending | failed | canceled
    correlation: str | None = None
    accepted_at: float = 0.0


@dataclass
class Ledger:
    requests: int = 0
    replays: int = 0
    duplicates: int = 0
    payload_doubles: int = 0
    callbacks_sent: int = 0
    #: Authorised POSTs being served now, and the most at once (a client's concurrency).
    in_flight: int = 0
    peak_in_flight: int = 0
    effects: list[Effect] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    steps: set[str] = field(default_factory=set)
    by_ref: dict[str, Effect] = field(default_factory=dict)
    #: (action, payload digest) -> the keys its effects came under.
    digests: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reference(self, system: str, action: str) -> str:
        if action == "invoices":
            count = sum(1 for e in self.effects if e.action == "invoices")
            return f"{DOCUMENT_PREFIX}-{count + 1:06d}"
        return f"{PREFIXES.get(system, 'REF')}-{len(self.effects) + 1:06d}"

    def add(
        self,
        system: str,
        key: str,
        action: str,
        step_ref: str,
        payload: dict[str, Any],
        *,
        state: str,
        correlation: str | None,
    ) -> Effect:
        """Make one effect (the caller holds the lock and has checked the key is new)."""
        if step_ref and step_ref in self.steps:
            self.duplicates += 1
        if step_ref:
            self.steps.add(step_ref)
        keys = self.digests.setdefault((action, digest(payload)), [])
        self.payload_doubles += bool(keys)
        keys.append(key)
        effect = Effect(
            key,
            action,
            step_ref,
            payload,
            self.reference(system, action),
            state=state,
            correlation=correlation,
            accepted_at=time.monotonic(),
        )
        self.effects.append(effect)
        self.by_ref[effect.reference] = effect
        return effect

    def doubles(self) -> list[dict[str, Any]]:
        """Each payload that reached the system under more than one key, with the keys."""
        return [
            {"action": action, "digest": value, "keys": list(keys)}
            for (action, value), keys in self.digests.items()
            if len(keys) > 1
        ]

    def stats(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "requests": self.requests,
            "effects": len(self.effects),
            "distinct_keys": len({e.key for e in self.effects}),
            "replays": self.replays,
            "duplicates": self.duplicates,
            "payload_doubles": self.payload_doubles,
            "pending": sum(1 for e in self.effects if e.state == "pending"),
            "callbacks_sent": self.callbacks_sent,
            "peak_in_flight": self.peak_in_flight,
        }


def digest(payload: Any) -> str:
    """A digest of ``payload`` that ignores key order and the :data:`VOLATILE` fields."""
    text = json.dumps(_stable(payload), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


#: Actions that undo what an earlier action made, and actions that change it in place (the
#: default rules' compensations and amends), matched on what the payload names.
UNDOES = {
    "deactivations": "activations",
    "subscription-stops": "subscriptions",
    "charge-refunds": "charges",
    "engagement-cancellations": "engagements",
    "sales-order-cancellations": "sales-orders",
}
CHANGES = {
    "license-changes": "activations",
    "subscription-changes": "subscriptions",
    "engagement-changes": "engagements",
    "sales-order-changes": "sales-orders",
}
IDENTITY = ("order_item_id", "order_number", "invoice_id")
#: Where a payload (or its line) says how many, and of what: the contracts' names.
QUANTITY = ("quantity", "seats")
PRODUCT = ("product", "product_code", "license_sku")


def in_force(effects: list[Effect]) -> list[dict[str, Any]]:
    """What a system holds in force: effects neither canceled nor undone by a later one,
    each as its payload with later changes applied (a sales order's lines by ``line_id``;
    a line changed with action Cancel is gone), plus ``action`` and ``reference``."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for effect in effects:
        if effect.state in ("canceled", "failed"):
            continue
        name = next((str(effect.payload[k]) for k in IDENTITY if k in effect.payload), "")
        if effect.action in UNDOES:
            held.pop((UNDOES[effect.action], name), None)
        elif effect.action in CHANGES:
            target = held.get((CHANGES[effect.action], name))
            if target is not None:
                _change(target, effect.payload)
        else:
            held[(effect.action, name)] = {
                **effect.payload,
                "action": effect.action,
                "reference": effect.reference,
            }
    return list(held.values())


def _change(target: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if key == "lines" and isinstance(value, list):
            lines = {str(li.get("line_id")): li for li in target.get("lines") or []}
            for line in value:
                if line.get("action") == "Cancel":
                    lines.pop(str(line.get("line_id")), None)
                else:
                    key = str(line.get("line_id"))
                    changed = {k: v for k, v in line.items() if k != "action"}
                    lines[key] = {**lines.get(key, {}), **changed}
            target["lines"] = list(lines.values())
        else:
            target[key] = value


def answer_for(effect: Effect) -> dict[str, Any]:
    body: dict[str, Any] = {"status": effect.state, "reference": effect.reference}
    if effect.action == "invoices":
        body["document_number"] = effect.reference
    return body


def find_sku(payload: Any, skus: frozenset[str]) -> str | None:
    """The first value anywhere in the payload that is one of ``skus``."""
    if isinstance(payload, dict):
        payload = list(payload.values())
    if isinstance(payload, list):
        for value in payload:
            found = find_sku(value, skus)
            if found:
                return found
        return None
    return payload if isinstance(payload, str) and payload in skus else None


def document_of(held: dict[str, Any]) -> dict[str, Any]:
    """What a system holds in force (one entry of :func:`in_force`) as it lists it: the
    document's number is the reference it answered with; amounts and quantities are read
    from the payload as the default rules' contracts name them (an activation counts its
    ``seats`` of a ``license_sku``)."""
    lines = held.get("lines") if isinstance(held.get("lines"), list) else None
    quantities: dict[str, float] = {}
    for line in lines if lines is not None else [held]:
        counted = next((k for k in QUANTITY if k in line), None)
        if counted is not None:
            product = str(next((line[k] for k in PRODUCT if line.get(k)), line.get("line_id")))
            quantities[product] = quantities.get(product, 0.0) + float(line[counted])
    amount = held.get("total_amount")
    if amount is None and lines is not None and all("unit_price" in li for li in lines):
        amount = sum(float(li["quantity"]) * float(li["unit_price"]) for li in lines)
    elif amount is None and "unit_price_cents" in held:
        amount = float(held["quantity"]) * int(held["unit_price_cents"]) / 100
    source = ("invoice_id", "salesforce_order_id", "order_item_id")
    return {
        "number": held["reference"],
        "kind": held["action"],
        "source_id": next((held[k] for k in source if held.get(k)), None),
        "source_number": held.get("invoice_number") or held.get("order_number"),
        "issued_on": held.get("invoice_date")
        or held.get("effective_date")
        or held.get("start_date"),
        "amount": amount,
        "quantities": quantities,
    }
