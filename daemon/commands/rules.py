"""``orderflow rules check FILE``: validate a rules file, every problem with its place."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daemon.commands import Parser


def register(commands: Any) -> None:
    rules = commands.add_parser("rules", help="decomposition rules")
    sub = rules.add_subparsers(dest="rules_command", required=True, parser_class=Parser)
    check = sub.add_parser("check", help="validate a rules file")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from daemon.app import POLLED_FIELDS
    from orchestration.auto import REGISTRY
    from orchestration.rules import load_rules

    ruleset = load_rules(args.file, POLLED_FIELDS, REGISTRY)
    steps = sum(len(r.steps) for r in ruleset.rules)
    print(f"{args.file}: ok, version {ruleset.version}, {len(ruleset.rules)} rules, {steps} steps")
    return 0
