"""``orderflow system offline|online|list``: take a downstream system out of service and back."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from daemon.connectors import DEFAULT_SYSTEMS
from daemon.settings import load_settings, system_settings
from orchestration.errors import ConfigError

HELP = """\
offline NAME  the system's ready steps wait On Hold (no retry is used up) until
              'orderflow system online NAME'; the running daemon sees it next cycle.
online NAME   back in service: its held steps are sent again.
list          every configured system: online or offline, since when and why
              (--json: [{name, offline, mode, reason, since, next_probe_at}]).
A system the daemon took offline by itself (mode auto: connection failures) is probed and
comes back when it answers; one taken offline here (mode manual) waits for 'online'.
Exit codes: 0 done; 2 unknown system or bad settings.
"""


def register(commands: Any) -> None:
    system = commands.add_parser(
        "system",
        help="take a downstream system offline or back online",
        description="Take a downstream system offline or back online.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = system.add_subparsers(dest="system_action", required=True)
    for action in ("offline", "online"):
        sub = actions.add_parser(action, help=f"mark a system {action}")
        sub.add_argument("name", help="the system, e.g. erp, billing, provisioning")
        sub.add_argument("--reason", default="", help="why (shown in 'system list')")
        sub.set_defaults(handler=_switch)
    listing = actions.add_parser("list", help="systems and their state")
    listing.add_argument("--json", action="store_true", help="JSON, for scripts")
    listing.set_defaults(handler=_list)


def _open() -> Any:
    from daemon.store import db

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    return db.sessions(engine)


def _configured(name: str) -> bool:
    return name in DEFAULT_SYSTEMS or system_settings(name).url is not None


def _switch(args: argparse.Namespace) -> int:
    from daemon.cycle import systems

    name = str(args.name).strip().lower()
    if not _configured(name):
        raise ConfigError(f"no system named {args.name!r} (set ORDERFLOW_{name.upper()}_URL)")
    now = datetime.now(UTC)
    with _open().begin() as session:
        if args.system_action == "offline":
            reason = args.reason or "marked offline by an operator"
            changed = systems.set_offline(session, name, reason, now, manual=True)
        else:
            changed = systems.set_online(session, name, args.reason or "marked online", now)
    print(f"{name}: {args.system_action}" + ("" if changed else " (already)"))
    return 0


def _list(args: argparse.Namespace) -> int:
    from daemon.store.models import SystemState

    with _open()() as session:
        rows = {r.name: r for r in session.scalars(select(SystemState))}
    names = sorted(set(DEFAULT_SYSTEMS) | set(rows))
    out = []
    for name in names:
        row = rows.get(name)
        out.append(
            {
                "name": name,
                "offline": bool(row and row.offline),
                "mode": row.mode if row else "",
                "reason": row.reason if row else "",
                "since": row.since.isoformat() if row and row.since else None,
                "next_probe_at": (
                    row.next_probe_at.isoformat() if row and row.next_probe_at else None
                ),
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for item in out:
        state = f"offline ({item['mode']}) since {item['since']}" if item["offline"] else "online"
        reason = f": {item['reason']}" if item["offline"] and item["reason"] else ""
        print(f"{item['name']:<14} {state}{reason}")
    return 0
