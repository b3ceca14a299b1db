"""``orderflow status``: orders and tasks in the store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from daemon.settings import load_settings


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="orders and tasks in the store")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from daemon import db, store

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with db.sessions(engine)() as session:
        summary = store.counts(session)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print("orders:")
    for status, n in sorted(summary["orders_by_status"].items()):
        print(f"  {status:<14} {n:>7}")
    print("tasks:")
    for system, states in sorted(summary["tasks_by_system"].items()):
        print(f"  {system}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    return 0
