"""``orderflow shadow report``: a shadow run's would-sends against the legacy integrations."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from daemon.commands import Parser, day
from orchestration.errors import ConfigError

HELP = """\
Compares what a shadow run (ORDERFLOW_MODE=shadow) would have sent from --since to --until
(days, both included, UTC) with what the legacy integrations did, per order and system:
matched, different (field by field), missing in Orderflow, extra in Orderflow.

The legacy side of a system: --legacy SYSTEM=FILE.csv (repeatable), a CSV export with a
header naming order_id and action, then any payload fields (nested ones dotted, e.g.
lines.0.quantity), one row per call; only the fields the export has are compared. Without
one, a system that lists its documents is asked for them (presence compared). Legacy CPQ
ids in an export are compared as the standard ids the crosswalk maps them to.
Read-only: nothing is sent or written.

--json keys (stable): since, until, counts {matched, different, missing in Orderflow,
  extra in Orderflow}, uncompared_systems, findings [{order_id, system, action, outcome,
  detail}]
--csv columns: order_id, system, action, outcome, detail

Exit codes: 0 everything matches; 1 differences; 2 bad dates, a bad --legacy argument or a
CSV with bad rows (one line each), bad settings.
"""


def _legacy(text: str) -> tuple[str, Path]:
    system, sep, path = text.partition("=")
    if not sep or not system.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give SYSTEM=FILE.csv")
    return system.strip(), Path(path.strip())


def register(commands: Any) -> None:
    shadow = commands.add_parser("shadow", help="the shadow run: its report")
    sub = shadow.add_subparsers(dest="shadow_command", required=True, parser_class=Parser)
    report = sub.add_parser(
        "report",
        help="what a shadow run would have sent against what the legacy side did",
        description="Compare a shadow run with the legacy integrations, per order and system.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--since", type=day, required=True, help="first day, YYYY-MM-DD")
    report.add_argument("--until", type=day, required=True, help="last day, YYYY-MM-DD")
    report.add_argument("--legacy", type=_legacy, action="append", default=[], metavar="SYS=CSV")
    out = report.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV on stdout")
    out.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from daemon import app, logs
    from daemon.ops import shadow_report as sr
    from daemon.settings import load_settings
    from daemon.store import db

    if args.since > args.until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    settings = load_settings()
    logs.configure("WARNING", fmt=settings.log_format)
    names = app.rules(settings).systems
    exports: dict[str, Path] = dict(args.legacy)
    unknown = sorted(set(exports) - set(names))
    if unknown:
        raise ConfigError(f"--legacy {unknown[0]}: no such system (the rules name {names})")
    legacy = [call for system, path in exports.items() for call in sr.read_export(system, path)]
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    try:
        with db.sessions(engine)() as session:
            ours = sr.would_send(session, args.since, args.until)
            listed = [s for s in {c.system for c in ours} if s not in exports]
            systems = app.systems(settings, listed) if listed else {}
            uncompared = []
            for name in sorted(listed):
                system = systems.get(name)
                if system is not None and getattr(system, "lists_documents", False):
                    documents = system.documents(args.since, args.until)  # type: ignore[attr-defined]
                    legacy += sr.from_documents(name, documents)
                else:
                    uncompared.append(name)
            report = sr.Report(args.since, args.until, uncompared=uncompared)
            report.findings = sr.compare(ours, sr.to_standard(session, legacy))
    finally:
        engine.dispose()
    _print(report, args)
    return 0 if report.clean else 1


def _print(report: Any, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["order_id", "system", "action", "outcome", "detail"])
        for f in report.findings:
            writer.writerow([f.order_id, f.system, f.action, f.outcome, f.detail])
        return
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts().items())
    print(f"shadow report {report.since}..{report.until}: {counts}")
    for f in report.findings:
        if f.outcome != "matched":
            print(
                f"  {f.order_id} {f.system} {f.action}: {f.outcome}"
                + (f" ({f.detail})" if f.detail else "")
            )
    for name in report.uncompared:
        print(f"  {name}: no legacy source (give --legacy {name}=FILE.csv)")
