"""Wiring: the only place that builds the real adapters from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from simple_salesforce.api import Salesforce
from sqlalchemy import Engine

from daemon import db
from daemon.context import Context
from daemon.http import make_session
from daemon.settings import Settings
from downstream.http import HttpJsonConnector
from downstream.protocol import DownstreamSystem
from orchestration.errors import ConfigError
from orchestration.rules import RuleSet, load_rules
from salesforce import auth
from salesforce.gateway import SalesforceGateway
from salesforce.poller import LINE_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS

log = logging.getLogger(__name__)

POLLED_FIELDS = {"order": ORDER_FIELDS, "line": LINE_FIELDS, "product": PRODUCT_FIELDS}


def utcnow() -> datetime:
    return datetime.now(UTC)


def rules(settings: Settings) -> RuleSet:
    return load_rules(settings.rules_file, POLLED_FIELDS)


def database(settings: Settings) -> Engine:
    """The store's engine, its schema brought up to date."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    return engine


def salesforce(settings: Settings) -> SalesforceGateway:
    """Log in as the settings say and wrap the client in the gateway."""
    http = make_session(settings.sf_ca_bundle)
    if settings.sf_session_id is not None:
        if settings.sf_instance_url is None:
            raise ConfigError("setting ORDERFLOW_SF_INSTANCE_URL: needed with a session id")
        token, instance = settings.sf_session_id.get_secret_value(), str(settings.sf_instance_url)
    elif settings.sf_client_id and settings.sf_client_secret:
        session = auth.client_credentials(
            http,
            str(settings.sf_login_url),
            settings.sf_client_id,
            settings.sf_client_secret.get_secret_value(),
            timeout=settings.sf_timeout,
        )
        token, instance = session.access_token, session.instance_url
    else:
        raise ConfigError(
            "setting ORDERFLOW_SF_SESSION_ID: no Salesforce credentials "
            "(give a session id and instance URL, or a client id and secret)"
        )
    sf = Salesforce(
        instance_url=instance.rstrip("/"),
        session_id=token,
        session=http,
        version=settings.sf_api_version,
    )
    return SalesforceGateway(sf, timeout=settings.sf_timeout)


def systems(settings: Settings) -> dict[str, DownstreamSystem]:
    http = make_session(settings.downstream_ca_bundle)
    return {
        name: HttpJsonConnector(
            name,
            url,
            http,
            token=token.get_secret_value() if token else None,
            timeout=settings.downstream_timeout,
        )
        for name, (url, token) in settings.system_urls().items()
    }


def context(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Context:
    ruleset = rules(settings)
    missing = [s for s in ruleset.systems if s not in settings.system_urls()]
    if missing:
        name = f"ORDERFLOW_{missing[0].upper()}_URL"
        raise ConfigError(f"setting {name}: the rules send tasks to {missing[0]!r}; set its URL")
    engine = database(settings)
    return Context(
        sessions=db.sessions(engine),
        gateway=salesforce(settings),
        systems=systems(settings),
        ruleset=ruleset,
        clock=clock,
        statuses=settings.sf_order_statuses,
        overlap=timedelta(seconds=settings.sf_poll_overlap),
        settle=timedelta(seconds=settings.sf_poll_settle),
    )
