"""Connectors built from ORDERFLOW_{NAME}_* settings, as the daemon builds them."""

from __future__ import annotations

import pytest

from daemon.connectors import build_all
from daemon.settings import load_settings
from downstream.guard import GuardedSystem
from downstream.protocol import Outcome, TaskRequest
from downstream.stubs import StubSystem
from orchestration.errors import ConfigError


@pytest.fixture
def stubs():
    started = {
        "erp": StubSystem("erp", oauth=("orderflow", "oauth-secret-123")),
        "billing": StubSystem("billing", basic=("svc", "basic-pass-123")),
        "provisioning": StubSystem("provisioning", api_key=("X-Key", "api-key-123")),
    }
    for stub in started.values():
        stub.start()
    yield started
    for stub in started.values():
        stub.stop()


def submit(system: GuardedSystem, action: str = "anything") -> Outcome:
    request = TaskRequest(
        system=system.name, action=action, idempotency_key=action, step_ref=action, payload={"a": 1}
    )
    return system.submit(request).outcome


def test_each_auth_mode_from_settings(stubs, monkeypatch):
    env = {
        "ERP_URL": stubs["erp"].url,
        "ERP_AUTH": "oauth",
        "ERP_OAUTH_TOKEN_URL": f"{stubs['erp'].url}/oauth/token",
        "ERP_OAUTH_CLIENT_ID": "orderflow",
        "ERP_OAUTH_CLIENT_SECRET": "oauth-secret-123",
        "ERP_OFFLINE_AFTER": "3",
        "BILLING_URL": stubs["billing"].url,
        "BILLING_AUTH": "basic",
        "BILLING_USERNAME": "svc",
        "BILLING_PASSWORD": "basic-pass-123",
        "BILLING_STATUS_POLL_INTERVAL": "0",
        "PROVISIONING_URL": stubs["provisioning"].url,
        "PROVISIONING_AUTH": "api_key",
        "PROVISIONING_API_KEY": "api-key-123",
        "PROVISIONING_API_KEY_HEADER": "X-Key",
        "PROVISIONING_CALLBACK_SECRET": "cb-secret-123",
        "PROVISIONING_PATHS": '{"activate": "v2/activations"}',
    }
    for name, value in env.items():
        monkeypatch.setenv(f"ORDERFLOW_{name}", value)
    systems = build_all(load_settings())
    assert [submit(s) for s in systems.values()] == [Outcome.COMPLETED] * 3
    assert (systems["erp"].offline_after, systems["billing"].status_poll_interval) == (3, 0.0)
    assert systems["provisioning"].callback_secret == "cb-secret-123"
    assert submit(systems["provisioning"], "activate") is Outcome.COMPLETED
    assert stubs["provisioning"].effects[-1].action == "v2/activations"
    assert stubs["erp"].token_requests == 1


def test_a_mode_without_its_settings_names_the_missing_variable(monkeypatch):
    monkeypatch.setenv("ORDERFLOW_BILLING_URL", "https://billing.example")
    monkeypatch.setenv("ORDERFLOW_BILLING_AUTH", "oauth")
    monkeypatch.setenv("ORDERFLOW_BILLING_OAUTH_TOKEN_URL", "https://login.example/token")
    with pytest.raises(ConfigError, match=r"^setting ORDERFLOW_BILLING_OAUTH_CLIENT_ID: needed"):
        build_all(load_settings())
    monkeypatch.setenv("ORDERFLOW_BILLING_AUTH", "kerberos")
    with pytest.raises(ConfigError, match=r"^setting ORDERFLOW_BILLING_AUTH: Input should be"):
        build_all(load_settings())
