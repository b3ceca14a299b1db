"""The daemon's HTTP listener: ``/healthz`` and ``/metrics`` now; more routes plug in.

:func:`create_app` builds the Starlette app; other features (the web canvas, downstream
callbacks) add their routes through ``extra_routes`` (see :func:`daemon_routes`, the one
place ``orderflow run`` collects them). Handlers reach the daemon's context as
``request.app.state.ctx``. :class:`Listener` serves an app with uvicorn in a background
thread, so the loop stays the main thread that signals reach.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from daemon.context import Context
from daemon.service.health import Heartbeat
from daemon.settings import Settings
from daemon.web import metrics
from daemon.web.gate import Gate, GateRules, gate_rules
from orchestration.errors import ConfigError

log = logging.getLogger(__name__)


def daemon_routes(ctx: Context, operator_token: SecretStr | None = None) -> list[BaseRoute]:
    """Routes of other features served by ``orderflow run``; add yours here."""
    from daemon.web.callbacks import callback_route
    from daemon.web.canvas import CanvasConfig, canvas_routes

    # The operations canvas under /canvas (actions need ORDERFLOW_OPERATOR_TOKEN).
    canvas = CanvasConfig(ctx.sessions, lambda: ctx.clock(), operator_token, list(ctx.systems))
    return [
        callback_route(),  # POST /callbacks/{system}: downstream completions
        *canvas_routes(canvas),
    ]


def create_app(
    ctx: Context,
    *,
    heartbeat: Heartbeat | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The listener's app. Without a heartbeat (no loop), ``/healthz`` answers 503."""
    app = Starlette(
        routes=[
            Route("/healthz", _healthz, methods=["GET", "HEAD"]),
            Route("/metrics", _metrics, methods=["GET"]),
            *extra_routes,
        ]
    )
    app.state.ctx = ctx
    app.state.heartbeat = heartbeat
    app.state.registry = metrics.registry(ctx, heartbeat)
    return app


def _healthz(request: Request) -> Response:
    heartbeat: Heartbeat | None = request.app.state.heartbeat
    if heartbeat is None:
        return JSONResponse({"healthy": False, "status": "no loop"}, status_code=503)
    body = heartbeat.snapshot()
    return JSONResponse(body, status_code=200 if body["healthy"] else 503)


def _metrics(request: Request) -> Response:
    # A sync handler: Starlette runs it in a worker thread, so store queries do not block.
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


def listener_rules(settings: Settings, host: str) -> GateRules:
    """The gate's rules for a listener on ``host``, from the settings."""
    return gate_rules(
        host,
        allowed_hosts=settings.http_allowed_hosts,
        max_body=settings.http_max_body,
        operator_token=settings.operator_token,
        canvas_public=settings.canvas_public,
    )


class Listener:
    """Serves an ASGI app on ``host:port`` (0: a free port) from a background thread,
    behind the gate (daemon.web.gate: Host names, body size, the token beyond loopback)."""

    def __init__(
        self, app: Starlette, host: str, port: int, rules: GateRules | None = None
    ) -> None:
        gated = Gate(app, rules or gate_rules(host))  # before binding: a refusal binds nothing
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
            # Listening now (uvicorn listens again, harmlessly): a request that comes before
            # the server thread is up waits in the backlog instead of being refused.
            self._socket.listen(128)
        except OSError as exc:
            self._socket.close()
            raise ConfigError(
                f"setting ORDERFLOW_HTTP_PORT: cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc
        self.host, self.port = host, int(self._socket.getsockname()[1])
        config = uvicorn.Config(gated, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="http", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        log.info("HTTP listener on %s (/healthz, /metrics)", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let open requests finish (up to ``timeout``), close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()
