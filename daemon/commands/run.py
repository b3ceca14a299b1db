"""``orderflow run`` (the daemon) and ``orderflow sync --once`` (one cycle)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from daemon import logs
from daemon.settings import load_settings

log = logging.getLogger("orderflow")


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run the daemon until SIGTERM or SIGINT")
    run.set_defaults(handler=_run)
    sync = commands.add_parser("sync", help="run sync cycles now")
    sync.add_argument("--once", action="store_true", required=True, help="run one cycle")
    sync.set_defaults(handler=_sync)


def _run(args: argparse.Namespace) -> int:
    from daemon.app import context
    from daemon.loop import install_signal_handlers, run_forever

    settings = load_settings()
    logs.configure(settings.log_level)
    ctx = context(settings)
    stop = threading.Event()
    install_signal_handlers(stop)
    log.info("orderflow running, polling every %g s", settings.poll_interval)
    run_forever(ctx, settings.poll_interval, stop)
    return 0


def _sync(args: argparse.Namespace) -> int:
    from daemon.app import context
    from daemon.loop import safe_cycle

    settings = load_settings()
    logs.configure(settings.log_level)
    safe_cycle(context(settings))
    return 0
