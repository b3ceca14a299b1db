"""``orderflow flag ack ORDER --reason TEXT``: a person has seen an order's flag.

The flag (a change refused past the point of no return, an Order deleted in flight...)
stays on the order; the acknowledgement, with who and why, takes it off ``task list``
(daemon.store.flags).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from daemon.commands import Parser, audited

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def register(commands: Any) -> None:
    flag = commands.add_parser("flag", help="acknowledge an order's flag")
    sub = flag.add_subparsers(dest="flag_command", required=True, parser_class=Parser)
    ack = sub.add_parser("ack", help="note that a person has seen an order's flag")
    ack.add_argument("order", metavar="ORDER", help="order number or Order id")
    ack.add_argument("--reason", required=True, help="what was decided, for the audit trail")
    ack.add_argument("--actor", default=None, help="who (default: the login name)")
    ack.set_defaults(handler=_ack)


def _ack(args: argparse.Namespace) -> int:
    from daemon.app import utcnow
    from daemon.commands.status import find_plan
    from daemon.store.flags import acknowledge

    def ack(session: Session, reason: str, actor: str) -> str:
        plan = find_plan(session, args.order)
        text = acknowledge(session, plan, reason, actor, utcnow())
        return f"order {plan.order_number}: flag acknowledged ({text})"

    return audited(args, ack)
