"""``orderflow run`` (the daemon) and ``orderflow sync --once`` (one cycle)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.context import Context
from daemon.ops import golive
from daemon.service.systemd_notify import Notifier
from daemon.settings import Settings, load_settings

log = logging.getLogger("orderflow")


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run the daemon until SIGTERM or SIGINT")
    run.set_defaults(handler=_run)
    sync = commands.add_parser("sync", help="run sync cycles now")
    sync.add_argument("--once", action="store_true", required=True, help="run one cycle")
    sync.set_defaults(handler=_sync)


def _run(args: argparse.Namespace) -> int:
    from daemon.store import db

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    notifier = Notifier()
    notifier.status("starting: settings, database, Salesforce login")
    single = db.hold_single_instance(settings.database_url)  # SQLite: one instance only
    try:
        _require_cutover(settings)
        return _serve(settings, notifier)
    finally:
        if single is not None:
            single.release()


def _serve(settings: Settings, notifier: Notifier) -> int:
    from daemon.app import context
    from daemon.cycle.pipeline import Pipeline
    from daemon.service import loop, subscription
    from daemon.service.health import Heartbeat, stale_after
    from daemon.service.loop import install_signal_handlers, run_forever
    from daemon.web.listener import Listener, create_app, daemon_routes, listener_rules

    ctx = context(settings)
    notifier.status("adopting the orders before the cut-over")
    adopt_history(ctx, on_page=notifier.watchdog)
    golive.switch_at_start(ctx)  # live after a shadow run: each order by one side only
    stop = threading.Event()
    install_signal_handlers(stop, notifier)
    heartbeat = Heartbeat(stale_after(settings.poll_interval))
    listener = None
    if settings.http_enabled:
        routes = daemon_routes(ctx, operator_token=settings.operator_token)
        app = create_app(ctx, heartbeat=heartbeat, extra_routes=routes)
        rules = listener_rules(settings, settings.http_host)
        listener = Listener(app, settings.http_host, settings.http_port, rules)
        listener.start()
        notifier.status(f"HTTP listener on {listener.url}")
    log.info("orderflow running, polling every %g s", settings.poll_interval)
    if ctx.webhook is not None:
        ctx.webhook.start()  # notifications go from their own thread (daemon.channels.webhook)
    try:
        with loop.running(ctx, stop) as wakeup:
            subscription.open_stream(ctx, settings, notify=wakeup.event.set)  # events wake it
            run_forever(
                ctx,
                settings.poll_interval,
                stop,
                notifier=notifier,
                heartbeat=heartbeat,
                wakeup=wakeup,
                jeopardy_interval=settings.jeopardy_interval,
                retention_days=settings.retention_days,
                pipeline=Pipeline(ctx),
            )
    finally:
        subscription.close_stream(ctx)
        if ctx.webhook is not None:
            ctx.webhook.close()  # not waited for: a slow webhook does not hold up SIGTERM
        if listener is not None:
            listener.stop()
    return 0


def _sync(args: argparse.Namespace) -> int:
    from daemon.app import context
    from daemon.service import loop
    from daemon.service.loop import safe_cycle
    from daemon.store import db

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    single = db.hold_single_instance(settings.database_url)  # SQLite: one instance only
    try:
        _require_cutover(settings)
        ctx = context(settings)
        adopt_history(ctx)
        golive.switch_at_start(ctx)
        with loop.running(ctx, threading.Event(), listen=False):
            report = safe_cycle(ctx)
    finally:
        if single is not None:
            single.release()
    return 0 if report is not None else 1  # cron and scripts see a failed cycle


def _require_cutover(settings: Settings) -> None:
    """Refuse a first start without a cut-over (one line, exit 2), before any login."""
    from daemon import app
    from daemon.store import cutover, db

    if settings.cutover_at is not None:
        return
    engine = app.database(settings)
    try:
        cutover.require(db.sessions(engine))
    finally:
        engine.dispose()


def adopt_history(ctx: Context, on_page: Callable[[], object] | None = None) -> None:
    """Adopt the orders before the cut-over, unless done (a kill resumes it here); a bar on
    a terminal, and ``on_page`` after each page (systemd's watchdog)."""
    from daemon.commands.resync import ProgressBar

    bar = ProgressBar(sys.stderr, "adopt") if sys.stderr.isatty() else None

    def progress(obj: str, done: int, total: int) -> None:
        if bar is not None:
            bar(obj, done, total)
        if on_page is not None:
            on_page()

    try:
        golive.adopt_history(ctx, progress)
    finally:
        if bar is not None:
            bar.close()
