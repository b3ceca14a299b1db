"""The ``orderflow`` command: the daemon, one-shot sync, the demo and operator tools.

Exit codes: 0 done; 1 a failure at run time (a failed ``sync --once`` cycle, unsettled demo,
differences found); 2 bad arguments, settings, credentials (a refused login) or input files
(one line each on stderr, no traceback).
Output to a pipe closed early (``orderflow status ORDER | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from daemon.commands import MODULES, Parser
from daemon.logs import redact
from orchestration.errors import ConfigError, FatalError, RetriableError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="orderflow", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", action="version", version=f"orderflow {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except ConfigError as exc:
        for line in redact(str(exc)).splitlines() or [type(exc).__name__]:
            print(f"orderflow: {line}", file=sys.stderr)
        return 2
    except (FatalError, RetriableError) as exc:
        print(f"orderflow: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader has gone (``| head``): nothing more to say. Point stdout at /dev/null
        # so the flush at exit cannot raise a second time.
        with contextlib.suppress(OSError, ValueError):  # no file: a test's capture
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


def _version() -> str:
    try:
        return version("orderflow")
    except PackageNotFoundError:
        return "unknown (not installed)"
