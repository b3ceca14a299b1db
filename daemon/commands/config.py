"""``orderflow config example``: every setting with its comment (the ``.env.example`` the
package carries), to start a ``.env`` from an installed wheel."""

from __future__ import annotations

import argparse
from importlib.resources import files
from typing import Any

from daemon.commands import Parser


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="settings: print the commented example")
    sub = config.add_subparsers(dest="config_command", required=True, parser_class=Parser)
    example = sub.add_parser("example", help="print .env.example: every ORDERFLOW_* setting")
    example.set_defaults(handler=_example)


def _example(_args: argparse.Namespace) -> int:
    print(files("daemon").joinpath("env.example").read_text(encoding="utf-8"), end="")
    return 0
