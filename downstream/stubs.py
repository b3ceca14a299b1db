"""Local stand-ins for an ERP, a billing system and a provisioning platform.

Each is a real HTTP server on 127.0.0.1 that takes a task as a JSON POST, honours the
``Idempotency-Key`` header (a repeat returns the first answer and makes no second effect)
and counts what it received, so tests and the demo can prove exactly-once in effect:
``duplicates`` counts effects made for a step (``X-Orderflow-Step``) that already had one,
which only happens if a client sends the same step under a new key.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

PREFIXES = {"erp": "SO", "billing": "SUB", "provisioning": "PRV"}


@dataclass
class Effect:
    key: str
    action: str
    step_ref: str
    payload: dict[str, Any]
    reference: str


@dataclass
class _Ledger:
    requests: int = 0
    replays: int = 0
    duplicates: int = 0
    effects: list[Effect] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    steps: set[str] = field(default_factory=set)


class StubSystem:
    """One stub system. ``token``, when set, is required as a Bearer token."""

    def __init__(self, name: str, *, token: str | None = None, port: int = 0) -> None:
        self.name = name
        self.token = token
        self._ledger = _Ledger()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"stub-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def effects(self) -> list[Effect]:
        with self._lock:
            return list(self._ledger.effects)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            ledger = self._ledger
            return {
                "name": self.name,
                "requests": ledger.requests,
                "effects": len(ledger.effects),
                "replays": ledger.replays,
                "duplicates": ledger.duplicates,
            }

    def _accept(self, key: str, action: str, step_ref: str, payload: Any) -> tuple[int, Any]:
        with self._lock:
            ledger = self._ledger
            ledger.requests += 1
            if key in ledger.answers:
                ledger.replays += 1
                return ledger.answers[key]
            if not isinstance(payload, dict):
                return HTTPStatus.BAD_REQUEST, {"message": "body must be a JSON object"}
            reference = f"{PREFIXES.get(self.name, 'REF')}-{len(ledger.effects) + 1:06d}"
            if step_ref and step_ref in ledger.steps:
                ledger.duplicates += 1
                log.warning("%s: second effect for step %s", self.name, step_ref)
            ledger.steps.add(step_ref)
            ledger.effects.append(Effect(key, action, step_ref, payload, reference))
            answer = (HTTPStatus.OK, {"status": "completed", "reference": reference})
            ledger.answers[key] = answer
            return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s: " + format, stub.name, *args)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/_stub/stats":
                    self._send(HTTPStatus.OK, stub.stats())
                elif self.path == "/_stub/effects":
                    self._send(HTTPStatus.OK, [e.__dict__ for e in stub.effects])
                else:
                    self._send(HTTPStatus.NOT_FOUND, {"message": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if stub.token and self.headers.get("Authorization") != f"Bearer {stub.token}":
                    self._send(HTTPStatus.UNAUTHORIZED, {"message": "bad or missing token"})
                    return
                key = self.headers.get("Idempotency-Key")
                if not key:
                    self._send(HTTPStatus.BAD_REQUEST, {"message": "Idempotency-Key missing"})
                    return
                try:
                    payload = json.loads(raw or b"null")
                except ValueError:
                    self._send(HTTPStatus.BAD_REQUEST, {"message": "body is not JSON"})
                    return
                action = self.path.strip("/")
                step_ref = self.headers.get("X-Orderflow-Step", "")
                self._send(*stub._accept(key, action, step_ref, payload))

        return Handler
