"""Logging in to the emulated org in each mode, renewing an expired session, and a refused
login stopping the daemon with one clear line."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from daemon import app
from daemon.commands.main import main
from daemon.cycle.poll import poll
from daemon.settings import load_settings
from orchestration.errors import ConfigError, FatalError
from salesforce import auth
from salesforce.emulator.auth import DEMO_PASSWORD
from salesforce.gateway import SalesforceGateway
from tests.integration.emulator_helpers import connect
from tests.integration.test_salesforce_support import sf_context
from tests.integration.world import World


def _key_file(tmp_path: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "server.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key


def test_jwt_bearer_login(world: World, monkeypatch, tmp_path):
    key_file, key = _key_file(tmp_path)
    world.add_order("PLAT-PRO")
    ctx = sf_context(
        world,
        monkeypatch,
        sf_auth="jwt",
        sf_private_key_file=key_file,
        sf_username="integration@example.com",
    )
    assert poll(ctx).planned == 1
    creds = auth.Credentials(consumer_key="orderflow-demo", username="integration@example.com")
    token = auth.jwt_assertion(creds, key_file.read_bytes(), now=1_000)
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "orderflow-demo" and claims["sub"] == "integration@example.com"


def test_password_login_with_security_token(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = sf_context(
        world,
        monkeypatch,
        sf_auth="password",
        sf_username="integration@example.com",
        sf_password=DEMO_PASSWORD[:-4],
        sf_security_token=DEMO_PASSWORD[-4:],
    )
    assert poll(ctx).planned == 1


def test_a_given_session_id_and_instance_url(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    monkeypatch.delenv("ORDERFLOW_SF_CLIENT_ID", raising=False)
    ctx = sf_context(
        world, monkeypatch, sf_session_id=world.emu.issue_session(), sf_instance_url=world.emu.url
    )
    assert poll(ctx).planned == 1
    assert ctx.gateway.relogin is None


def test_an_expired_session_is_renewed_once_and_the_call_repeated(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = sf_context(world, monkeypatch)
    world.emu._sessions.revoke(ctx.gateway.sf.session_id)
    assert poll(ctx).planned == 1
    assert ctx.gateway.renewals == 1


def test_an_expired_given_session_stops_with_a_clear_message(world: World, monkeypatch):
    token = world.emu.issue_session()
    ctx = sf_context(
        world, monkeypatch, sf_auth="session", sf_session_id=token, sf_instance_url=world.emu.url
    )
    world.emu._sessions.revoke(token)
    with pytest.raises(FatalError, match=r"INVALID_SESSION_ID.*cannot be renewed"):
        poll(ctx)


def test_the_gateway_takes_an_existing_client(world: World):
    world.add_order("PLAT-PRO")
    gateway = SalesforceGateway(connect(world.emu), timeout=5)
    pages = list(gateway.query_pages("SELECT Id FROM Order"))
    assert len(pages[0]) == 1
    assert gateway.api_usage is not None and gateway.api_usage.used == world.emu.api_calls


def test_a_refused_login_stops_the_daemon_with_one_line(world: World, monkeypatch, capsys):
    sf_context(world, monkeypatch)  # sets the environment as the daemon reads it
    monkeypatch.setenv("ORDERFLOW_SF_CLIENT_SECRET", "wrong-secret-value")
    assert main(["sync", "--once"]) == 2  # a setting to fix: systemd does not restart it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("orderflow: Salesforce login refused")
    assert "wrong-secret-value" not in err[0]


def test_a_mode_without_its_settings_is_a_config_error(world: World, monkeypatch):
    sf_context(world, monkeypatch)
    monkeypatch.setenv("ORDERFLOW_SF_AUTH", "jwt")
    with pytest.raises(ConfigError, match="ORDERFLOW_SF_PRIVATE_KEY_FILE"):
        app.salesforce(load_settings())


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://login.salesforce.com", "login"),
        ("https://test.salesforce.com", "test"),
        ("https://acme.my.salesforce.com", "acme.my"),
    ],
)
def test_soap_login_domain_follows_the_login_url(url, domain):
    assert auth.soap_domain(url) == domain


def test_soap_login_needs_a_salesforce_host():
    with pytest.raises(ConfigError, match="ORDERFLOW_SF_LOGIN_URL"):
        auth.soap_domain("https://127.0.0.1:8443")
