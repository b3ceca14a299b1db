"""Hostile answers a stub system can give, as real systems and the proxies in front of them do.

A stub with :class:`Hostile` set answers every ``every``-th submit (of the ``orders`` named,
when some are: the first part of ``X-Orderflow-Step``) with the next kind in ``kinds``, in
turn (the others are answered well):

- ``truncated``: ``Content-Length`` promises more bytes than are sent, then the connection
  closes; ``reset``: half the body, then a TCP reset;
- ``invalid_json``: a 200 whose JSON body is cut short; ``html``: a 200 login page (a
  proxy's); ``huge``: a 200 body of ``huge_bytes``;
- ``redirect``: a 302 to a login page on another host;
- ``no_content``: a 204 without a body (a success, for a system that has nothing to say);
- ``retry_nan``, ``retry_negative``, ``retry_far``, ``retry_date``: a 503 whose
  ``Retry-After`` is ``nan``, ``-1``, ``1e12`` or an HTTP-date a few seconds ahead;
- ``stall``: the good answer after ``stall_seconds`` (longer than a client waits);
- ``storm``: 429 to the next ``storm`` submits in a row.

The kinds in :data:`AFTER_EFFECT` spoil the answer of an effect the system made (a resend
must be answered from the ledger, not make a second one); the others come from something in
front of the system and make no effect.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

KINDS = (
    "truncated",
    "invalid_json",
    "html",
    "redirect",
    "no_content",
    "huge",
    "retry_nan",
    "retry_negative",
    "retry_far",
    "retry_date",
    "reset",
    "stall",
    "storm",
)
AFTER_EFFECT = frozenset({"truncated", "invalid_json", "no_content", "huge", "reset", "stall"})
LOGIN_PAGE = b"<html><body><form action='/login'>Please sign in</form></body></html>"
REDIRECT_TO = "http://sso.example.invalid/login"
RETRY_AFTER = {"retry_nan": "nan", "retry_negative": "-1", "retry_far": "1e12"}


@dataclass(frozen=True)
class Hostile:
    """Which hostile answers a stub gives, and how often."""

    kinds: tuple[str, ...] = KINDS
    every: int = 3
    storm: int = 10
    stall_seconds: float = 10.0
    huge_bytes: int = 8 * 2**20
    orders: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or self.every < 1:
            raise ValueError(f"unknown hostile kinds {sorted(unknown)} or every < 1")


class Turns:
    """Which submit gets which hostile answer (the caller holds the stub's lock)."""

    def __init__(self, hostile: Hostile) -> None:
        self.hostile = hostile
        self._submits = 0
        self._next = 0
        self._storm_left = 0

    def draw(self, step_ref: str) -> str | None:
        if self.hostile.orders and step_ref.split("/")[0] not in self.hostile.orders:
            return None
        self._submits += 1
        if self._storm_left:
            self._storm_left -= 1
            return "storm"
        if self._submits % self.hostile.every:
            return None
        kind = self.hostile.kinds[self._next % len(self.hostile.kinds)]
        self._next += 1
        if kind == "storm":
            self._storm_left = self.hostile.storm - 1
        return kind


def answer(handler: BaseHTTPRequestHandler, kind: str, hostile: Hostile, body: Any) -> None:
    """Write the hostile answer of ``kind`` (``body``: the good answer, when one was made)."""
    handler.close_connection = True  # each hostile answer ends its connection
    data = json.dumps(body if body is not None else {"status": "completed"}).encode()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
        _write(handler, kind, hostile, data)


def _write(handler: BaseHTTPRequestHandler, kind: str, hostile: Hostile, data: bytes) -> None:
    if kind == "stall":
        time.sleep(hostile.stall_seconds)
        _send(handler, HTTPStatus.OK, "application/json", data)
    elif kind in ("truncated", "reset"):
        _head(handler, HTTPStatus.OK, "application/json", len(data) + 100)
        handler.wfile.write(data[: len(data) // 2] if kind == "reset" else data)
        handler.wfile.flush()
        if kind == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
            linger = struct.pack("ii", 1, 0)
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            handler.connection.close()
    elif kind == "invalid_json":
        _send(handler, HTTPStatus.OK, "application/json", data[: len(data) // 2])
    elif kind == "html":
        _send(handler, HTTPStatus.OK, "text/html; charset=utf-8", LOGIN_PAGE)
    elif kind == "redirect":
        extra = {"Location": REDIRECT_TO}
        _send(handler, HTTPStatus.FOUND, "text/html; charset=utf-8", LOGIN_PAGE, extra)
    elif kind == "no_content":
        handler.send_response(HTTPStatus.NO_CONTENT)
        handler.send_header("Connection", "close")
        handler.end_headers()
    elif kind == "huge":
        _head(handler, HTTPStatus.OK, "application/json", hostile.huge_bytes)
        chunk = b" " * 65536
        for _ in range(hostile.huge_bytes // len(chunk)):
            handler.wfile.write(chunk)
        handler.wfile.write(b" " * (hostile.huge_bytes % len(chunk)))
    elif kind == "storm":
        busy = json.dumps({"message": "too many requests"}).encode()
        _send(handler, HTTPStatus.TOO_MANY_REQUESTS, "application/json", busy, {"Retry-After": "1"})
    else:
        value = RETRY_AFTER.get(kind) or formatdate(time.time() + 3, usegmt=True)
        busy = json.dumps({"message": "try again later"}).encode()
        extra = {"Retry-After": value}
        _send(handler, HTTPStatus.SERVICE_UNAVAILABLE, "application/json", busy, extra)


def _head(
    handler: BaseHTTPRequestHandler,
    status: int,
    content_type: str,
    length: int,
    extra: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(length))
    # A proxy that ends the connection after its answer says so, as HTTP/1.1 asks; without
    # it a client could send its next call down the closing socket and be reset, under load.
    handler.send_header("Connection", "close")
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    content_type: str,
    data: bytes,
    extra: dict[str, str] | None = None,
) -> None:
    _head(handler, status, content_type, len(data), extra)
    handler.wfile.write(data)
