"""``POST /callbacks/{system}``: a system says it finished a task it accepted earlier.

The body is JSON with the ``correlation`` token Orderflow sent with the task, a
``status`` (completed, failed, ...), optionally a ``reference`` and a ``message``. It is
signed (see :mod:`downstream.signing`) with ``ORDERFLOW_{NAME}_CALLBACK_SECRET``.

Answers: 200 applied (or ignored: the step was already finished, which changes nothing);
400 not JSON or no token; 401 bad or missing signature, or a stale timestamp; 404 unknown
system or token; 409 the same callback again (a replay). Every refusal is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon.context import Context
from daemon.cycle.completion import finish
from daemon.store.models import CallbackReceipt, Task
from downstream.guard import GuardedSystem
from downstream.http import STATUS_WORDS
from downstream.protocol import Outcome, SubmitResult
from downstream.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE, verify

log = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any]]


def handle_callback(
    ctx: Context,
    system: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    wall_clock: float | None = None,
) -> Answer:
    """Check and apply one callback; (HTTP status, JSON body)."""
    target = ctx.systems.get(system)
    secret = target.callback_secret if isinstance(target, GuardedSystem) else None
    if secret is None:
        return _refuse(404, system, "takes no callbacks (no ORDERFLOW_<NAME>_CALLBACK_SECRET)")
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    if not stamp or not signature or not verify(secret, stamp, body, signature):
        return _refuse(401, system, "bad or missing signature")
    now = time.time() if wall_clock is None else wall_clock
    try:
        fresh = abs(now - float(stamp)) <= TOLERANCE
    except ValueError:
        fresh = False
    if not fresh:
        return _refuse(401, system, "timestamp too old or in the future")
    try:
        data = json.loads(body)
        token = str(data["correlation"])
    except (ValueError, KeyError, TypeError):
        return _refuse(400, system, "body is not JSON with a correlation token")
    return _apply(ctx, system, signature, token, data)


def _apply(ctx: Context, system: str, signature: str, token: str, data: dict[str, Any]) -> Answer:
    now = ctx.clock()
    try:
        with ctx.sessions.begin() as session:
            task = session.scalars(
                select(Task).where(Task.correlation_token == token, Task.system == system)
            ).one_or_none()
            if task is None:
                return _refuse(404, system, "unknown correlation token")
            seen = session.scalars(
                select(CallbackReceipt.id).where(
                    CallbackReceipt.system == system, CallbackReceipt.signature == signature
                )
            ).first()
            if seen is not None:
                return _refuse(409, system, f"replayed callback for {task.step_id}")
            outcome = finish(session, task, _result(system, data), now, actor=f"callback:{system}")
            session.add(
                CallbackReceipt(
                    system=system,
                    signature=signature,
                    task_id=task.id,
                    outcome=outcome[:80],
                    received_at=now,
                )
            )
            step = task.step_id
    except IntegrityError:
        return _refuse(409, system, "replayed callback")
    log.info("callback from %s for %s: %s", system, step, outcome)
    return 200, {"result": outcome}


def _result(system: str, data: dict[str, Any]) -> SubmitResult:
    word = str(data.get("status") or "").lower()
    outcome = next((o for o, words in STATUS_WORDS.items() if word in words), Outcome.FAILED)
    reference = data.get("reference") or data.get("document_number")
    message = "" if outcome is not Outcome.FAILED else str(data.get("message") or word)
    return SubmitResult(
        outcome=outcome,
        external_ref=str(reference) if reference else None,
        code="" if outcome is not Outcome.FAILED else word,
        message=f"{system}: {message}"[:255] if message else "",
    )


def _refuse(status: int, system: str, why: str) -> Answer:
    # The system name comes from the path: quoted, so a "%0A" in it cannot forge a line.
    log.warning("callback for %r refused (%d): %s", system, status, why)
    return status, {"error": why}


def callback_route() -> Route:
    """The route, for the daemon's HTTP listener (daemon.web.listener)."""

    async def receive(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        system = str(request.path_params["system"])
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, answer = await run_in_threadpool(handle_callback, ctx, system, headers, body)
        return JSONResponse(answer, status_code=status)

    return Route("/callbacks/{system}", receive, methods=["POST"])
