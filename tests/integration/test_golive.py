"""Go-live over the emulator and the stubs: no first start without a cut-over, history
adopted and never sent, changes to adopted orders sending only their delta."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from daemon.commands.main import main
from daemon.commands.run import adopt_history
from daemon.cycle.run import run_cycle
from daemon.ops.demo import demo_environment
from daemon.store.models import Cutover, Plan, Task, TaskEvent
from salesforce.emulator.values import format_datetime
from tests.integration.amend_world import actions, change_order, effects, lines_of, poll_now
from tests.integration.world import World, run_until_completed

PAST = datetime(2019, 5, 1, 10, tzinfo=UTC)
CUTOVER = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
CUTOVER_AT = CUTOVER.isoformat().replace("+00:00", "Z")


def historic(world: World, order_id: str, when: datetime = PAST) -> str:
    """Make ``order_id`` an order activated (and last saved) before the cut-over."""
    world.emu.update(
        "Order", order_id, {"ActivatedDate": format_datetime(when)}, system_modstamp=when
    )
    return order_id


def set_env(world: World, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in demo_environment(world.emu, world.stubs, world.workdir).items():
        if name.startswith("ORDERFLOW_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORDERFLOW_CUTOVER_AT")
    for name, value in settings.items():
        monkeypatch.setenv(f"ORDERFLOW_{name.upper()}", value)


def stub_calls(world: World) -> int:
    return sum(len(stub.effects) for stub in world.stubs.values())


@pytest.mark.parametrize("command", [["sync", "--once"], ["run"]])
def test_a_first_start_without_a_cut_over_is_refused_in_one_line(
    world: World, monkeypatch, capsys, command
):
    world.add_order("PLAT-PRO")
    set_env(world, monkeypatch)
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("orderflow: no cut-over:"), err
    assert "ORDERFLOW_CUTOVER_AT" in err[0] and "orderflow cutover --at" in err[0]
    assert world.emu.api_calls == 0, "refused before a single Salesforce call"
    assert stub_calls(world) == 0


def test_the_cut_over_is_stored_shown_and_changed_only_with_force(
    world: World, monkeypatch, capsys
):
    set_env(world, monkeypatch)
    assert main(["cutover", "--at", CUTOVER_AT]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["cutover"]
    assert shown["cutover"] == CUTOVER_AT
    assert shown["adopted_at"] is not None, "the (empty) history was adopted"

    earlier = (CUTOVER - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    assert main(["cutover", "--at", earlier]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changing it needs --force" in err[0]

    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    for bad in (future, "next tuesday"):
        with pytest.raises(SystemExit) as exit_:
            main(["cutover", "--at", bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("in the future" in err[0] or "not an ISO-8601" in err[0])

    assert main(["cutover", "--at", earlier, "--force", "--actor", "ops-lead"]) == 0
    assert main(["cutover", "--json"]) == 0
    capsys.readouterr()
    assert main(["cutover", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cutover"] == earlier
    assert [(h["at"], h["actor"]) for h in shown["history"]][1] == (earlier, "ops-lead")
    assert shown["history"][1]["reason"] == f"changed from {CUTOVER_AT} (--force)"

    monkeypatch.setenv("ORDERFLOW_CUTOVER_AT", CUTOVER_AT)  # disagrees with the stored one
    assert main(["sync", "--once"]) == 2
    assert "is not the stored cut-over" in capsys.readouterr().err
    assert stub_calls(world) == 0


def test_history_is_adopted_never_sent_and_what_follows_is_sent(world: World, monkeypatch):
    old = historic(world, world.add_order("PLAT-PRO", "ADD-AUDIT"))
    cancelled = historic(world, world.add_order("PLAT-PRO", status="Cancelled"))
    (line, _) = lines_of(world, old)
    amended = historic(world, change_order(world, old, {line["Id"]: 2}), PAST + timedelta(days=9))
    new = world.add_order("PLAT-PRO")  # activated now, after the cut-over
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT)
    adopt_history(ctx)
    assert stub_calls(world) == 0  # adoption itself sends nothing
    run_until_completed(ctx, world, new)

    # Only the order after the cut-over reached the systems.
    sent_orders = {e["salesforce_order_id"] for e in effects(world, "erp")}
    assert sent_orders == {new}
    assert actions(world, "billing") == ["subscriptions"]
    with ctx.sessions() as session:
        plans = {p.order_id: p for p in session.scalars(select(Plan))}
        assert cancelled not in plans, "cancelled before the cut-over: nothing to adopt"
        assert plans[old].superseded_by == amended
        assert plans[amended].adopted_at is not None and plans[new].adopted_at is None
        adopted = session.scalars(
            select(Task).join(Plan).where(Plan.order_id == amended, Task.revision == 2)
        ).all()
        assert adopted and {t.state for t in adopted} <= {"Completed", "Amended", "Discarded"}
        events = session.scalars(
            select(TaskEvent).where(TaskEvent.task_id.in_([t.id for t in adopted]))
        ).all()
        assert {(e.actor, e.reason) for e in events if e.to_state == "Completed"} == {
            ("cutover", "fulfilled before cut-over")
        }
    # Salesforce left as the legacy side left it: no status, no task record for history.
    statuses = world.order_statuses()
    assert (statuses[old], statuses[amended], statuses[new]) == (None, None, "Completed")
    tasks = world.emu.records("Fulfillment_Task__c")
    assert tasks and {t["Order__c"] for t in tasks} == {new}


def test_cut_over_writeback_true_shows_adopted_orders_completed(world: World, monkeypatch):
    old = historic(world, world.add_order("PLAT-PRO"))
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT, cutover_writeback="true")
    adopt_history(ctx)
    run_cycle(ctx)
    assert world.order_statuses() == {old: "Completed"}
    assert stub_calls(world) == 0


def test_a_change_order_to_an_adopted_order_sends_only_its_delta(world: World, monkeypatch):
    old = historic(world, world.add_order("ADD-AUDIT"))
    (line,) = lines_of(world, old)
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT)
    adopt_history(ctx)
    run_cycle(ctx)
    assert stub_calls(world) == 0

    change = change_order(world, old, {line["Id"]: 3})  # activated now: after the cut-over
    poll_now(ctx)
    run_until_completed(ctx, world, change)

    assert world.order_statuses()[change] == "Completed"
    assert actions(world, "erp") == ["sales-order-changes"]
    (erp_change,) = effects(world, "erp")
    assert (erp_change["lines"][0]["action"], erp_change["lines"][0]["quantity"]) == ("Amend", 8.0)
    assert actions(world, "billing") == ["subscription-changes"]
    assert effects(world, "billing")[0]["quantity"] == 8.0
    assert actions(world, "provisioning") == ["license-changes"]
    assert effects(world, "provisioning")[0]["seats"] == 8


def test_a_cancellation_of_an_adopted_order_sends_only_its_compensations(world: World, monkeypatch):
    old = historic(world, world.add_order("ADD-AUDIT"))
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT)
    adopt_history(ctx)
    run_cycle(ctx)
    world.emu.update("Order", old, {"Status": "Cancelled"})  # after the cut-over
    poll_now(ctx)
    run_until_completed(ctx, world, old)

    assert world.order_statuses()[old] == "Cancelled"
    assert actions(world, "billing") == ["subscription-stops"]
    assert actions(world, "provisioning") == ["deactivations"]
    assert "sales-orders" not in actions(world, "erp")
    with ctx.sessions() as session:
        (row,) = session.scalars(select(Cutover)).all()
        assert row.adopted_at is not None


def test_go_live_without_a_cut_over_is_refused(world: World, monkeypatch, capsys):
    set_env(world, monkeypatch)
    assert main(["cutover", "--go-live"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("orderflow")]
    assert len(err) == 1 and err[0].startswith("orderflow: --go-live needs a cut-over")


def test_an_invoice_dated_before_the_cut_over_is_adopted_not_transferred(world: World, monkeypatch):
    order = world.add_order("ADD-AUDIT")
    (line,) = lines_of(world, order)
    invoices = {}
    today = datetime.now(UTC).date()  # read once: the test may cross midnight
    for when in (PAST.date(), today):
        invoice = world.emu.insert(
            "Invoice",
            {
                "Status": "Posted",
                "BillingAccountId": world.emu.get("Order", order)["AccountId"],
                "ReferenceEntityId": order,
                "InvoiceDate": when.isoformat(),
                "TotalAmount": 500.0,
            },
        )
        world.emu.insert(
            "InvoiceLine",
            {
                "InvoiceId": invoice,
                "Product2Id": line["Product2Id"],
                "Quantity": 5,
                "ChargeAmount": 500.0,
                "ReferenceEntityItemId": line["Id"],
            },
        )
        invoices[when] = invoice
    ctx = world.context(monkeypatch, cutover_at=CUTOVER_AT)
    run_until_completed(ctx, world, order)

    transferred = {e["invoice_id"] for e in effects(world, "erp", "invoices")}
    assert transferred == {invoices[today]}, "only the one after the cut-over"
    with ctx.sessions() as session:
        old = session.scalars(select(Plan).where(Plan.order_id == invoices[PAST.date()])).one()
        assert (old.adopted_at is not None, old.status) == (True, "Completed")
