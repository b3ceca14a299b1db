"""Account names where Salesforce gave them: read with each Order by the real poll (the
relationship field, as the integration user may read it), shown by the canvas and
`orderflow status ORDER`; without Account read, the ids as before and nothing fails."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr

from daemon.commands.main import main
from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.store.accounts import account_names
from daemon.web.listener import Listener, create_app, daemon_routes
from tests.integration.world import World


@pytest.fixture(autouse=True)
def _quiet_logging() -> Iterator[None]:
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def canvas(ctx: Context) -> Listener:
    routes = daemon_routes(ctx, operator_token=SecretStr("account-names-token"))
    listener = Listener(create_app(ctx, extra_routes=routes), "127.0.0.1", 0)
    listener.start()
    return listener


def get(url: str, path: str) -> requests.Response:
    answer = requests.get(f"{url}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def test_a_poll_keeps_the_account_name_and_every_view_shows_it(world: World, monkeypatch, capsys):
    order = world.add_order("PLAT-PRO")
    account = world.emu.get("Order", order)["AccountId"]
    name = world.emu.get("Account", account)["Name"]
    ctx = world.context(monkeypatch)
    assert ctx.poll_fields.account_names, "the integration user reads Account"
    run_cycle(ctx)
    with ctx.sessions() as session:
        assert account_names(session, [order]) == {order: name}

    listener = canvas(ctx)
    try:
        rows = get(listener.url, "/canvas/api/orders").json()["rows"]
        assert [(r["account_name"], r["account_id"]) for r in rows] == [(name, account)]
        page = get(listener.url, "/canvas/").text
        assert f'title="{account}">{name}</td>' in page, "the name, the id on hover"
        plan = get(listener.url, f"/canvas/plans/{rows[0]['id']}").text
        assert name in plan and account in plan
    finally:
        listener.stop()

    capsys.readouterr()
    assert main(["status", order, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["account_name"], shown["account_id"]) == (name, account)
    assert main(["status", order]) == 0
    assert f"account: {name} ({account})" in capsys.readouterr().out.splitlines()


def test_without_account_read_the_id_shows_and_nothing_fails(world: World, monkeypatch, capsys):
    order = world.add_order("PLAT-PRO")
    account = world.emu.get("Order", order)["AccountId"]
    name = world.emu.get("Account", account)["Name"]
    world.emu.access.revoke("Account")  # Account.Name would be an INVALID_FIELD
    ctx = world.context(monkeypatch)
    assert not ctx.poll_fields.account_names
    report = run_cycle(ctx)
    assert report.planned == 1

    listener = canvas(ctx)
    try:
        (row,) = get(listener.url, "/canvas/api/orders").json()["rows"]
        assert (row["account_name"], row["account_id"]) == (None, account)
        assert name not in get(listener.url, f"/canvas/plans/{row['id']}").text
    finally:
        listener.stop()
    capsys.readouterr()
    assert main(["status", order]) == 0
    assert f"account: {account}" in capsys.readouterr().out.splitlines()
