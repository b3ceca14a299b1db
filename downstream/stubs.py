"""Local stand-ins for an ERP, a billing system and a provisioning platform.

Each is a real HTTP server on 127.0.0.1 that takes a task as a JSON POST, honours the
``Idempotency-Key`` header (a repeat returns the first answer and makes no second effect)
and counts what it received (:mod:`downstream.stub_ledger`), so tests and the demo can
prove exactly-once in effect. It behaves like the real thing where Orderflow must cope:

- ``latency``: seconds (or a (low, high) range) before each answer; ``stats()`` counts
  the most calls served at once (``peak_in_flight``), a client's concurrency;
- ``completion``: ``sync`` answers completed; ``status`` answers accepted and completes
  when ``GET /status/{ref}`` asks ``complete_after`` seconds later; ``callback`` answers
  accepted and POSTs a signed callback to ``callback_url`` after ``complete_after`` seconds
  (``None``: only when the test calls :meth:`StubSystem.send_callbacks`);
- :class:`StubFaults`: a share of 503s, a share of answers too slow for the client (the
  effect is made, the answer comes late), a permanent 422 for given SKUs;
- :meth:`go_offline` / :meth:`come_online`: connections refused for a while;
- ``hostile``: answers a real system or its proxy gives that a client must survive
  (:mod:`downstream.stub_hostile`), each logged in ``hostile_log``;
- a body shorter than its ``Content-Length`` makes no effect (a real server refuses it);
- ``expects``: a JSON Schema per action, as a system of the user's own checks its input: a
  body that does not fit is refused with a 422 naming the field (no effect);
- each lists what it holds in force (``GET /documents``) for reconciliation.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import requests
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from downstream import stub_hostile
from downstream.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from downstream.stub_ledger import (
    Effect,
    Ledger,
    answer_for,
    document_of,
    find_sku,
    in_force,
)
from downstream.stub_server import basic_credentials, handler_for

log = logging.getLogger(__name__)

Completion = Literal["sync", "status", "callback"]
__all__ = ["Effect", "StubFaults", "StubSystem"]


@dataclass(frozen=True)
class StubFaults:
    """Errors on demand, drawn from a seeded generator so runs repeat."""

    unavailable_share: float = 0.0  # submits answered 503 with Retry-After
    slow_share: float = 0.0  # submits answered only after ``slow_seconds``
    slow_seconds: float = 2.0
    reject_skus: frozenset[str] = frozenset()  # payloads naming one get a permanent 422
    seed: int = 1


def _dated_in(day: Any, since: str, until: str) -> bool:
    return day is None or ((not since or str(day) >= since) and (not until or str(day) <= until))


class StubSystem:
    """One stub system. ``token``, when set, is required as a Bearer token; ``oauth`` (a
    client id and secret) serves ``POST /oauth/token`` and accepts the tokens it issues;
    ``basic`` (user, password) and ``api_key`` (header, key) are the other ways in."""

    def __init__(
        self,
        name: str,
        *,
        token: str | None = None,
        port: int = 0,
        latency: float | tuple[float, float] = 0.0,
        completion: Completion = "sync",
        complete_after: float | None = 0.0,
        callback_url: str | None = None,
        callback_secret: str | None = None,
        faults: StubFaults | None = None,
        basic: tuple[str, str] | None = None,
        api_key: tuple[str, str] | None = None,
        oauth: tuple[str, str] | None = None,
        token_lifetime: float = 3600.0,
        hostile: stub_hostile.Hostile | None = None,
        expects: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.token = token
        self.latency = latency
        self.completion = completion
        self.complete_after = complete_after
        self.callback_url = callback_url
        self.callback_secret = callback_secret
        self.faults = faults or StubFaults()
        self.basic, self.api_key, self.oauth = basic, api_key, oauth
        self.token_lifetime = token_lifetime
        self.expects = {a: Draft202012Validator(s) for a, s in (expects or {}).items()}
        self.issued_tokens: set[str] = set()
        self.token_requests = 0
        self.callback_answers: list[int] = []
        self.set_hostile(hostile)
        #: (kind, X-Orderflow-Step, Idempotency-Key) of each hostile answer given.
        self.hostile_log: list[tuple[str, str, str]] = []
        self._ledger = Ledger()
        self._rng = random.Random(self.faults.seed)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._timers: list[threading.Timer] = []
        self._bind()

    # -- life ------------------------------------------------------------------------------
    def _bind(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        assert self._server is not None
        # A short poll interval: stop() (and going offline) waits for at most one round.
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"stub-{self.name}",
            daemon=True,
        ).start()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def go_offline(self, seconds: float | None = None) -> None:
        """Refuse connections (the port is closed); back by itself after ``seconds``."""
        self.stop()
        log.info("%s stub offline", self.name)
        if seconds is not None:
            self._later(seconds, self.come_online)

    def come_online(self) -> None:
        if self._server is None:
            self._bind()
            self.start()
            log.info("%s stub online", self.name)

    @property
    def online(self) -> bool:
        return self._server is not None

    def set_hostile(self, hostile: stub_hostile.Hostile | None) -> None:
        """Answer hostilely from now on (None: answer well again)."""
        self.hostile = hostile or stub_hostile.Hostile(kinds=())
        self._turns = stub_hostile.Turns(hostile) if hostile else None

    # -- what it holds ---------------------------------------------------------------------
    @property
    def effects(self) -> list[Effect]:
        with self._ledger.lock:
            return list(self._ledger.effects)

    def active(self) -> list[dict[str, Any]]:
        """What the system holds in force now: not canceled, not undone, changes applied."""
        return in_force(self.effects)

    def stats(self) -> dict[str, Any]:
        with self._ledger.lock:
            return self._ledger.stats(self.name)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Around each authorised POST: counts the calls in flight (``peak_in_flight``)."""
        with self._ledger.lock:
            self._ledger.in_flight += 1
            peak = max(self._ledger.peak_in_flight, self._ledger.in_flight)
            self._ledger.peak_in_flight = peak
        try:
            yield
        finally:
            with self._ledger.lock:
                self._ledger.in_flight -= 1

    def doubles(self) -> list[dict[str, Any]]:
        """Payloads that reached the system under more than one key (``payload_doubles``)."""
        with self._ledger.lock:
            return self._ledger.doubles()

    def documents(self, since: str = "", until: str = "") -> list[dict[str, Any]]:
        """What the system holds in force, as documents dated in the range (ISO strings;
        a document without a date is always listed): invoice transfers, sales orders,
        subscriptions, activations."""
        docs = [document_of(held) for held in self.active()]
        return [d for d in docs if _dated_in(d["issued_on"], since, until)]

    def record(self, action: str, payload: dict[str, Any]) -> str:
        """An effect made by hand at the system (not by Orderflow); its reference."""
        with self._ledger.lock:
            key = f"manual-{uuid.uuid4()}"
            effect = self._ledger.add(
                self.name, key, action, "", payload, state="completed", correlation=None
            )
            return effect.reference

    def forget(self, reference: str) -> None:
        """Lose an effect, as a system restored from an old backup would."""
        with self._ledger.lock:
            effect = self._ledger.by_ref.pop(reference)
            self._ledger.effects.remove(effect)

    def revoke_tokens(self) -> None:
        """Every OAuth token issued so far is refused from now on (401)."""
        self.issued_tokens.clear()

    # -- asynchronous completion -----------------------------------------------------------
    def send_callbacks(self) -> list[int]:
        """Finish every pending job now by callback; the daemon's HTTP answers."""
        with self._ledger.lock:
            pending = [e for e in self._ledger.effects if e.state == "pending"]
        return [self._callback(effect) for effect in pending]

    def _callback(self, effect: Effect) -> int:
        with self._ledger.lock:
            if effect.state != "pending":
                return 0
            effect.state = "completed"
        body = json.dumps(
            {
                "correlation": effect.correlation,
                "event_id": str(uuid.uuid4()),
                **answer_for(effect),
            }
        ).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp}
        if self.callback_secret:
            headers[SIGNATURE_HEADER] = sign(self.callback_secret, stamp, body)
        status = 0
        try:
            answer = requests.post(
                f"{self.callback_url}/callbacks/{self.name}", data=body, headers=headers, timeout=10
            )
            status = answer.status_code
        except requests.RequestException as exc:
            log.warning("%s stub: callback failed: %s", self.name, exc)
        with self._ledger.lock:
            self._ledger.callbacks_sent += 1
            if status != HTTPStatus.OK:
                effect.state = "pending"  # not delivered: a real system would try again
        self.callback_answers.append(status)
        return status

    def _later(self, seconds: float, fn: Any, *args: Any) -> None:
        timer = threading.Timer(seconds, fn, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # -- answers ---------------------------------------------------------------------------
    def _sleep(self) -> None:
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency,) * 2
        if high > 0:
            time.sleep(self._rng.uniform(low, high))

    def _submit(
        self, key: str, action: str, step_ref: str, payload: Any, correlation: str | None
    ) -> tuple[int, Any, float]:
        """(status, body, seconds to wait before answering)."""
        faults = self.faults
        with self._ledger.lock:
            ledger = self._ledger
            ledger.requests += 1
            if key in ledger.answers:
                ledger.replays += 1
                return (*ledger.answers[key], 0.0)
            if not isinstance(payload, dict):
                return HTTPStatus.BAD_REQUEST, {"message": "body must be a JSON object"}, 0.0
            if faults.unavailable_share and self._rng.random() < faults.unavailable_share:
                return HTTPStatus.SERVICE_UNAVAILABLE, {"message": "try again shortly"}, 0.0
            misfit = self._misfit(action, payload)
            if misfit:
                answer = {"code": "INVALID_PAYLOAD", "message": misfit}
                return HTTPStatus.UNPROCESSABLE_ENTITY, answer, 0.0
            sku = find_sku(payload, faults.reject_skus)
            if sku:
                # A refusal made no effect, so it is not kept under the key (as Stripe does):
                # an operator's retry after the system is fixed gets a fresh evaluation.
                answer = {"code": "UNKNOWN_SKU", "message": f"unknown SKU {sku}"}
                return HTTPStatus.UNPROCESSABLE_ENTITY, answer, 0.0
            deferred = self.completion != "sync"
            effect = ledger.add(
                self.name,
                key,
                action,
                step_ref,
                payload,
                state="pending" if deferred else "completed",
                correlation=correlation,
            )
            if ledger.duplicates:
                log.debug("%s: %d duplicate effects so far", self.name, ledger.duplicates)
            status = HTTPStatus.ACCEPTED if deferred else HTTPStatus.OK
            body = {**answer_for(effect), "status": "accepted" if deferred else "completed"}
            ledger.answers[key] = (status, body)
            slow = faults.slow_share and self._rng.random() < faults.slow_share
        if self.completion == "callback" and self.complete_after is not None:
            self._later(self.complete_after, self._callback, effect)
        return status, body, faults.slow_seconds if slow else 0.0

    def _hostile_turn(self, step_ref: str, key: str) -> str | None:
        """The hostile answer this submit gets, if any (logged)."""
        if self._turns is None:
            return None
        with self._ledger.lock:
            kind = self._turns.draw(step_ref)
            if kind:
                self.hostile_log.append((kind, step_ref, key))
        return kind

    def _misfit(self, action: str, payload: dict[str, Any]) -> str:
        """Why ``payload`` does not fit what this system expects of ``action`` ("": it fits)."""
        check = self.expects.get(action)
        worst = best_match(check.iter_errors(payload)) if check else None
        if worst is None:
            return ""
        return f"/{'/'.join(str(p) for p in worst.absolute_path)}: {worst.message}"

    def _status(self, reference: str) -> tuple[int, Any]:
        with self._ledger.lock:
            effect = self._ledger.by_ref.get(reference)
            if effect is None:
                return HTTPStatus.NOT_FOUND, {"message": f"no such reference {reference}"}
            due = self.complete_after is not None and (
                time.monotonic() - effect.accepted_at >= self.complete_after
            )
            if effect.state == "pending" and self.completion == "status" and due:
                effect.state = "completed"
            return HTTPStatus.OK, answer_for(effect)

    def _cancel(self, reference: str) -> tuple[int, Any]:
        with self._ledger.lock:
            effect = self._ledger.by_ref.get(reference)
            if effect is None:
                return HTTPStatus.NOT_FOUND, {"message": f"no such reference {reference}"}
            effect.state = "canceled"
            return HTTPStatus.OK, {"status": "completed", "reference": reference}

    def _token(self, form: dict[str, list[str]], basic: tuple[str, str] | None) -> tuple[int, Any]:
        self.token_requests += 1
        given = basic or (form.get("client_id", [""])[0], form.get("client_secret", [""])[0])
        if self.oauth is None or given != self.oauth:
            return HTTPStatus.UNAUTHORIZED, {"error": "invalid_client"}
        issued = f"tok-{uuid.uuid4().hex}"
        self.issued_tokens.add(issued)
        body = {"access_token": issued, "token_type": "Bearer", "expires_in": self.token_lifetime}
        return HTTPStatus.OK, body

    def _allowed(self, headers: Any) -> bool:
        schemes = [self.token, self.basic, self.api_key, self.oauth]
        if not any(schemes):
            return True
        given = str(headers.get("Authorization") or "")
        if self.token and given == f"Bearer {self.token}":
            return True
        if self.oauth and given.removeprefix("Bearer ") in self.issued_tokens:
            return True
        if self.basic and basic_credentials(given) == self.basic:
            return True
        return bool(self.api_key and headers.get(self.api_key[0]) == self.api_key[1])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return handler_for(self)
