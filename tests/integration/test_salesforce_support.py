"""Shared by the Salesforce gateway tests: a small, stable rules file and a daemon context
on it (the bundled default rules grow with other issues; these tests need only callouts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.context import Context
from tests.integration.world import World

RULES = """
# Orderflow's default decomposition rules: a software company's catalogue.
#
# Each commercial order becomes one ERP sales order (many:1), and each line its billing and
# provisioning steps (provisioning after billing, and after the ERP knows the order).
# `orderflow rules check FILE` validates a file like this one.
version: "sf-tests-1"
systems: [erp, billing, provisioning]

tables:
  sku:
    PLAT-ENT: LIC-PLATFORM-ENTERPRISE
    PLAT-PRO: LIC-PLATFORM-PRO
    PLAT-STD: LIC-PLATFORM-STARTER
    ADD-SSO: LIC-ADDON-SSO
    ADD-AUDIT: LIC-ADDON-AUDIT
    SEATS-EXTRA: LIC-SEATS

sla:
  callout: {estimate: 4h, jeopardy: 1h}
  auto: {estimate: 5m, jeopardy: 1m}
  manual: {estimate: 2d, jeopardy: 8h}

retry: {max_attempts: 6, initial: 2s, factor: 2, maximum: 5m}

rules:
  - name: erp_order
    scope: order
    steps:
      - key: sales_order
        kind: callout
        system: erp
        action: sales-orders
        title: "ERP: create sales order"
        payload:
          order_number: {from: order.OrderNumber}
          salesforce_order_id: {from: order.Id}
          account: {from: order.AccountId}
          effective_date: {from: order.EffectiveDate, transform: date}
          lines:
            each_line:
              line_id: {from: line.Id}
              product_code: {from: product.ProductCode}
              quantity: {from: line.Quantity}
              unit_price: {from: line.UnitPrice}
              start_date: {from: line.ServiceDate, transform: date}
              end_date: {from: line.EndDate, transform: date}

  - name: subscription
    when: {field: product.Family, op: in, value: [Subscription, License]}
    steps:
      - key: billing
        kind: callout
        system: billing
        action: subscriptions
        title: "Billing: start subscription"
        payload:
          order_item_id: {from: line.Id}
          account: {from: order.AccountId}
          product_code: {from: product.ProductCode}
          quantity: {from: line.Quantity}
          unit_price_cents: {from: line.UnitPrice, transform: scale, factor: 100}
          start_date: {from: line.ServiceDate, transform: date}
          end_date: {from: line.EndDate, transform: date}
      - key: provision
        kind: callout
        system: provisioning
        action: activations
        title: "Provisioning: activate licenses"
        depends_on: [billing, erp_order.sales_order]
        payload:
          order_item_id: {from: line.Id}
          tenant: {from: order.AccountId}
          license_sku: {from: product.ProductCode, transform: lookup, table: sku}
          seats: {from: line.Quantity, transform: int}
          start_date: {from: line.ServiceDate, transform: date}

  - name: services
    when: {field: product.Family, op: "=", value: Services}
    steps:
      - key: billing
        kind: callout
        system: billing
        action: charges
        title: "Billing: one-time charge"
        payload:
          order_item_id: {from: line.Id}
          account: {from: order.AccountId}
          product_code: {from: product.ProductCode}
          amount_cents: {from: line.UnitPrice, transform: scale, factor: 100}
          quantity: {from: line.Quantity}
      - key: engagement
        kind: callout
        system: provisioning
        action: engagements
        title: "Services: schedule engagement"
        depends_on: [erp_order.sales_order]
        payload:
          order_item_id: {from: line.Id}
          customer: {from: order.AccountId}
          service: {from: product.ProductCode}
          days: {from: line.Quantity, transform: int}
"""


def sf_context(world: World, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Context:
    """The real daemon context, on the rules above, never sleeping between retries."""
    rules = Path(world.workdir) / "sf-rules.yaml"
    rules.write_text(RULES)
    ctx = world.context(monkeypatch, rules_file=rules, **settings)
    ctx.gateway.sleep = lambda _seconds: None
    return ctx


def bulk_context(world: World, monkeypatch: pytest.MonkeyPatch) -> Context:
    """:func:`sf_context` whose waits for a Bulk API job last until the emulator has
    processed it: each look at a job finds it done (no timing in the tests)."""
    ctx = sf_context(world, monkeypatch)

    def wait(_seconds: float) -> None:
        world.emu.bulk.wait_idle()

    ctx.gateway.sleep = wait
    return ctx


def force_poll(ctx: Context) -> None:
    """Make the next cycle poll whatever the idle back-off says."""
    ctx.gateway.pacer.next_poll_at = None
