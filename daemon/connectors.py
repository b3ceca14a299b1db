"""Building the downstream connectors from the settings (the only place that does)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import requests
from requests.auth import AuthBase

from daemon.http import make_session
from daemon.settings import Settings, SystemSettings, system_settings
from downstream.auth import ApiKeyAuth, BasicAuth, BearerAuth, OAuthClientCredentials
from downstream.guard import GuardedSystem
from downstream.http import HttpJsonConnector

log = logging.getLogger(__name__)

DEFAULT_SYSTEMS = ("erp", "billing", "provisioning")


def build_all(settings: Settings, names: Iterable[str] = ()) -> dict[str, GuardedSystem]:
    """Every system with a URL: the three default ones and any other the rules name."""
    shared = make_session(
        settings.downstream_ca_bundle, pool=max(16, settings.dispatch_concurrency)
    )
    found: dict[str, GuardedSystem] = {}
    for name in dict.fromkeys([*DEFAULT_SYSTEMS, *names]):
        config = system_settings(name)
        if config.url is not None:
            found[name] = build(name, config, settings, shared)
    return found


def build(
    name: str, config: SystemSettings, settings: Settings, shared: requests.Session
) -> GuardedSystem:
    """One system's connector, wrapped with its operating state."""
    session = shared
    if config.ca_bundle is not None:
        session = make_session(config.ca_bundle, pool=max(16, settings.dispatch_concurrency))
    verify: bool | None = None
    if not config.tls_verify:
        log.warning("%s: TLS verification is OFF (ORDERFLOW_%s_TLS_VERIFY)", name, name.upper())
        session = make_session(None, pool=max(16, settings.dispatch_concurrency))
        session.verify = False
        verify = False
    timeout = config.timeout or settings.downstream_timeout
    secrets = [
        s.get_secret_value()
        for s in (config.token, config.password, config.api_key, config.oauth_client_secret)
        if s is not None
    ]
    connector = HttpJsonConnector(
        name,
        str(config.url),
        session,
        auth=_auth(name, config, session, timeout),
        timeout=timeout,
        paths=config.paths,
        verify=verify,
        redact=tuple(secrets),
    )
    return GuardedSystem(
        connector,
        offline_after=config.offline_after,
        probe_interval=config.probe_interval,
        status_poll_interval=config.status_poll_interval,
        callback_secret=(
            config.callback_secret.get_secret_value() if config.callback_secret else None
        ),
    )


def _auth(
    name: str, config: SystemSettings, session: requests.Session, timeout: float
) -> AuthBase | None:
    mode = config.auth_mode()

    def secret(value: object) -> str:
        assert value is not None  # system_settings checked what each mode needs
        return str(getattr(value, "get_secret_value", lambda: value)())

    if mode == "bearer":
        return BearerAuth(secret(config.token))
    if mode == "basic":
        return BasicAuth(secret(config.username), secret(config.password))
    if mode == "api_key":
        return ApiKeyAuth(secret(config.api_key), config.api_key_header)
    if mode == "oauth":
        return OAuthClientCredentials(
            name,
            session,
            str(config.oauth_token_url),
            secret(config.oauth_client_id),
            secret(config.oauth_client_secret),
            scope=config.oauth_scope,
            timeout=timeout,
        )
    return None
