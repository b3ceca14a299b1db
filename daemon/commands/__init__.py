"""The subcommands of ``orderflow``, one module each.

Each module has ``register(commands)``, which adds its parser(s) to the subparsers and sets
``handler`` (a function of the parsed arguments returning the exit code). Add a module to
:data:`MODULES` to add a command.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


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
    "daemon.commands.config",
]
