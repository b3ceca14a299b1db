"""Fallout over real HTTP, resolved with `orderflow task` against the real SQLite store."""

from __future__ import annotations

from sqlalchemy import select

from daemon.commands.main import main
from daemon.cycle.run import run_cycle
from daemon.store.models import Task, TaskEvent
from downstream.stubs import StubFaults, StubSystem
from tests.integration.world import World, run_until_settled


def reject_sso(world: World) -> None:
    """Provisioning refuses the SSO add-on's SKU for good (HTTP 422 UNKNOWN_SKU)."""
    picky = StubSystem(
        "provisioning",
        token="provisioning-secret-token",
        faults=StubFaults(reject_skus=frozenset({"LIC-ADDON-SSO"})),
    )
    picky.start()
    world.stubs["provisioning"].stop()
    world.stubs["provisioning"] = picky


def test_a_refused_step_is_fallout_until_an_operator_skips_it(world: World, monkeypatch, capsys):
    reject_sso(world)
    order_id = world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    assert world.order_statuses() == {order_id: "Fallout"}
    with ctx.sessions() as session:
        (failed,) = session.scalars(select(Task).where(Task.state == "Fatally Failed"))
    assert failed.key == "provision"
    assert "unknown SKU LIC-ADDON-SSO" in failed.message
    assert world.stubs["provisioning"].stats()["requests"] == 2, "no retry of a refusal"

    capsys.readouterr()
    assert main(["task", "list"]) == 0
    assert f"{failed.id:>7}" in capsys.readouterr().out

    code = main(
        ["task", "skip", str(failed.id), "--reason", "SSO sold by mistake", "--actor", "ana"]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().endswith(": Skipped")
    run_until_settled(ctx, world)
    assert world.order_statuses() == {order_id: "Completed"}
    with ctx.sessions() as session:
        last = session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == failed.id).order_by(TaskEvent.id.desc())
        ).first()
    assert last is not None
    assert (last.to_state, last.actor, last.reason) == (
        "Skipped",
        "ana",
        "operator skip: SSO sold by mistake",
    )


def test_task_commands_refuse_unknown_ids_and_illegal_moves_with_one_line(
    world: World, monkeypatch, capsys
):
    world.add_order("ADD-AUDIT")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    with ctx.sessions() as session:
        done = session.scalars(select(Task).where(Task.key == "sales_order")).one()
    capsys.readouterr()

    assert main(["task", "retry", "424242", "--reason", "try"]) == 2
    err = capsys.readouterr().err
    assert err == "orderflow: no task with id 424242\n"

    assert main(["task", "complete", str(done.id), "--reason", "done"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot complete a task that is Completed" in err

    run_cycle(ctx)
    with ctx.sessions() as session:
        assert session.get(Task, done.id).state == "Completed"  # type: ignore[union-attr]
