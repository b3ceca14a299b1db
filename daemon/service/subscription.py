"""The subscription behind ``ORDERFLOW_SF_EVENTS``: opened at start, checked by ``doctor``,
shown by ``status``.

- ``off`` polls only; ``auto`` subscribes when the org answers on the Pub/Sub API and every
  topic exists (else it polls only, saying why once); ``cdc`` requires it: a subscription
  that cannot work (a topic not enabled, a refused session) stops the start with one line,
  an endpoint down for a moment is retried while the poll keeps its normal cadence.
- The calls carry the gateway's session: its token, its instance URL and the org id of the
  login's identity URL (else the token's prefix, which Salesforce makes the org id).
- Streams resume after the replay ids stored in ``event_replays`` (daemon.cycle.events).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from daemon.channels.stream import EventStream
from daemon.context import Context
from daemon.cycle.events import STATE, resume_points, topics, written_fields
from daemon.settings import Settings
from daemon.store.models import SfBudget
from orchestration.errors import ConfigError
from remap.ids import to18
from salesforce.gateway import SalesforceGateway
from salesforce.pubsub.subscriber import Auth, SubscribeError, Subscriber, channel

log = logging.getLogger(__name__)

#: Seconds the start-up check of the topics waits for the Pub/Sub API.
CHECK_TIMEOUT = 10.0


def subscriber(
    gateway: SalesforceGateway,
    settings: Settings,
    invoices: bool,
    *,
    leading: Callable[[], bool] = lambda: True,
    notify: Callable[[], None] = lambda: None,
) -> Subscriber:
    """A subscriber to the topics, with the gateway's session (not started)."""
    return Subscriber(
        channel(settings.sf_pubsub_endpoint, settings.sf_ca_bundle),
        topics(invoices),
        auth=lambda: session_auth(gateway),
        renew=gateway.renew_session,
        leading=leading,
        notify=notify,
    )


def check(gateway: SalesforceGateway, settings: Settings, invoices: bool) -> tuple[bool, str]:
    """``orderflow doctor``: (whether it passes, what was found). Off passes; auto passes
    either way (it polls without events); cdc passes only when every topic answers."""
    if settings.sf_events == "off":
        return True, "off (ORDERFLOW_SF_EVENTS=off): polling only"
    sub = subscriber(gateway, settings, invoices)
    try:
        found = sub.check(CHECK_TIMEOUT)
    except SubscribeError as exc:
        mode = settings.sf_events
        return (
            mode == "auto",
            f"{settings.sf_pubsub_endpoint}: {exc} (ORDERFLOW_SF_EVENTS={mode}"
            + (": polling only)" if mode == "auto" else ")"),
        )
    finally:
        sub.close()
    schemas = ", ".join(f"{t} (schema {s})" for t, s in found.items())
    return True, f"{settings.sf_pubsub_endpoint}: {schemas}"


def open_stream(
    ctx: Context, settings: Settings, notify: Callable[[], None] = lambda: None
) -> EventStream | None:
    """Subscribe as ``ORDERFLOW_SF_EVENTS`` says, from the stored replay ids; the stream is
    ``ctx.events`` (None: polling only). ``cdc`` refuses to start when the subscription
    cannot work (an endpoint down for a moment is retried instead)."""
    if settings.sf_events == "off":
        forget_state(ctx)
        return None
    leading = ctx.membership  # only the leader reads the org (daemon.cluster.instances)
    sub = subscriber(
        ctx.gateway,
        settings,
        ctx.poll_fields.invoices,
        leading=lambda: leading.leading,
        notify=notify,
    )
    try:
        sub.check(CHECK_TIMEOUT)
    except SubscribeError as exc:
        if settings.sf_events == "auto":
            log.info("change events off, polling only (ORDERFLOW_SF_EVENTS=auto): %s", exc)
            sub.close()
            forget_state(ctx)
            return None
        if not exc.passing:
            sub.close()
            raise ConfigError(f"setting ORDERFLOW_SF_EVENTS: cdc, but {exc}") from None
        log.warning("Pub/Sub API not answering (%s): polling until it does", exc)
    stream = EventStream(
        sub,
        settings.sf_events,
        safety_interval=settings.sf_safety_poll_interval,
        user_id=identity_ids(ctx.gateway)[1],
        written=written_fields(ctx),
    )
    ctx.events = stream
    sub.start(lambda: resume_points(ctx))  # read again each time this instance leads
    log.info("change events: %s (streams open while this instance leads)", ", ".join(sub.topics))
    return stream


def identity_ids(gateway: SalesforceGateway) -> tuple[str | None, str | None]:
    """(org id, user id) from the login's identity URL, when it gave one."""
    parts = gateway.identity.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == "id":
        return parts[-2], parts[-1]
    return None, None


def session_auth(gateway: SalesforceGateway) -> Auth:
    """The Pub/Sub metadata of the gateway's current session. The org id is the identity
    URL's, else the session id's first 15 characters (Salesforce prefixes them so)."""
    token = str(gateway.sf.session_id)
    org = identity_ids(gateway)[0] or to18(token.split("!")[0])
    return Auth(token, f"https://{gateway.sf.sf_instance}", org)


def forget_state(ctx: Context) -> None:
    """Polling only: `orderflow status` must not show an earlier run's stream as current."""
    with ctx.sessions.begin() as session:
        session.execute(delete(SfBudget).where(SfBudget.name == STATE))


def saved_state(session: Session) -> dict[str, Any] | None:
    """What the daemon last saved of its event stream (``orderflow status``)."""
    row = session.get(SfBudget, STATE)
    return dict(row.data, updated_at=row.updated_at.isoformat()) if row else None


def status_line(state: dict[str, Any] | None) -> str:
    """``saved_state`` for people."""
    if state is None:
        return "change events: off (polling only)"
    replays = ", ".join(
        f"{topic.rsplit('/', 1)[-1]} {t['replay_id'] or '-'}"
        for topic, t in state["topics"].items()
    )
    return (
        f"change events ({state['mode']}): {'connected' if state['connected'] else 'NOT CONNECTED'}"
        f"; last event {state['last_event_at'] or 'none yet'}; replay ids: {replays}"
    )


def close_stream(ctx: Context) -> None:
    """Stop the subscription (what was received and not taken in is replayed next time)."""
    if ctx.events is not None:
        ctx.events.subscriber.close()
        ctx.events = None
