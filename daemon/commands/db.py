"""``orderflow db upgrade``: create or migrate the store's schema."""

from __future__ import annotations

import argparse
from typing import Any

from daemon import logs
from daemon.settings import load_settings


def register(commands: Any) -> None:
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(handler=_db)


def _db(args: argparse.Namespace) -> int:
    from daemon.app import database

    settings = load_settings()
    logs.configure(settings.log_level)
    database(settings)
    print("database schema is up to date")
    return 0
