"""``orderflow remap import|check|lookup``: the legacy CPQ id crosswalk, for a migration lead.

- ``import FILE.csv``: add a crosswalk file, all of it or nothing (every bad row or conflict
  on its own line, exit 2);
- ``check [--csv|--json]``: by legacy object type, the ids polled orders use and how many the
  crosswalk resolves; each unresolved one with the orders it blocks (exit 1 when any;
  exit 2 when no ORDERFLOW_REMAP_* setting says what to check);
- ``lookup ID [--json]``: what an id (15 or 18 characters) or a system's key maps to, and
  where the mapping came from (exit 1 when nothing is known).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from daemon.commands import Parser, spreadsheet


def register(commands: Any) -> None:
    remap = commands.add_parser("remap", help="legacy CPQ ids: crosswalk import, coverage, lookup")
    sub = remap.add_subparsers(dest="remap_command", required=True, parser_class=Parser)
    imp = sub.add_parser("import", help="import a crosswalk CSV file (all rows or none)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--json", action="store_true", help="the result as one JSON object")
    imp.set_defaults(handler=_import)
    check = sub.add_parser("check", help="coverage of the legacy ids polled orders use")
    form = check.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="one row per legacy id, for a spreadsheet")
    form.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    check.set_defaults(handler=_check)
    lookup = sub.add_parser("lookup", help="what an id or a system's key maps to")
    lookup.add_argument("id", help="a Salesforce id (15 or 18 characters) or a system's key")
    lookup.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    lookup.set_defaults(handler=_lookup)


def _sessions(*, configured: bool = False) -> Any:
    """The remap settings and the store; ``configured``: refuse when there are none."""
    from daemon.settings import load_settings
    from daemon.store import db
    from orchestration.errors import ConfigError

    settings = load_settings()
    config = settings.remap_config()
    if configured and not config.enabled:
        # Nothing configured would read as "0 referenced": a clean bill nobody checked.
        raise ConfigError("no ORDERFLOW_REMAP_* settings: nothing to check")
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    return config, db.sessions(engine)


def _import(args: argparse.Namespace) -> int:
    from daemon.app import utcnow
    from daemon.cycle.crosswalk import import_file

    config, sessions = _sessions()
    result = import_file(sessions, args.file, config, utcnow())
    if args.json:
        print(json.dumps({"file": str(args.file), "rows": result.rows, "added": result.added}))
    else:
        print(f"{args.file}: {result.rows} rows, {result.added} new, {result.known} already known")
    return 0


def _check(args: argparse.Namespace) -> int:
    from daemon.cycle.crosswalk import coverage_report

    config, sessions = _sessions(configured=True)
    with sessions() as session:
        report = coverage_report(session, config)
    uses = sorted(report.uses.values(), key=lambda u: (u.legacy_type, u.legacy_id))
    if args.csv:
        out = spreadsheet.Writer(sys.stdout, lineterminator="\n")
        columns = ["legacy_id", "legacy_type", "fields", "resolved", "standard_id"]
        columns += ["standard_type", "source", "orders"]
        out.writerow(columns)
        for use in uses:
            row = use.row()
            out.writerow(
                " ".join(v) if isinstance(v := row[c], list) else "" if v is None else v
                for c in columns
            )
    elif args.json:
        summary = {
            **report.totals(),
            "by_type": report.by_type(),
            "unresolved": [u.row() for u in report.unresolved()],
        }
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        _print_check(report)
    return 1 if report.unresolved() else 0


def _print_check(report: Any) -> None:
    totals = report.totals()
    print(
        f"Legacy ids used by {totals['orders_scanned']} polled orders: "
        f"{totals['referenced']} referenced, {totals['resolved']} resolved, "
        f"{totals['unresolved']} unresolved"
    )
    if report.uses:
        print(f"  {'object type':<26} {'referenced':>10} {'resolved':>9} {'unresolved':>11}")
        for kind, counts in report.by_type().items():
            print(
                f"  {kind:<26} {counts['referenced']:>10} {counts['resolved']:>9} "
                f"{counts['unresolved']:>11}"
            )
    missing = report.unresolved()
    if missing:
        print("Unresolved (each blocks the orders listed):")
    for use in missing:
        orders = ", ".join(sorted(use.orders))
        print(f"  {use.legacy_type} {use.legacy_id} in {', '.join(sorted(use.fields))}: {orders}")


def _lookup(args: argparse.Namespace) -> int:
    from daemon.cycle.crosswalk import find
    from orchestration.errors import ConfigError
    from remap.ids import InvalidId, to18

    _, sessions = _sessions()
    with sessions() as session:
        found = find(session, args.id)
    if found.canonical is None and not found.keys:
        try:
            to18(args.id)
        except InvalidId as exc:
            raise ConfigError(f"{exc}, nor a key any system gave") from None
    if args.json:
        print(json.dumps(_found_json(found), indent=2, sort_keys=True))
        return 1 if found.empty else 0
    head = found.canonical or args.id
    if found.canonical and found.canonical != args.id.strip():
        head += f" (as given: {args.id.strip()})"
    print(head)
    for m in found.as_legacy:
        print(f"  legacy {m.legacy_type} -> {m.standard_type} {m.standard_id}")
        print(f"    from {m.where()}, learned {_when(m.learned_at)}")
    for m in found.as_standard:
        print(f"  {m.standard_type} <- legacy {m.legacy_type} {m.legacy_id}")
        print(f"    from {m.where()}, learned {_when(m.learned_at)}")
    for k in found.keys:
        print(f"  {k.system} {k.kind} key {k.key} for {k.sf_type} {k.sf_id}")
        print(f"    from {k.source.value} {k.origin}, learned {_when(k.learned_at)}")
    if found.empty:
        print("  not in the crosswalk, and no system gave a key for it")
        return 1
    return 0


def _when(value: Any) -> str:
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _found_json(found: Any) -> dict[str, Any]:
    return {
        "query": found.query,
        "id": found.canonical,
        "as_legacy": [m.model_dump(mode="json") for m in found.as_legacy],
        "as_standard": [m.model_dump(mode="json") for m in found.as_standard],
        "external_keys": [k.model_dump(mode="json") for k in found.keys],
    }
