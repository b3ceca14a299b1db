"""The subcommands of ``orderflow``, one module each.

Each module has ``register(commands)``, which adds its parser(s) to the subparsers and sets
``handler`` (a function of the parsed arguments returning the exit code). Add a module to
:data:`MODULES` to add a command.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"orderflow: {message} (see 'orderflow --help')\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above zero")
    return value


def login_name() -> str:
    """Who runs the command, for an audit row (``--actor`` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def audited(args: argparse.Namespace, change: Callable[[Session, str, str], str]) -> int:
    """Run an operator's audited change (``change(session, reason, actor)`` returns the line
    to print) in one transaction: a blank ``--reason`` or a refused change is one line, exit 2."""
    from daemon.settings import load_settings
    from daemon.store import db
    from orchestration.errors import OperatorError

    reason = " ".join(args.reason.split())
    if not reason:
        print("orderflow: --reason must say why", file=sys.stderr)
        return 2
    engine = db.open_existing(load_settings().database_url)
    try:
        with db.sessions(engine).begin() as session:
            line = change(session, reason, args.actor or login_name())
    except OperatorError as exc:
        print(f"orderflow: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(line)
    return 0


#: The dates any date option takes: Salesforce's own range of dates. A date outside it
#: cannot be meant, and one near date.max overflows as soon as a day is added to it.
FIRST_DAY, LAST_DAY = date(1700, 1, 1), date(4000, 12, 31)


def day(text: str) -> date:
    """A date option's value (YYYY-MM-DD), for every ``--since``/``--until`` and the like."""
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= value <= LAST_DAY:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: a date from {FIRST_DAY} to {LAST_DAY}"
        )
    return value


def say(line: str) -> None:
    """A progress or notice line for people, on stderr (stdout is for results)."""
    print(line, file=sys.stderr, flush=True)


MODULES = [
    "daemon.commands.run",
    "daemon.commands.db",
    "daemon.commands.demo",
    "daemon.commands.rules",
    "daemon.commands.status",
    "daemon.commands.doctor",
    "daemon.commands.task",
    "daemon.commands.flag",
    "daemon.commands.system",
    "daemon.commands.reconcile",
    "daemon.commands.resync",
    "daemon.commands.remap",
    "daemon.commands.canvas",
    "daemon.commands.jeopardy",
    "daemon.commands.cutover",
    "daemon.commands.shadow",
    "daemon.commands.config",
]
