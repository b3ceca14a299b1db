"""``orderflow demo``: the daemon against a local Salesforce org and stub systems."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.commands import positive_int


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run against a local Salesforce and stub systems")
    demo.add_argument("--orders", type=positive_int, default=50, help="orders to seed (50)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--workdir",
        type=Path,
        default=Path(".demo"),
        help="scratch folder (.demo); refused if not empty and not made by the demo",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="leave the org, the stubs and the daemon running after the summary (Ctrl-C stops)",
    )
    demo.add_argument("--timeout", type=positive_int, default=600, help="seconds to wait")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from daemon.ops.demo import run_demo

    logs.configure("WARNING")
    return run_demo(
        args.orders, as_json=args.json, workdir=args.workdir, timeout=args.timeout, keep=args.keep
    )
