"""Callback cases: forged and malformed ``POST /callbacks/{system}`` to the daemon's listener.

One world for all of them: the emulator, stubs whose provisioning accepts tasks and
finishes them only by callback, the daemon's context and its real HTTP listener (the app
``orderflow run`` serves). One good order is run until its provisioning steps wait for
their callbacks; a body's ``@token`` is then replaced by a waiting step's correlation
token. Each case says how its body is signed: ``good``, ``none``, ``wrong-secret``,
``stale`` (a timestamp an hour old), ``bad-timestamp`` (not a number), or ``replay`` (a
good callback sent twice: the answer to the second is the case's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from bench.common import LocalWorld, add_orders
from daemon import app
from daemon.cycle.run import run_cycle
from daemon.settings import load_settings
from daemon.store.models import Task
from daemon.web.callbacks import callback_route
from daemon.web.listener import Listener, create_app
from downstream.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from reliability.faults import environment

SECRET = "corpus-callback-secret"  # noqa: S105 - a test secret


@dataclass(frozen=True)
class CallbackCase:
    name: str
    body: bytes
    system: str
    sign: str


def _headers(sign_as: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    if sign_as == "none":
        return {"Content-Type": "application/json"}
    if sign_as == "stale":
        stamp = str(int(time.time()) - 3600)
    if sign_as == "bad-timestamp":
        stamp = "yesterday"
    secret = "not-the-secret" if sign_as == "wrong-secret" else SECRET
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def run_callbacks(cases: Mapping[str, CallbackCase], workdir: Path) -> dict[str, tuple[int, str]]:
    """Each case's (HTTP status, error text)."""
    options: dict[str, dict[str, Any]] = {
        "provisioning": {"completion": "callback", "complete_after": None}
    }
    with LocalWorld(workdir, options) as world:
        add_orders(world.emu, 1, lines=3)
        env = world.env(http_enabled="false", provisioning_callback_secret=SECRET)
        with environment(env):
            ctx = app.context(load_settings())
        ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=2)
        tokens = _waiting_tokens(ctx)
        listener = Listener(create_app(ctx, extra_routes=[callback_route()]), "127.0.0.1", 0)
        listener.start()
        answers = {}
        try:
            for name, case in cases.items():
                body = case.body
                if b"@token" in body:
                    body = body.replace(b"@token", tokens[0].encode())
                url = f"{listener.url}/callbacks/{case.system}"
                sign_as = "good" if case.sign == "replay" else case.sign
                headers = _headers(sign_as, body)
                answer = requests.post(url, data=body, headers=headers, timeout=30)
                if case.sign == "replay":
                    answer = requests.post(url, data=body, headers=headers, timeout=30)
                if answer.status_code in (200, 409) and b"@token" in case.body:
                    tokens.pop(0)  # that step is finished: the next case takes another
                try:
                    text = str(answer.json().get("error") or answer.json().get("result") or "")
                except ValueError:
                    text = answer.text[:200]
                answers[name] = (answer.status_code, text)
        finally:
            listener.stop()
        return answers


def _waiting_tokens(ctx: Any, cycles: int = 10) -> list[str]:
    """Run cycles until the provisioning steps wait for callbacks; their tokens."""
    for _ in range(cycles):
        run_cycle(ctx)
        with ctx.sessions() as session:
            tokens = list(
                session.scalars(
                    select(Task.correlation_token)
                    .where(Task.system == "provisioning", Task.state == "In Progress")
                    .where(Task.correlation_token.is_not(None))
                )
            )
        if len(tokens) >= 3:
            return [str(t) for t in tokens]
    raise RuntimeError("no provisioning step waits for a callback")
