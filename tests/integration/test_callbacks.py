"""Asynchronous completion by signed callback, over the daemon's real HTTP listener."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import requests

from daemon.service.retention import RECEIPTS_KEPT, prune_receipts
from daemon.store.models import CallbackReceipt
from daemon.web.listener import Listener, create_app, daemon_routes
from downstream.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from orchestration.states import StepState
from tests.integration.downstream_world import cycle_until, swap_stub, tasks
from tests.integration.world import World, run_until_settled

SECRET = "callback-shared-secret"


@pytest.fixture
def listener_url(world: World, monkeypatch):
    stub = swap_stub(
        world, "provisioning", completion="callback", complete_after=None, callback_secret=SECRET
    )
    ctx = world.context(
        monkeypatch,
        provisioning_callback_secret=SECRET,
        provisioning_status_poll_interval=0,
    )
    listener = Listener(create_app(ctx, extra_routes=daemon_routes(ctx)), "127.0.0.1", 0)
    listener.start()
    stub.callback_url = listener.url
    yield ctx, stub, listener.url
    listener.stop()


def post(url, body: dict, secret: str = SECRET, stamp: str | None = None):
    raw = json.dumps(body).encode()
    stamp = stamp or str(int(time.time()))
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, raw)}
    return requests.post(f"{url}/callbacks/provisioning", data=raw, headers=headers, timeout=10)


def accepted(ctx):
    return [t for t in tasks(ctx, "provisioning") if t.external_ref]


def test_callbacks_finish_accepted_steps_and_refuse_forgeries_and_replays(world, listener_url):
    ctx, stub, url = listener_url
    world.add_order("PLAT-PRO", "ADD-SSO")
    cycle_until(ctx, lambda: len(accepted(ctx)) == 2)
    first, second = accepted(ctx)
    assert first.state == second.state == StepState.IN_PROGRESS
    assert first.message == "accepted by provisioning, waiting for completion"
    assert first.correlation_token and first.correlation_token != second.correlation_token
    assert {e.correlation for e in stub.effects} == {
        first.correlation_token,
        second.correlation_token,
    }

    body = {"correlation": first.correlation_token, "status": "completed", "reference": "X-1"}
    forged = post(url, body, secret="guessed-secret")
    assert forged.status_code == 401
    stale = post(url, body, stamp=str(int(time.time()) - 3600))
    assert stale.status_code == 401
    unknown = post(url, {**body, "correlation": "no-such-token"})
    assert unknown.status_code == 404
    assert tasks(ctx, "provisioning")[0].state == StepState.IN_PROGRESS  # nothing changed

    good = post(url, body, stamp="1")  # a fixed stamp, so the replay is byte for byte the same
    assert good.status_code == 401  # ...but a stamp an hour old is stale; sign a fresh one
    stamp = str(int(time.time()))
    assert post(url, body, stamp=stamp).json() == {"result": "completed"}
    assert post(url, body, stamp=stamp).status_code == 409  # the same callback again

    # The stub now calls back for both: the first step is finished already (no change),
    # the second completes.
    assert stub.send_callbacks() == [200, 200]
    done = {t.id: t for t in tasks(ctx, "provisioning")}
    assert done[first.id].state == done[second.id].state == StepState.COMPLETED
    assert done[first.id].external_ref == "X-1"  # the stub's late callback changed nothing
    run_until_settled(ctx, world)
    assert set(world.order_statuses().values()) == {"Completed"}
    assert stub.stats()["effects"] == 2 and stub.stats()["duplicates"] == 0


def test_a_failed_callback_is_fallout_with_the_systems_message(world, listener_url):
    ctx, _stub, url = listener_url
    world.add_order("PLAT-PRO")
    cycle_until(ctx, lambda: len(accepted(ctx)) == 1)
    (task,) = accepted(ctx)
    body = {"correlation": task.correlation_token, "status": "failed", "message": "no capacity"}
    assert post(url, body).json() == {"result": "failed"}
    (task,) = tasks(ctx, "provisioning")
    assert (task.state, task.message) == (StepState.FATALLY_FAILED, "provisioning: no capacity")


def test_callbacks_for_a_system_without_a_secret_are_refused(world, listener_url):
    _ctx, _stub, url = listener_url
    raw = b'{"correlation": "x"}'
    answer = requests.post(f"{url}/callbacks/billing", data=raw, timeout=10)
    assert answer.status_code == 404


def test_receipts_older_than_a_day_are_pruned_and_newer_ones_kept(world, listener_url):
    ctx, _stub, url = listener_url
    world.add_order("PLAT-PRO", "ADD-SSO")
    cycle_until(ctx, lambda: len(accepted(ctx)) == 2)
    for task in accepted(ctx):
        body = {"correlation": task.correlation_token, "status": "completed"}
        assert post(url, body).status_code == 200
    assert prune_receipts(ctx) == 0, "both received just now"

    clock = ctx.clock
    ctx.clock = lambda: clock() + RECEIPTS_KEPT + timedelta(minutes=1)
    assert prune_receipts(ctx) == 2
    with ctx.sessions() as session:
        assert session.query(CallbackReceipt).count() == 0
