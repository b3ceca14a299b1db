"""The HTTP side of a stub system (:mod:`downstream.stubs`): requests in, answers out.

Kept apart from the stub's state so each module stays one thing: this one reads requests
(refusing a body cut short of its ``Content-Length``), checks credentials through the stub
and writes its answers, good or hostile (:mod:`downstream.stub_hostile`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from downstream import stub_hostile
from downstream.signing import CORRELATION_HEADER

if TYPE_CHECKING:
    from downstream.stubs import StubSystem

log = logging.getLogger("downstream.stubs")


def handler_for(stub: StubSystem) -> type[BaseHTTPRequestHandler]:
    """The request handler class of ``stub``'s server."""

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as real systems speak: a connection per call made the client's
        # connects most of a benchmark's dispatch time. Idle ones close after a while.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s: " + format, stub.name, *args)

        def _gone(self) -> bool:
            """Stopped or offline since this connection opened: hang up, unanswered."""
            if self.server is stub._server:
                return False
            self.close_connection = True
            return True

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("%s: the client left before the answer", stub.name)

        def do_GET(self) -> None:
            if self._gone():
                return
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/_stub/stats":
                return self._send(HTTPStatus.OK, stub.stats())
            if url.path == "/_stub/effects":
                return self._send(HTTPStatus.OK, [e.__dict__ for e in stub.effects])
            if url.path == "/":
                return self._send(HTTPStatus.OK, {"name": stub.name, "ok": True})
            if not stub._allowed(self.headers):
                return self._send(HTTPStatus.UNAUTHORIZED, {"message": "not authorized"})
            stub._sleep()
            if url.path.startswith("/status/"):
                return self._send(*stub._status(unquote(url.path[len("/status/") :])))
            if url.path == "/documents":
                docs = stub.documents(query.get("since", ""), query.get("until", ""))
                return self._send(HTTPStatus.OK, {"documents": docs})
            self._send(HTTPStatus.NOT_FOUND, {"message": "not found"})

        def do_POST(self) -> None:
            if self._gone():
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client gave up mid-body: nothing to act on
                self.close_connection = True
                return self._send(HTTPStatus.BAD_REQUEST, {"message": "body cut short"})
            if self.path == "/oauth/token":
                form = parse_qs(raw.decode())
                return self._send(
                    *stub._token(form, basic_credentials(self.headers["Authorization"]))
                )
            if not stub._allowed(self.headers):
                return self._send(HTTPStatus.UNAUTHORIZED, {"message": "bad or missing token"})
            with stub.serving():
                self._post(raw)

        def _post(self, raw: bytes) -> None:
            stub._sleep()
            if self.path.startswith("/cancel/"):
                return self._send(*stub._cancel(unquote(self.path[len("/cancel/") :])))
            key = self.headers.get("Idempotency-Key")
            if not key:
                return self._send(HTTPStatus.BAD_REQUEST, {"message": "Idempotency-Key missing"})
            try:
                payload = json.loads(raw or b"null")
            except ValueError:
                return self._send(HTTPStatus.BAD_REQUEST, {"message": "body is not JSON"})
            step_ref = self.headers.get("X-Orderflow-Step", "")
            kind = stub._hostile_turn(step_ref, key)
            if kind and kind not in stub_hostile.AFTER_EFFECT:
                return stub_hostile.answer(self, kind, stub.hostile, None)
            status, body, wait = stub._submit(
                key,
                self.path.strip("/"),
                step_ref,
                payload,
                self.headers.get(CORRELATION_HEADER),
            )
            if kind:
                return stub_hostile.answer(self, kind, stub.hostile, body)
            if wait:
                time.sleep(wait)
            self._send(status, body)

    return Handler


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password
