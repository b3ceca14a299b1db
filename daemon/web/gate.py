"""The listener's gate: what every request passes before a route sees it.

- **Host**: the ``Host`` header must name this listener (``ORDERFLOW_HTTP_ALLOWED_HOSTS``;
  by default the bind address and localhost), else 421. A DNS-rebinding page in an
  operator's browser reaches the listener under its own host name, and is refused.
- **Body size**: a body over ``ORDERFLOW_HTTP_MAX_BODY`` bytes (1 MB) is 413, told by its
  ``Content-Length`` before any of it is read; a chunked body is read up to the limit only.
- **Who may read**: when the listener binds beyond loopback, the canvas and ``/metrics``
  need the operator token (``Authorization: Bearer TOKEN``, or Basic with the token as
  password, so a browser can ask for it) unless ``ORDERFLOW_CANVAS_PUBLIC=true``.
  ``/healthz`` and the callbacks stay open: the callbacks carry their own signatures.

Refusals are logged with the untrusted parts quoted (``%r``), so a path or a Host header
carrying a line break cannot forge a log line.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestration.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1_048_576
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: Paths that show the store: behind the token when the listener is reachable from afar.
PROTECTED = ("/canvas", "/metrics")


@dataclass(frozen=True)
class GateRules:
    """What the gate lets through."""

    allowed_hosts: frozenset[str]
    max_body: int = DEFAULT_MAX_BODY
    #: Needed to read :data:`PROTECTED` paths; None: they are open (loopback, or public).
    token: SecretStr | None = None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def gate_rules(
    host: str,
    *,
    allowed_hosts: Sequence[str] = (),
    max_body: int = DEFAULT_MAX_BODY,
    operator_token: SecretStr | None = None,
    canvas_public: bool = False,
) -> GateRules:
    """The rules for a listener bound to ``host``; ConfigError when it would show the store
    to the network without a token and no one said it may."""
    hosts = frozenset(
        h.strip().lower().strip("[]") for h in (allowed_hosts or (host, *LOCAL_NAMES))
    )
    guarded = not is_loopback(host) and not canvas_public
    token = operator_token if operator_token and operator_token.get_secret_value() else None
    if guarded and token is None:
        raise ConfigError(
            f"setting ORDERFLOW_HTTP_HOST: {host} is reachable beyond this machine; set "
            "ORDERFLOW_OPERATOR_TOKEN (the canvas and /metrics then need it) or "
            "ORDERFLOW_CANVAS_PUBLIC=true"
        )
    return GateRules(hosts, max_body, token if guarded else None)


def host_name(header: str) -> str:
    """``Host`` without its port, lower case; IPv6 without its brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def carries_token(headers: Headers, token: SecretStr) -> bool:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    given = value.strip()
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(given, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    expected = token.get_secret_value().encode()
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), expected)


class Gate:
    """ASGI middleware applying :class:`GateRules` to every HTTP request."""

    def __init__(self, app: ASGIApp, rules: GateRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = str(scope.get("path", ""))
        host = headers.get("host", "")
        if host_name(host) not in self.rules.allowed_hosts:
            log.warning("refused a request for %r: Host %r is not this listener's", path, host)
            await _answer(421, "this listener does not serve that host name", scope, receive, send)
            return
        token = self.rules.token
        if token is not None and _protected(path) and not carries_token(headers, token):
            log.warning("refused a request for %r without the operator token", path)
            challenge = {"WWW-Authenticate": 'Basic realm="orderflow", charset="UTF-8"'}
            await _answer(401, "the operator token is needed", scope, receive, send, challenge)
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _answer(400, "bad Content-Length", scope, receive, send)
            elif int(length) > self.rules.max_body:
                log.warning(
                    "refused a %s-byte body for %r (limit %d)", length, path, self.rules.max_body
                )
                await _answer(413, "the body is too large", scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_up_to(receive, self.rules.max_body)
            if body is None:
                log.warning(
                    "refused a chunked body over %d bytes for %r", self.rules.max_body, path
                )
                await _answer(413, "the body is too large", scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


async def _read_up_to(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest unread)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = bytes(message.get("body", b""))
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _answer(
    status: int,
    text: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: dict[str, str] | None = None,
) -> None:
    # The connection is closed after a refusal: a body left unread is never read.
    response = PlainTextResponse(
        text, status_code=status, headers={"Connection": "close", **(headers or {})}
    )
    await response(scope, receive, send)
