"""The ``orderflow`` command: the daemon, one-shot sync, the demo and operator tools.

Exit codes: 0 done; 1 a failure at run time (refused login, unsettled demo); 2 bad
arguments, settings or input files (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from orchestration.errors import ConfigError, FatalError, RetriableError

log = logging.getLogger("orderflow")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"orderflow: {message} (see 'orderflow --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orderflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("run", help="run the daemon until SIGTERM or SIGINT")
    sync = commands.add_parser("sync", help="run sync cycles now")
    sync.add_argument("--once", action="store_true", required=True, help="run one cycle")

    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])

    demo = commands.add_parser("demo", help="run against a local Salesforce and stub systems")
    demo.add_argument("--orders", type=_positive, default=50, help="orders to seed (50)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"), help="scratch folder")
    demo.add_argument("--timeout", type=_positive, default=600, help="seconds to wait (600)")

    rules = commands.add_parser("rules", help="decomposition rules")
    rules_cmd = rules.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    check = rules_cmd.add_parser("check", help="validate a rules file")
    check.add_argument("file", type=Path)

    status = commands.add_parser("status", help="orders and tasks in the store")
    status.add_argument("--json", action="store_true")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above zero")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"orderflow: {line}", file=sys.stderr)
        return 2
    except (FatalError, RetriableError) as exc:
        print(f"orderflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from daemon import logs
    from daemon.settings import load_settings

    if args.command == "rules":
        return _rules_check(args.file)
    if args.command == "demo":
        from daemon.demo import run_demo

        logs.configure("WARNING")
        return run_demo(args.orders, as_json=args.json, workdir=args.workdir, timeout=args.timeout)
    settings = load_settings()
    logs.configure(settings.log_level)
    if args.command == "db":
        from daemon.app import database

        database(settings)
        print("database schema is up to date")
        return 0
    if args.command == "status":
        return _status(settings, as_json=args.json)
    from daemon.app import context
    from daemon.loop import install_signal_handlers, run_forever, safe_cycle

    ctx = context(settings)
    if args.command == "sync":
        safe_cycle(ctx)
        return 0
    stop = threading.Event()
    install_signal_handlers(stop)
    log.info("orderflow running, polling every %g s", settings.poll_interval)
    run_forever(ctx, settings.poll_interval, stop)
    return 0


def _rules_check(path: Path) -> int:
    from daemon.app import POLLED_FIELDS
    from orchestration.rules import load_rules

    ruleset = load_rules(path, POLLED_FIELDS)
    steps = sum(len(r.steps) for r in ruleset.rules)
    print(f"{path}: ok, version {ruleset.version}, {len(ruleset.rules)} rules, {steps} steps")
    return 0


def _status(settings: Any, *, as_json: bool) -> int:
    from daemon import db, store

    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.sessions(engine)() as session:
        summary = store.counts(session)
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print("orders:")
    for status, n in sorted(summary["orders_by_status"].items()):
        print(f"  {status:<14} {n:>7}")
    print("tasks:")
    for system, states in sorted(summary["tasks_by_system"].items()):
        print(f"  {system}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    return 0
