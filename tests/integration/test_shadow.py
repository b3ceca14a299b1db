"""Shadow mode over the emulator and the stubs: everything runs, nothing is sent or
written; the report compares the would-sends with a legacy export."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from daemon.commands.main import main
from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.ops.demo import act_as_operator
from daemon.store.models import Plan, ShadowSend, Task
from remap.ids import to15, to18
from tests.integration.test_amend_legacy import REMAP
from tests.integration.world import World, run_until_completed


def since_yesterday() -> list[str]:
    """The report's range: yesterday to today, read when the report runs (a test that
    crosses midnight still finds the sends it made)."""
    today = datetime.now(UTC).date()
    return ["--since", (today - timedelta(days=1)).isoformat(), "--until", today.isoformat()]


def run_shadow(ctx: Context, cycles: int = 20) -> dict[str, str]:
    """Cycles until every plan is Completed in the store (Salesforce shows nothing)."""
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]
    for _ in range(cycles):
        now[0] += timedelta(seconds=1)
        run_cycle(ctx)
        act_as_operator(ctx.sessions, ctx.clock(), delay=timedelta())
        with ctx.sessions() as session:
            statuses = {p.order_id: p.status for p in session.scalars(select(Plan))}
        if statuses and set(statuses.values()) == {"Completed"}:
            return statuses
    raise AssertionError(f"shadow plans not completed: {statuses}")


def stamps(world: World) -> dict[str, str]:
    """Every Order's and OrderItem's SystemModstamp: any write to one moves it."""
    return {
        r["Id"]: r["SystemModstamp"]
        for sobject in ("Order", "OrderItem")
        for r in world.emu.records(sobject)
    }


def export(rows: list[dict[str, str]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_shadow_run_sends_nothing_writes_nothing_and_records_what_it_would_send(
    world: World, monkeypatch
):
    orders = {world.add_order("PLAT-PRO", "ADD-AUDIT"), world.add_order("ADD-SSO")}
    before = stamps(world)
    ctx = world.context(monkeypatch, mode="shadow")
    statuses = run_shadow(ctx)

    assert set(statuses) == orders
    assert sum(s.stats()["requests"] for s in world.stubs.values()) == 0, "nothing sent"
    assert stamps(world) == before, "no record of the org was saved"
    assert set(world.order_statuses().values()) == {None}, "nothing written to Salesforce"
    assert world.emu.records("Fulfillment_Task__c") == []
    with ctx.sessions() as session:
        callouts = session.scalars(select(Task).where(Task.system.is_not(None))).all()
        sends = {s.idempotency_key: s for s in session.scalars(select(ShadowSend))}
    assert callouts and {t.idempotency_key for t in callouts} == set(sends)
    for task in callouts:
        assert sends[task.idempotency_key].payload == task.payload
        assert sends[task.idempotency_key].system == task.system


def test_the_shadow_report_finds_a_planted_difference(
    world: World, monkeypatch, capsys, tmp_path: Path
):
    world.add_order("PLAT-PRO", "ADD-AUDIT")
    world.add_order("ADD-SSO")
    ctx = world.context(monkeypatch, mode="shadow", **REMAP)
    run_shadow(ctx)
    with ctx.sessions() as session:
        billing = session.scalars(select(ShadowSend).where(ShadowSend.system == "billing")).all()
    # The legacy billing system knows one line by its CPQ subscription id; the crosswalk
    # maps it, so the report compares it as the standard OrderItem id.
    legacy = to18("a1X3Kp000000077")
    crosswalk = tmp_path / "cw.csv"
    crosswalk.write_text(
        "legacy_id,legacy_type,standard_id,standard_type\n"
        f"{legacy},SBQQ__Subscription__c,{billing[1].payload['order_item_id']},OrderItem\n"
    )
    assert main(["remap", "import", str(crosswalk)]) == 0
    capsys.readouterr()
    rows = [
        {
            "order_id": s.order_id[:15],  # a 15-character id in the export matches too
            "action": s.action,
            "order_item_id": s.payload["order_item_id"],
            "quantity": str(int(s.payload["quantity"])),
        }
        for s in billing
    ]
    rows[1]["order_item_id"] = to15(legacy)
    report = ["shadow", "report", *since_yesterday(), "--json"]

    assert main([*report, "--legacy", f"billing={export(rows, tmp_path / 'same.csv')}"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["counts"]["matched"] == len(billing) >= 3

    planted = [dict(r) for r in rows]
    planted[0]["quantity"] = "99"  # the legacy integration billed another quantity
    dropped = planted.pop()  # and never billed one line
    assert main([*report, "--legacy", f"billing={export(planted, tmp_path / 'diff.csv')}"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["counts"] == {
        "matched": len(billing) - 2,
        "different": 1,
        "missing in Orderflow": 0,
        "extra in Orderflow": 1,
    }
    (different,) = [f for f in found["findings"] if f["outcome"] == "different"]
    assert (
        different["detail"]
        == f"quantity: legacy '99.0', Orderflow '{float(rows[0]['quantity'])!r}'"
    )
    (extra,) = [f for f in found["findings"] if f["outcome"] == "extra in Orderflow"]
    assert extra["order_id"][:15] == dropped["order_id"]


def test_a_legacy_export_with_bad_rows_gets_a_line_each(
    world: World, monkeypatch, capsys, tmp_path: Path
):
    world.context(monkeypatch, mode="shadow")
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,action,quantity\n801000000000001,subscriptions\n,subscriptions,2\n")
    report = ["shadow", "report", *since_yesterday()]
    assert main([*report, "--legacy", f"billing={bad}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("orderflow")]
    assert err == [
        f"orderflow: {bad}:2: 2 values, the header has 3",
        f"orderflow: {bad}:3: order_id and action must not be empty",
    ]
    assert main([*report, "--legacy", f"nosuch={bad}"]) == 2
    assert "no such system" in capsys.readouterr().err


def test_go_live_adopts_what_the_legacy_side_fulfilled_and_sends_the_rest_once(
    world: World, monkeypatch, capsys, tmp_path: Path
):
    fulfilled = [world.add_order("ADD-AUDIT"), world.add_order("ADD-SSO")]
    waiting = world.add_order("ADD-AUDIT")  # the legacy side had not got to it yet
    ctx = world.context(monkeypatch, mode="shadow")
    run_shadow(ctx)
    with ctx.sessions() as session:
        sends = session.scalars(select(ShadowSend)).all()
    exports = []
    for system in sorted({s.system for s in sends}):
        rows = [
            {"order_id": s.order_id, "action": s.action}
            for s in sends
            if s.system == system and s.order_id in fulfilled
        ]
        exports += ["--legacy", f"{system}={export(rows, tmp_path / f'{system}.csv')}"]

    monkeypatch.setenv("ORDERFLOW_MODE", "shadow")
    assert main(["cutover", "--go-live", *exports]) == 2, "still in shadow mode"
    monkeypatch.setenv("ORDERFLOW_MODE", "live")
    assert main(["cutover", "--go-live", *exports]) == 0
    assert "2 orders fulfilled by the legacy side adopted, 1 to send" in capsys.readouterr().out
    assert main(["cutover", "--go-live", *exports]) == 2, "switched already"
    assert "no shadow run to switch from" in capsys.readouterr().err

    live = world.context(monkeypatch, mode="live")
    run_until_completed(live, world, waiting)

    statuses = world.order_statuses()
    assert (statuses[waiting], *(statuses[o] for o in fulfilled)) == ("Completed", None, None)
    sent = {e.key for stub in world.stubs.values() for e in stub.effects}
    assert sent == {s.idempotency_key for s in sends if s.order_id == waiting}, (
        "the waiting order's steps, under the keys the shadow run recorded; nothing else"
    )
    assert all(stub.stats()["duplicates"] == 0 for stub in world.stubs.values())
    with live.sessions() as session:
        adopted = session.scalars(select(Plan.order_id).where(Plan.adopted_at.is_not(None)))
        assert set(adopted) == set(fulfilled)
