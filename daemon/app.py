"""Wiring: the only place that builds the real adapters from the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from simple_salesforce.api import Salesforce
from sqlalchemy import Engine

from daemon import connectors, logs
from daemon.channels.webhook import Webhook
from daemon.cluster import instances, wakeup
from daemon.context import Context
from daemon.cycle import shadow
from daemon.cycle.crosswalk import Remapper
from daemon.http import make_session
from daemon.settings import Settings
from daemon.store import cutover, db
from downstream.protocol import DownstreamSystem
from orchestration.errors import ConfigError, FatalError, RetriableError
from orchestration.rules import RuleSet, load_rules
from salesforce import auth
from salesforce.budget import PacePolicy, Pacer
from salesforce.errors import translate
from salesforce.gateway import SalesforceGateway
from salesforce.poller import LINE_FIELDS, ORDER_FIELDS, PRODUCT_FIELDS, PollFields

log = logging.getLogger(__name__)

POLLED_FIELDS = {"order": ORDER_FIELDS, "line": LINE_FIELDS, "product": PRODUCT_FIELDS}


def utcnow() -> datetime:
    return datetime.now(UTC)


def rules(settings: Settings) -> RuleSet:
    from orchestration.auto import REGISTRY

    polled = {
        "order": (*settings.sf_order_fields, *settings.remap_config().fields_of("Order")),
        "line": (*settings.sf_order_item_fields, *settings.remap_config().fields_of("OrderItem")),
        "product": tuple(settings.sf_product_fields),
    }
    return load_rules(settings.rules_file, polled, REGISTRY)


def database(settings: Settings) -> Engine:
    """The store's engine, its schema brought up to date."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    return engine


def salesforce(settings: Settings) -> SalesforceGateway:
    """Log in as the settings say and wrap the client in the gateway.

    A refused login at start is a ConfigError (the credentials or the login URL are the
    settings to fix: exit 2, which systemd does not restart, so a wrong password is not
    tried every few seconds until the integration user is locked); the gateway keeps the
    login function to renew an expired session once per call.
    """
    http = make_session(settings.sf_ca_bundle)
    creds = auth.Credentials(
        mode=settings.sf_auth,
        login_url=str(settings.sf_login_url),
        consumer_key=settings.sf_client_id,
        consumer_secret=secret(settings.sf_client_secret),
        username=settings.sf_username,
        password=secret(settings.sf_password),
        security_token=secret(settings.sf_security_token),
        private_key_file=settings.sf_private_key_file,
        session_id=secret(settings.sf_session_id),
        instance_url=str(settings.sf_instance_url) if settings.sf_instance_url else None,
        api_version=settings.sf_api_version,
    )
    login = auth.login_function(creds, http, timeout=settings.sf_timeout)

    identity: list[str] = []

    def connect() -> Salesforce:
        session = login()
        identity[:] = [session.identity]  # the org and user ids (daemon.cycle.events)
        logs.add_secrets([session.access_token])  # as secret as what got it
        return Salesforce(
            instance_url=session.instance_url.rstrip("/"),
            session_id=session.access_token,
            session=http,
            version=settings.sf_api_version,
        )

    renewable = creds.resolved_mode() != "session"
    policy = PacePolicy(
        interval=settings.poll_interval,
        max_idle=max(settings.sf_poll_max_interval, settings.poll_interval),
        reserve=settings.sf_api_reserve,
        reserve_interval=settings.sf_reserve_poll_interval,
        probe_interval=settings.sf_limit_probe_interval,
    )
    try:
        first = connect()
    except FatalError as exc:
        raise ConfigError(str(exc)) from exc
    gateway = SalesforceGateway(
        first,
        timeout=settings.sf_timeout,
        relogin=connect if renewable else None,
        pacer=Pacer(policy),
    )
    gateway.identity = identity[0]
    return gateway


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def poll_fields(settings: Settings) -> PollFields:
    """The fields polled and the Order status filter, from the settings."""
    return PollFields(
        statuses=tuple(settings.sf_order_statuses),
        order=(*settings.sf_order_fields, *settings.remap_config().fields_of("Order")),
        line=(*settings.sf_order_item_fields, *settings.remap_config().fields_of("OrderItem")),
        product=tuple(settings.sf_product_fields),
        invoice=tuple(settings.sf_invoice_fields),
        invoice_line=tuple(settings.sf_invoice_line_fields),
    )


def org_objects(settings: Settings, gateway: SalesforceGateway) -> frozenset[str]:
    """The objects the org's describe shows this user (one API call)."""
    try:
        listed = gateway.sf.restful("sobjects", method="GET", timeout=settings.sf_timeout)
    except Exception as exc:
        raise translate(exc, "describe") from exc
    return frozenset(str(o.get("name")) for o in (listed or {}).get("sobjects", []))


def shown_objects(settings: Settings, gateway: SalesforceGateway) -> frozenset[str]:
    """:func:`org_objects` at start-up. With ORDERFLOW_SF_INVOICES set, only the account
    names hang on it: a passing failure turns them off (ids are shown) rather than
    stopping the start; the cycle meets the same failure and retries as it always does."""
    try:
        return org_objects(settings, gateway)
    except RetriableError as exc:
        if settings.sf_invoices == "auto":
            raise
        log.warning("account names off: %s (ids are shown)", exc)
        return frozenset()


def invoices_enabled(
    settings: Settings, gateway: SalesforceGateway, objects: frozenset[str] | None = None
) -> bool:
    """ORDERFLOW_SF_INVOICES: true, false, or (auto) whether the org's describe lists the
    Invoice object for this user (orgs without Revenue Cloud Billing have none);
    ``objects``: that list when already read."""
    if settings.sf_invoices != "auto":
        return settings.sf_invoices == "true"
    found = "Invoice" in (org_objects(settings, gateway) if objects is None else objects)
    log.info(
        "invoice support %s: the org %s Invoice (ORDERFLOW_SF_INVOICES=auto)",
        "on" if found else "off",
        "has" if found else "shows this user no",
    )
    return found


def account_names(objects: frozenset[str]) -> bool:
    """Whether the poll reads each Order's Account.Name: when the org's describe
    (``objects``) shows this user Account, whose Name has no field-level security of its
    own; else the operators see the id."""
    readable = "Account" in objects
    if not readable:
        log.info("account names off: the org shows this user no Account (ids are shown)")
    return readable


def systems(settings: Settings, names: Iterable[str] = ()) -> dict[str, DownstreamSystem]:
    """The downstream systems with a URL (ORDERFLOW_{NAME}_*): the default three and any
    other the rules name; see daemon.connectors."""
    return dict(connectors.build_all(settings, names))


def context(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Context:
    ruleset = rules(settings)
    downstream = systems(settings, ruleset.systems)
    missing = [s for s in ruleset.systems if s not in downstream]
    if missing:
        name = f"ORDERFLOW_{missing[0].upper()}_URL"
        raise ConfigError(f"setting {name}: the rules send tasks to {missing[0]!r}; set its URL")
    engine = database(settings)
    gateway = salesforce(settings)
    objects = shown_objects(settings, gateway)  # once, for both questions
    polled = replace(
        poll_fields(settings),
        invoices=invoices_enabled(settings, gateway, objects),
        account_names=account_names(objects),
    )
    ctx = Context(
        sessions=db.sessions(engine),
        gateway=gateway,
        systems=downstream,
        ruleset=ruleset,
        clock=clock,
        statuses=settings.sf_order_statuses,
        cancelled_statuses=settings.sf_cancelled_statuses,
        overlap=timedelta(seconds=settings.sf_poll_overlap),
        settle=timedelta(seconds=settings.sf_poll_settle),
        concurrency=settings.dispatch_concurrency,
        max_resends=settings.max_resends,
        poll_fields=polled,
        # Alone on SQLite; one of several on PostgreSQL (started by `orderflow run`).
        membership=instances.membership(
            engine, settings.heartbeat_interval, settings.instance_dead_after
        ),
        status_fields=settings.status_fields(),
        webhook=Webhook(settings.notify_webhook_url) if settings.notify_webhook_url else None,
        cutover_field=settings.cutover_field,
        cutover_writeback=settings.cutover_writeback,
    )
    ctx.cutover = cutover.establish(ctx.sessions, settings.cutover_at, clock())
    if settings.mode == shadow.SHADOW:
        shadow.attach(ctx)  # a parallel run: what would be sent is recorded, nothing else
    if ctx.webhook is not None:
        ctx.webhook.clock = lambda: ctx.clock()  # its back-off runs on the daemon's clock
    if db.is_postgres(engine):
        wakeup.notify_on_commit(ctx.sessions)  # a moved task wakes the other instances
    Remapper(settings.remap_config(), ctx).attach()  # legacy CPQ ids, both ways
    return ctx
