"""Flags are visible wherever an operator looks: status, status --json, task list, the
canvas; and a person acknowledges one with `orderflow flag ack`."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from daemon.commands.main import main
from daemon.web.listener import Listener, create_app, daemon_routes
from tests.integration.amend_world import poll_now
from tests.integration.world import World, run_until_settled

REFUSED = "line 1 (PLAT-PRO) is past its point of no return: cancellation refused"


@pytest.fixture(autouse=True)
def _quiet_logging():
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


@pytest.fixture
def refused(world: World, monkeypatch):
    """A completed order cancelled: its platform line is past the point of no return."""
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    other = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    world.emu.update("Order", order, {"Status": "Cancelled"})
    poll_now(ctx)
    run_until_settled(ctx, world)
    number = world.emu.get("Order", order)["OrderNumber"]
    return ctx, number, world.emu.get("Order", other)["OrderNumber"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_refusal_shows_in_status_task_list_and_the_canvas(refused, capsys):
    ctx, number, _ = refused
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    (flagged,) = json.loads(out)["flagged_orders"]
    assert (flagged["order"], flagged["flag"], flagged["acknowledged"]) == (number, REFUSED, None)
    assert f"Flagged {number}: {REFUSED}" in run(capsys, "status")[1]
    one = json.loads(run(capsys, "status", number, "--json")[1])
    assert one["status"] == "Completed"
    assert one["flag"] == REFUSED
    assert f"Flagged: {REFUSED}" in run(capsys, "status", number)[1]

    (row,) = json.loads(run(capsys, "task", "list", "--json")[1])
    assert (row["id"], row["order"], row["state"], row["message"]) == (
        None,
        number,
        "Flagged",
        REFUSED,
    )
    assert f"orderflow flag ack {number} --reason TEXT" in run(capsys, "task", "list")[1]

    listener = Listener(create_app(ctx, extra_routes=daemon_routes(ctx)), "127.0.0.1", 0)
    listener.start()
    try:
        url = f"{listener.url}/canvas/api/orders"
        everything = requests.get(url, timeout=10).json()
        tab = requests.get(url, params={"tab": "flagged"}, timeout=10).json()
        page = requests.get(f"{listener.url}/canvas/", params={"tab": "flagged"}, timeout=10)
    finally:
        listener.stop()
    assert everything["tab_counts"]["flagged"] == 1
    (shown,) = tab["rows"]
    assert (shown["order_number"], shown["attention"]) == (number, REFUSED)
    assert ">Flagged <b>1</b>" in page.text
    assert "past its point of no return" in page.text


def test_acknowledging_takes_it_off_the_task_list_only(refused, capsys):
    _, number, unflagged = refused
    code, out, _ = run(
        capsys, "flag", "ack", number, "--reason", "customer keeps it", "--actor", "ana"
    )
    assert (code, out.strip()) == (0, f"order {number}: flag acknowledged ({REFUSED})")
    assert run(capsys, "task", "list")[1].strip() == "nothing waiting for a person"
    (flagged,) = json.loads(run(capsys, "status", "--json")[1])["flagged_orders"]
    assert flagged["acknowledged"]["actor"] == "ana"
    assert flagged["acknowledged"]["reason"] == "customer keeps it"
    assert "(acknowledged by ana: customer keeps it)" in run(capsys, "status")[1]

    code, _, err = run(capsys, "flag", "ack", unflagged, "--reason", "why not")
    assert (code, err) == (2, f"orderflow: order {unflagged} has no flag to acknowledge\n")
    code, _, err = run(capsys, "flag", "ack", number, "--reason", "  ")
    assert (code, err) == (2, "orderflow: --reason must say why\n")
