"""The canvas's actions: an operator retries, completes or skips a step, or takes a system
offline or back online. Each needs the operator token (``ORDERFLOW_OPERATOR_TOKEN``) and
goes through the very functions the CLI uses (:func:`daemon.store.resolve_task`,
:mod:`daemon.cycle.systems`), so it is checked and audited the same way.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from daemon import store
from daemon.cycle import systems
from orchestration.errors import OperatorError
from orchestration.states import Resolution

log = logging.getLogger(__name__)

ACTOR_MAX = 80


class Refused(Exception):
    """An action not done, with the HTTP status and the one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def form_of(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of a JSON or URL-encoded body (anything else: none)."""
    text = body.decode("utf-8", errors="replace")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "the body must be a JSON object")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    return {k: v[0] for k, v in parse_qs(text).items()}


def check_token(
    expected: SecretStr | None, headers: Mapping[str, str], form: Mapping[str, str]
) -> None:
    """Refuse unless the request carries the operator token, as ``Authorization: Bearer``
    or a ``token`` form field. Compared in constant time; never logged."""
    if expected is None or not expected.get_secret_value():
        raise Refused(403, "actions are off: set ORDERFLOW_OPERATOR_TOKEN to allow them")
    given = form.get("token", "")
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        given = value.strip()
    if not given:
        raise Refused(401, "the operator token is needed for this action")
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise Refused(401, "the operator token does not match")


def _reason(form: Mapping[str, str]) -> str:
    return " ".join(form.get("reason", "").split())


def actor_of(form: Mapping[str, str]) -> str:
    """Who, for the audit trail: the name given, marked as coming from the canvas."""
    name = " ".join(form.get("actor", "").split()) or "operator"
    return f"{name} (canvas)"[:ACTOR_MAX]


def resolve(
    sessions: sessionmaker[Session],
    task_id: int,
    verb: str,
    form: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    """``orderflow task retry|complete|skip`` from the canvas."""
    try:
        resolution = Resolution(verb)
    except ValueError:
        raise Refused(404, f"no action {verb!r} (retry, complete or skip)") from None
    reason = _reason(form)
    if not reason:
        raise Refused(400, "a reason is needed, for the audit trail")
    actor = actor_of(form)
    try:
        with sessions.begin() as session:
            task = store.resolve_task(session, task_id, resolution, reason, actor, now)
            answer = {"task": task.id, "step": task.step_id, "state": task.state}
    except OperatorError as exc:
        status = 404 if str(exc).startswith("no task") else 409
        raise Refused(status, str(exc)) from None
    log.info(
        "canvas: %s of task %d by %s: %s", verb, task_id, actor, answer["state"],
        extra={"task_id": task_id},
    )  # fmt: skip
    return answer


def switch_system(
    sessions: sessionmaker[Session],
    name: str,
    to: str,
    form: Mapping[str, str],
    now: datetime,
    known: Callable[[], Collection[str]],
) -> dict[str, Any]:
    """``orderflow system offline|online NAME`` from the canvas."""
    if to not in ("offline", "online"):
        raise Refused(404, f"no action {to!r} (offline or online)")
    if name not in known():
        raise Refused(404, f"no system named {name!r}")
    actor = actor_of(form)
    reason = _reason(form) or f"marked {to} by {actor}"
    with sessions.begin() as session:
        if to == "offline":
            changed = systems.set_offline(session, name, reason, now, manual=True)
        else:
            changed = systems.set_online(session, name, reason, now)
    log.info("canvas: %s marked %s by %s%s", name, to, actor, "" if changed else " (already)")
    return {"system": name, "offline": to == "offline", "changed": changed}
