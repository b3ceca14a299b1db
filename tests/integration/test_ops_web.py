"""/healthz and /metrics over real HTTP, against a store the real cycle filled."""

from __future__ import annotations

import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from daemon.cycle.run import run_cycle
from daemon.service.health import Heartbeat
from daemon.web.listener import Listener, create_app
from orchestration.errors import ConfigError
from tests.integration.world import World


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    for _ in range(2):
        run_cycle(ctx)
    now = [1000.0]
    heartbeat = Heartbeat(stale_after=60, clock=lambda: now[0])
    hello = Route("/hello", lambda request: PlainTextResponse("hello"))
    listener = Listener(create_app(ctx, heartbeat=heartbeat, extra_routes=[hello]), "127.0.0.1", 0)
    listener.start()
    yield listener, heartbeat, now
    listener.stop()


def test_healthz_follows_the_loops_heartbeat(served):
    listener, heartbeat, now = served
    starting = requests.get(f"{listener.url}/healthz", timeout=10)
    assert (starting.status_code, starting.json()["status"]) == (503, "starting")
    heartbeat.cycle_started()
    heartbeat.cycle_ended()
    ok = requests.get(f"{listener.url}/healthz", timeout=10)
    assert ok.status_code == 200
    assert ok.json()["cycles"] == 1
    now[0] += 61
    stale = requests.get(f"{listener.url}/healthz", timeout=10)
    assert (stale.status_code, stale.json()["status"]) == (503, "stale")
    heartbeat.beat()
    assert requests.get(f"{listener.url}/healthz", timeout=10).status_code == 200


def test_metrics_describe_the_store_and_salesforce(served):
    listener, heartbeat, _ = served
    heartbeat.cycle_started()
    answer = requests.get(f"{listener.url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    got = samples(answer.text)
    assert sum(v for (name, _), v in got.items() if name == "orderflow_orders") == 1
    erp = [
        v
        for (name, labels), v in got.items()
        if name == "orderflow_steps" and ("system", "erp") in labels
    ]
    assert sum(erp) >= 1
    assert got[("orderflow_steps_in_jeopardy", (("level", "At Risk"),))] == 0
    assert got[("orderflow_steps_in_jeopardy", (("level", "Late"),))] == 0
    used = got[("orderflow_salesforce_api_calls_used", ())]
    limit = got[("orderflow_salesforce_api_calls_limit", ())]
    assert 0 < used < limit
    assert got[("orderflow_salesforce_api_calls_left", ())] == limit - used
    assert got[("orderflow_poll_lag_seconds", (("sobject", "Order"),))] >= 0
    assert got[("orderflow_dispatch_latency_seconds_count", (("system", "erp"),))] >= 1
    assert got[("orderflow_cycles_total", ())] == 1


def test_other_features_add_routes(served):
    listener, _, _ = served
    assert requests.get(f"{listener.url}/hello", timeout=10).text == "hello"
    assert requests.get(f"{listener.url}/nothing", timeout=10).status_code == 404


def test_a_port_in_use_is_a_clear_setting_error(world: World, monkeypatch):
    ctx = world.context(monkeypatch)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigError, match=f"ORDERFLOW_HTTP_PORT: cannot listen on 127.0.0.1:{port}"
        ):
            Listener(create_app(ctx), "127.0.0.1", port)
