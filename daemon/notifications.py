"""Notifications: a Slack-compatible webhook told when an order goes At Risk, Late or Fallout.

Optional (``ORDERFLOW_NOTIFY_WEBHOOK_URL``). One message per change, not one per sweep: the
condition last told is kept on the plan (``plans.notified``) and only a different one is
sent; an order back on track forgets it, so going At Risk again is told again. A message
that could not be sent is tried again at the next sweep. The URL embeds a token: it is a
``SecretStr``, never logged, and errors name only the HTTP status or the kind of failure.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from daemon import logs
from daemon.models import Plan

if TYPE_CHECKING:
    from daemon.context import Context  # which holds a Webhook

log = logging.getLogger(__name__)

TIMEOUT = 10.0


class Webhook:
    """Posts ``{"text": ...}`` to a Slack-compatible incoming webhook."""

    def __init__(
        self, url: SecretStr, session: requests.Session | None = None, timeout: float = TIMEOUT
    ) -> None:
        self._url = url
        # The token is in the path, which HTTP libraries log at DEBUG: mask both.
        text = url.get_secret_value()
        logs.add_secrets([text, urlsplit(text).path])
        self._http = session or requests.Session()
        self._timeout = timeout

    def send(self, text: str) -> bool:
        """Post one message; False (logged without the URL) when it did not go through."""
        try:
            answer = self._http.post(
                self._url.get_secret_value(), json={"text": text}, timeout=self._timeout
            )
        except requests.RequestException as exc:
            log.warning("notification webhook unreachable: %s", type(exc).__name__)
            return False
        if answer.status_code >= 300:
            log.warning("notification webhook refused the message: HTTP %d", answer.status_code)
            return False
        return True


def message(plan: Plan, condition: str, now: datetime) -> str:
    """The text told for ``plan`` in ``condition``, with the reason when there is one."""
    from daemon.jeopardy import describe_worst

    if condition == "Fallout":
        failed = next((t for t in plan.tasks if t.state == "Fatally Failed" and t.message), None)
        reason = plan.flag or (f"{failed.title}: {failed.message}" if failed else "")
    else:
        reason = describe_worst(plan.tasks, now) or ""
    text = f"Order {plan.order_number} is {condition}"
    return f"{text}: {reason}" if reason else text


def notify_changes(ctx: Context) -> int:
    """Tell the webhook of every order whose condition changed since it was last told.
    Returns the messages sent (0 without a webhook)."""
    from daemon.jeopardy import condition

    webhook = ctx.webhook
    if webhook is None:
        return 0
    now = ctx.clock()
    outbox: list[tuple[int, str | None, str]] = []
    with ctx.sessions.begin() as session:
        query = (
            select(Plan)
            .where(Plan.kind == "order")
            .where(
                or_(
                    Plan.notified.is_not(None),
                    Plan.status == "Fallout",
                    Plan.jeopardy.in_(["At Risk", "Late"]),
                )
            )
            .options(selectinload(Plan.tasks))
            .order_by(Plan.id)
        )
        for plan in session.scalars(query):
            now_is = condition(plan)
            if now_is == plan.notified:
                continue
            if now_is is None:
                plan.notified = None  # back on track (or done): a new trouble is news again
                continue
            outbox.append((plan.id, now_is, message(plan, now_is, now)))
    # Sent outside the transaction: a slow webhook holds no database lock.
    sent = [(plan_id, told) for plan_id, told, text in outbox if webhook.send(text)]
    if sent:
        with ctx.sessions.begin() as session:
            for plan_id, told in sent:
                row = session.get(Plan, plan_id)
                if row is not None:
                    row.notified = told
    return len(sent)
