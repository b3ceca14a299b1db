"""Legacy CPQ ids end to end: emulated org → inbound remap → plan → outbound remap → stubs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.commands.main import main
from daemon.store.models import Task
from remap.ids import to15, to18
from tests.integration.test_salesforce_support import force_poll
from tests.integration.world import World, run_until_settled

PREFIXES = {"SBQQ__Subscription__c": "a1X", "SBQQ__QuoteLine__c": "a0R", "SBQQ__Quote__c": "a0Q"}
# A small rules file of its own, so these tests do not move with the default rules.
RULES = """
version: remap-test-1
systems: [erp, billing]
rules:
  - name: erp_order
    scope: order
    steps:
      - key: sales_order
        kind: callout
        system: erp
        action: sales-orders
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
  - name: subscription
    steps:
      - key: billing
        kind: callout
        system: billing
        action: subscriptions
        depends_on: [erp_order.sales_order]
        payload:
          order_item_id: {from: line.Id}
          account: {from: order.AccountId}
          product_code: {from: product.ProductCode}
          quantity: {from: line.Quantity}
          unit_price_cents: {from: line.UnitPrice, transform: scale, factor: 100}
          start_date: {from: line.ServiceDate, transform: date}
          subscription: {from: line.SBQQ__Subscription__c}
"""
REMAP = {
    "remap_prefixes": json.dumps(PREFIXES),
    "remap_discovery_fields": '["OrderItem.Legacy_CPQ_Id__c", "Order.SBQQ__Quote__c"]',
    "remap_reference_fields": '["OrderItem.SBQQ__Subscription__c"]',
    "remap_outbound": '{"erp": {"speaks": "legacy", "until": "2027-01-01"}}',
}


def legacy(prefix: str, n: int) -> str:
    return to18(f"{prefix}3Kp{n:09d}")


def migrated_order(world: World, **line_fields: str) -> tuple[str, str]:
    """An activated order of one PLAT-PRO line carrying CPQ fields; (order id, line id)."""
    order_id = world.add_order("PLAT-PRO", status="Draft")
    (line,) = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order_id]
    world.emu.update("OrderItem", line["Id"], line_fields)
    world.emu.update("Order", order_id, {"Status": "Activated"})
    return order_id, line["Id"]


def write_csv(path: Path, *rows: tuple[str, str, str, str]) -> Path:
    lines = ["legacy_id,legacy_type,standard_id,standard_type"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def orderflow(*args: str) -> int:
    return main(list(args))


@pytest.fixture
def remap(tmp_path: Path) -> dict[str, str]:
    """The remap settings of these tests, with their rules file."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {**REMAP, "rules_file": str(rules)}


def test_an_unmapped_subscription_makes_the_order_fallout_with_the_reason_on_it(
    world: World, monkeypatch, tmp_path, remap
):
    old_line = legacy("a1X", 1)
    unmapped = legacy("a1X", 2)
    mapped_id, _ = migrated_order(world, SBQQ__Subscription__c=to15(old_line))
    held_id, held_line = migrated_order(world, SBQQ__Subscription__c=to15(unmapped))
    ctx = world.context(monkeypatch, **remap)
    monkeypatch.setenv("ORDERFLOW_REMAP_PREFIXES", json.dumps(PREFIXES))
    asset = to18("02i3Kp000000001")
    crosswalk = write_csv(tmp_path / "cw.csv", (old_line, "SBQQ__Subscription__c", asset, "Asset"))
    assert orderflow("remap", "import", str(crosswalk)) == 0

    run_until_settled(ctx, world)

    assert world.order_statuses() == {mapped_id: "Completed", held_id: "Fallout"}
    reason = f"legacy SBQQ__Subscription__c {unmapped} has no standard mapping"
    assert reason in world.emu.get("Order", held_id)["Fulfillment_Message__c"]
    with ctx.sessions() as session:
        (fallout,) = session.query(Task).filter(Task.state == "Fatally Failed").all()
    assert (fallout.message, fallout.line_id) == (reason, held_line)
    erp = world.stubs["erp"].effects
    assert len(erp) == 1, "nothing of the held order was sent anywhere"
    billed = [e.payload["order_item_id"] for e in world.stubs["billing"].effects]
    assert held_line not in billed


def test_a_held_order_is_planned_once_its_mapping_is_imported(
    world: World, monkeypatch, tmp_path, remap
):
    unmapped = legacy("a1X", 3)
    held_id, held_line = migrated_order(world, SBQQ__Subscription__c=to15(unmapped))
    ctx = world.context(monkeypatch, **remap)
    monkeypatch.setenv("ORDERFLOW_REMAP_PREFIXES", json.dumps(PREFIXES))
    run_until_settled(ctx, world)
    assert world.order_statuses() == {held_id: "Fallout"}
    assert world.stubs["erp"].effects == [], "nothing of a held order is sent"

    asset = to18("02i3Kp000000003")
    crosswalk = write_csv(tmp_path / "cw.csv", (unmapped, "SBQQ__Subscription__c", asset, "Asset"))
    assert orderflow("remap", "import", str(crosswalk)) == 0
    run_until_settled(ctx, world)  # the Order did not change: the import alone releases it

    assert world.order_statuses() == {held_id: "Completed"}
    (billed,) = world.stubs["billing"].effects
    assert (billed.payload["order_item_id"], billed.payload["subscription"]) == (held_line, asset)
    with ctx.sessions() as session:
        held = session.query(Task).filter(Task.revision == 1).all()
        planned = session.query(Task).filter(Task.revision == 2).all()
    assert {t.state for t in held} == {"Discarded"}, "the held step, discarded, not resolved"
    assert {t.state for t in planned} == {"Completed"} and len(planned) == 2


def test_a_held_order_corrected_in_salesforce_is_planned(world: World, monkeypatch, remap):
    held_id, held_line = migrated_order(world, SBQQ__Subscription__c=to15(legacy("a1X", 4)))
    ctx = world.context(monkeypatch, **remap)
    run_until_settled(ctx, world)
    assert world.order_statuses() == {held_id: "Fallout"}

    world.emu.update("OrderItem", held_line, {"SBQQ__Subscription__c": None})  # a new sale
    force_poll(ctx)
    run_until_settled(ctx, world)

    assert world.order_statuses() == {held_id: "Completed"}
    assert [e.payload["order_item_id"] for e in world.stubs["billing"].effects] == [held_line]


@pytest.mark.parametrize(
    ("now", "speaks_legacy"),
    [
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), True),
        (datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC), False),
    ],
)
def test_the_erp_gets_legacy_ids_before_its_cut_over_and_standard_ids_after(
    world: World, monkeypatch, tmp_path, remap, now, speaks_legacy
):
    line_sub = legacy("a1X", 5)
    order_id, line_id = migrated_order(world, Legacy_CPQ_Id__c=line_sub)
    old_order = to18("8013Kp000000077")
    monkeypatch.setenv("ORDERFLOW_REMAP_PREFIXES", json.dumps(PREFIXES))
    write_csv(tmp_path / "orders.csv", (old_order, "Order", order_id, "Order"))
    ctx = world.context(monkeypatch, **remap)
    assert orderflow("remap", "import", str(tmp_path / "orders.csv")) == 0
    ctx.clock = lambda: now

    run_until_settled(ctx, world)

    (erp,) = world.stubs["erp"].effects
    lines = [line["line_id"] for line in erp.payload["lines"]]
    if speaks_legacy:
        assert erp.payload["salesforce_order_id"] == old_order
        assert lines == [line_sub], "the line's legacy id was discovered from Legacy_CPQ_Id__c"
    else:
        assert (erp.payload["salesforce_order_id"], lines) == (order_id, [line_id])
    billing = world.stubs["billing"].effects
    assert [e.payload["order_item_id"] for e in billing] == [line_id], "billing speaks standard"


def test_lookup_shows_discovered_mappings_and_the_erp_order_number_in_either_id_form(
    world: World, monkeypatch, capsys, remap
):
    line_sub = legacy("a1X", 9)
    order_id, line_id = migrated_order(world, Legacy_CPQ_Id__c=to15(line_sub))
    ctx = world.context(monkeypatch, **remap)
    run_until_settled(ctx, world)
    capsys.readouterr()

    assert orderflow("remap", "lookup", to15(line_sub), "--json") == 0
    as_15 = json.loads(capsys.readouterr().out)
    assert orderflow("remap", "lookup", line_sub.lower()) == 0
    text = capsys.readouterr().out
    (mapping,) = as_15["as_legacy"]
    assert (mapping["standard_id"], mapping["source"]) == (line_id, "salesforce")
    assert mapping["origin"] == f"OrderItem.Legacy_CPQ_Id__c on {line_id}"
    assert f"legacy SBQQ__Subscription__c -> OrderItem {line_id}" in text

    (effect,) = world.stubs["erp"].effects
    assert orderflow("remap", "lookup", order_id[:15], "--json") == 0
    keys = json.loads(capsys.readouterr().out)["external_keys"]
    assert [(k["system"], k["kind"], k["key"]) for k in keys] == [
        ("erp", "sales-orders", effect.reference)
    ]
    assert orderflow("remap", "lookup", effect.reference) == 0
    shown = capsys.readouterr().out
    assert f"erp sales-orders key {effect.reference} for Order {order_id}" in shown


def test_check_without_remap_settings_says_so_and_exits_2(world: World, monkeypatch, capsys):
    world.context(monkeypatch)  # everything set but ORDERFLOW_REMAP_*
    for form in ([], ["--json"], ["--csv"]):
        assert orderflow("remap", "check", *form) == 2
        captured = capsys.readouterr()
        assert captured.err == "orderflow: no ORDERFLOW_REMAP_* settings: nothing to check\n"
        assert captured.out == ""


def test_check_reports_coverage_by_type_with_the_orders_an_unresolved_id_blocks(
    world: World, monkeypatch, capsys, remap
):
    unmapped = legacy("a1X", 3)
    migrated_order(world, Legacy_CPQ_Id__c=legacy("a1X", 4))
    held_id, _ = migrated_order(world, SBQQ__Subscription__c=unmapped)
    ctx = world.context(monkeypatch, **remap)
    run_until_settled(ctx, world)
    number = world.emu.get("Order", held_id)["OrderNumber"]
    capsys.readouterr()

    assert orderflow("remap", "check", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["by_type"] == {
        "SBQQ__Subscription__c": {"referenced": 2, "resolved": 1, "unresolved": 1}
    }
    (missing,) = report["unresolved"]
    assert (missing["legacy_id"], missing["orders"]) == (unmapped, [number])

    assert orderflow("remap", "check", "--csv") == 1
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split(",") == [
        "legacy_id",
        "legacy_type",
        "fields",
        "resolved",
        "standard_id",
        "standard_type",
        "source",
        "orders",
    ]
    field = "OrderItem.SBQQ__Subscription__c"
    assert f"{unmapped},SBQQ__Subscription__c,{field},False,,,,{number}" in rows


def test_an_import_with_a_conflicting_row_is_refused_whole_naming_the_row(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("ORDERFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("ORDERFLOW_REMAP_PREFIXES", json.dumps(PREFIXES))
    sub1, sub2, sub3 = legacy("a1X", 1), legacy("a1X", 2), legacy("a1X", 3)
    line1, line2, line3 = (to18(f"8023Kp00000000{n}") for n in (1, 2, 3))
    first = write_csv(tmp_path / "first.csv", (sub1, "SBQQ__Subscription__c", line1, "OrderItem"))
    assert orderflow("remap", "import", str(first)) == 0
    second = write_csv(
        tmp_path / "second.csv",
        (sub2, "SBQQ__Subscription__c", line2, "OrderItem"),
        (to15(sub1), "SBQQ__Subscription__c", line3, "OrderItem"),  # sub1 is line1's already
        (sub3, "SBQQ__Subscription__c", line2, "OrderItem"),  # line2 is sub2's, two rows up
    )
    capsys.readouterr()

    assert orderflow("remap", "import", str(second)) == 2

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"orderflow: {second}:3: legacy SBQQ__Subscription__c {sub1}")
    assert err[0].endswith(f"but to {line1} by import {first} line 2")
    assert err[1].startswith(f"orderflow: {second}:4: OrderItem {line2} is mapped from")
    assert orderflow("remap", "lookup", sub2) == 1, "the file's good row was not applied"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("remap", "import", "missing.csv"), "missing.csv: cannot read"),
        (("remap", "lookup", "not-an-id"), "'not-an-id' is not a Salesforce id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ORDERFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert orderflow(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
