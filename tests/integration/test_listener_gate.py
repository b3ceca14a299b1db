"""The listener's edges over real HTTP: body size, Host names, quoted log lines, signatures
of any bytes, and the token the canvas and /metrics need beyond loopback."""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr

from daemon.context import Context
from daemon.web.gate import gate_rules
from daemon.web.listener import Listener, create_app, daemon_routes
from downstream.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from orchestration.errors import ConfigError
from tests.integration.world import World

TOKEN = "operator-token-for-tests"
#: Beyond loopback: what these tests are about (bound on a free port, for a moment).
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104


def raw_request(port: int, head: str, body: bytes = b"") -> str:
    """Send ``head`` (and ``body``) as they are; the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        answer = sock.recv(65536).decode("latin-1")
    return answer.split("\r\n", 1)[0]


@pytest.fixture
def ctx(world: World, monkeypatch) -> Context:
    return world.context(monkeypatch, billing_callback_secret="billing-callback-secret")


def serve(ctx: Context, host: str = "127.0.0.1", **rules) -> Listener:
    app = create_app(ctx, extra_routes=daemon_routes(ctx, SecretStr(TOKEN)))
    listener = Listener(app, host, 0, gate_rules(host, **rules) if rules else None)
    listener.start()
    return listener


@pytest.fixture
def local(ctx: Context) -> Iterator[Listener]:
    listener = serve(ctx, max_body=1000)
    yield listener
    listener.stop()


def test_a_body_over_the_limit_is_413_before_it_is_read(local: Listener):
    # 400 MB announced, none sent: the answer comes without the server waiting for it.
    head = (
        "POST /callbacks/billing HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 400000000"
    )
    assert raw_request(local.port, head) == "HTTP/1.1 413 Request Entity Too Large"
    # A chunked body is read up to the limit only.
    chunks = (b"x" * 300 for _ in range(10))
    answer = requests.post(f"{local.url}/callbacks/billing", data=chunks, timeout=10)
    assert answer.status_code == 413
    # Within the limit the route answers (here: no signature).
    assert (
        requests.post(f"{local.url}/callbacks/billing", data=b"{}", timeout=10).status_code == 401
    )


def test_the_default_limit_is_one_megabyte(ctx: Context):
    listener = serve(ctx)
    try:
        head = "POST /callbacks/billing HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}"
        assert raw_request(listener.port, head.format(1_048_577)).split()[1] == "413"
        assert raw_request(listener.port, head.format(2), b"{}").split()[1] == "401"
    finally:
        listener.stop()


def test_a_host_that_is_not_the_listeners_is_421(local: Listener, ctx: Context):
    healthz = f"{local.url}/healthz"
    assert requests.get(healthz, headers={"Host": "rebound.example"}, timeout=10).status_code == 421
    canvas = requests.get(f"{local.url}/canvas/", headers={"Host": "evil:80"}, timeout=10)
    assert canvas.status_code == 421 and "Orders" not in canvas.text
    for host in ("127.0.0.1", f"127.0.0.1:{local.port}", f"localhost:{local.port}"):
        assert requests.get(healthz, headers={"Host": host}, timeout=10).status_code == 503
    named = serve(ctx, allowed_hosts=["orderflow.example.com"])
    try:
        ok = requests.get(
            f"{named.url}/metrics", headers={"Host": "orderflow.example.com"}, timeout=10
        )
        assert ok.status_code == 200
        assert requests.get(f"{named.url}/metrics", timeout=10).status_code == 421
    finally:
        named.stop()


def test_untrusted_text_in_log_lines_is_quoted(local: Listener, caplog):
    caplog.set_level(logging.WARNING)
    answer = requests.post(f"{local.url}/callbacks/x%0AINFO forged line", data=b"{}", timeout=10)
    assert answer.status_code == 404
    requests.get(f"{local.url}/healthz", headers={"Host": "evil%0Aforged"}, timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("'x\\nINFO forged line'" in line for line in lines), lines
    assert all("\n" not in line for line in lines), lines


def test_a_signature_of_any_bytes_is_401(local: Listener):
    stamp = str(int(time.time()))
    for signature in ("sha256=é", "sha256=\u00ff\u00fe", "\x01"):
        head = (
            f"POST /callbacks/billing HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
            f"{TIMESTAMP_HEADER}: {stamp}\r\n{SIGNATURE_HEADER}: {signature}"
        )
        assert raw_request(local.port, head, b"{}") == "HTTP/1.1 401 Unauthorized"


def test_beyond_loopback_the_canvas_and_metrics_need_the_token(ctx: Context):
    with pytest.raises(ConfigError, match="ORDERFLOW_OPERATOR_TOKEN"):
        gate_rules(EVERY_INTERFACE)
    listener = serve(ctx, EVERY_INTERFACE, operator_token=SecretStr(TOKEN))
    url = f"http://127.0.0.1:{listener.port}"
    try:
        for path in ("/canvas/", "/canvas/api/orders", "/metrics"):
            refused = requests.get(url + path, timeout=10)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Basic")
            wrong = {"Authorization": "Bearer not-the-token"}
            assert requests.get(url + path, headers=wrong, timeout=10).status_code == 401
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            assert requests.get(url + path, headers=bearer, timeout=10).status_code == 200
            basic = {"Authorization": "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()}
            assert requests.get(url + path, headers=basic, timeout=10).status_code == 200
        # Open: health, and the callbacks (signed on their own: refused by their handler).
        assert requests.get(url + "/healthz", timeout=10).status_code == 503
        callback = requests.post(url + "/callbacks/erp", data=b"{}", timeout=10)
        assert (callback.status_code, callback.json()["error"][:18]) == (404, "takes no callbacks")
    finally:
        listener.stop()
    public = serve(ctx, EVERY_INTERFACE, canvas_public=True)
    try:
        answer = requests.get(f"http://127.0.0.1:{public.port}/canvas/", timeout=10)
        assert answer.status_code == 200
    finally:
        public.stop()
