"""Salesforce API calls of the default-rules demo over its orders' whole life (issue 19,
item 5: at most 60 for 1,000 orders, every status and jeopardy change still written).

    python -m bench.demo_calls [--orders 1000] [--aim 60]

Runs ``orderflow demo --orders N --json`` (the emulator, the stubs, the operator and the
daemon as its own process, the default rules with the demo's short SLAs) and prints its
calls by kind beside the aim; exits 1 when the demo did not settle or spent more than the
aim. Several minutes and both cores at 1,000 orders: not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine, say, table


def run(orders: int, workdir: Path, timeout: float) -> tuple[int, dict[str, Any]]:
    """The demo's exit code and its JSON summary."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "demo",
            "--orders",
            str(orders),
            "--json",
            "--workdir",
            str(workdir),
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, json.loads(lines[-1]) if lines else {}


def report(orders: int, summary: dict[str, Any], aim: int) -> str:
    kinds = summary.get("salesforce_calls_by_kind") or {}
    calls = int(summary.get("salesforce_api_calls") or 0)
    rows = [
        (
            orders,
            calls,
            aim,
            "yes" if calls <= aim else "NO",
            ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
            summary.get("jeopardy_seen", {}),
            summary.get("elapsed_seconds"),
        )
    ]
    return "\n".join(
        [
            "Salesforce API calls of the default-rules demo, whole life",
            f"machine: {machine()}",
            "",
            table(("orders", "calls", "aim", "met", "by kind", "jeopardy seen", "seconds"), rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--aim", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="orderflow-demo-calls-") as folder:
        say(f"demo: {args.orders} orders, default rules")
        code, summary = run(args.orders, Path(folder) / "demo", args.timeout)
    if not summary:
        print(f"the demo printed no summary (exit {code})")
        return 1
    print(report(args.orders, summary, args.aim))
    return 0 if code == 0 and summary["salesforce_api_calls"] <= args.aim else 1


if __name__ == "__main__":
    raise SystemExit(main())
