"""``orderflow canvas``: the operations canvas against the store alone (no Salesforce login).

Useful beside a daemon on another machine, or to look at a store a run left behind. It
prints the URL it serves on and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from daemon import logs
from daemon.settings import load_settings

HELP = """\
Serves the canvas (orders, plans, systems) from ORDERFLOW_DATABASE_URL on
ORDERFLOW_HTTP_HOST:ORDERFLOW_HTTP_PORT (or --host/--port; port 0 picks a free one) and
prints its URL. Actions (retry, complete, skip; system offline/online) need
ORDERFLOW_OPERATOR_TOKEN; without it the canvas is read-only. Bound beyond loopback
(e.g. --host 0.0.0.0), reading it needs the token too (or ORDERFLOW_CANVAS_PUBLIC=true),
and only the names in ORDERFLOW_HTTP_ALLOWED_HOSTS are answered.
Exit codes: 0 stopped by a signal; 2 bad settings or the port is taken.
"""


def register(commands: Any) -> None:
    canvas = commands.add_parser(
        "canvas",
        help="serve the operations canvas from the database alone",
        description="Serve the operations canvas from the database alone.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    canvas.add_argument("--host", default=None, help="bind address (ORDERFLOW_HTTP_HOST)")
    canvas.add_argument("--port", type=_port, default=None, help="port (ORDERFLOW_HTTP_PORT)")
    canvas.set_defaults(handler=_canvas)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _canvas(args: argparse.Namespace) -> int:
    from daemon.app import utcnow
    from daemon.connectors import DEFAULT_SYSTEMS
    from daemon.service.loop import install_signal_handlers
    from daemon.store import db
    from daemon.web.canvas import CanvasConfig, create_canvas_app
    from daemon.web.listener import Listener, listener_rules

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    engine = db.open_existing(settings.database_url)
    configured = [
        *DEFAULT_SYSTEMS,
        *(n for n in settings.system_urls() if n not in DEFAULT_SYSTEMS),
    ]
    config = CanvasConfig(
        sessions=db.sessions(engine),
        clock=utcnow,
        operator_token=settings.operator_token,
        systems=configured,
    )
    host = settings.http_host if args.host is None else args.host
    port = settings.http_port if args.port is None else args.port
    listener = Listener(create_canvas_app(config), host, port, listener_rules(settings, host))
    stop = threading.Event()
    install_signal_handlers(stop)
    listener.start()
    print(f"{listener.url}/canvas/", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        listener.stop()
        engine.dispose()
    return 0
