"""``orderflow task retry|complete|skip ID --reason TEXT``: an operator resolves a task.

Each resolution is a task-event row with the actor and the reason. ``orderflow task list``
shows what waits for a person: fallout and manual steps with their ids, and flagged orders
not yet acknowledged (``id`` null, ``state`` "Flagged", ``message`` the flag; acknowledged
with ``orderflow flag ack ORDER --reason TEXT``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daemon.commands import Parser, audited, positive_int
from daemon.commands.colour import paint
from daemon.settings import load_settings
from orchestration.states import Resolution

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def register(commands: Any) -> None:
    task = commands.add_parser("task", help="resolve fallout and manual tasks")
    sub = task.add_subparsers(dest="task_command", required=True, parser_class=Parser)
    for verb, text in (
        (Resolution.RETRY, "try a failed task again now, with a fresh budget of retries"),
        (Resolution.COMPLETE, "mark a task done (fallout fixed by hand, manual work done)"),
        (Resolution.SKIP, "skip a task: what depends on it goes on without it"),
    ):
        parser = sub.add_parser(verb.value, help=text)
        parser.add_argument("id", type=positive_int, help="the task's id (see 'task list')")
        parser.add_argument("--reason", required=True, help="why, for the audit trail")
        parser.add_argument("--actor", default=None, help="who (default: the login name)")
        parser.set_defaults(handler=_resolve, verb=verb)
    listing = sub.add_parser("list", help="tasks waiting for a person")
    listing.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    listing.set_defaults(handler=_list)


def _resolve(args: argparse.Namespace) -> int:
    from daemon import store

    def resolve(session: Session, reason: str, actor: str) -> str:
        task = store.resolve_task(session, args.id, args.verb, reason, actor, datetime.now(UTC))
        return f"task {task.id} ({task.title}): {task.state}"

    return audited(args, resolve)


def _list(args: argparse.Namespace) -> int:
    from daemon import store
    from daemon.store import db

    settings = load_settings()
    engine = db.open_existing(settings.database_url)
    with db.sessions(engine)() as session:
        rows = store.waiting_for_operator(session) + _flags(session)
    engine.dispose()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print("nothing waiting for a person")
    for row in rows:
        state = paint(f"{row['state']:<15}", row["state"])
        print(f"{row['id'] or 'flag':>7}  {row['order']:<10} {state} {row['title']}")
        if row["message"]:
            print(f"{'':>7}  {row['message']}")
        if row["id"] is None:
            print(f"{'':>7}  orderflow flag ack {row['order']} --reason TEXT")
    return 0


def _flags(session: Any) -> list[dict[str, Any]]:
    from daemon.store.flags import FLAGGED, flagged_orders

    return [
        {
            "id": None,
            "order": f["order"],
            "step": None,
            "state": FLAGGED,
            "title": "flagged: a person must decide",
            "message": f["flag"],
        }
        for f in flagged_orders(session)
        if not f["acknowledged"]
    ]
