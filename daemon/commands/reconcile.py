"""``orderflow reconcile --since DATE --until DATE [--csv]``: Salesforce against the systems."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from daemon.commands import day, spreadsheet
from orchestration.errors import ConfigError

HELP = """\
Compares, for invoices dated and orders effective in the range (inclusive): posted invoices
without an ERP document, ERP documents with no invoice, activated Orders never planned,
Orders whose status in Salesforce (the configured field) is not Orderflow's, completed steps
missing at their system (step_without_effect, every system), documents a system lists that
no step made (document_without_plan), and amounts or quantities that differ between a
system's document and the Salesforce lines. Read-only: nothing is written anywhere.

--csv columns (--json: {"differences": [{column: value}]}): kind, system, salesforce_id,
salesforce_number, reference, detail
Exit codes: 0 everything matches; 1 differences listed; 2 bad dates or settings.
"""


def register(commands: Any) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        help="compare Salesforce with the downstream systems (read-only)",
        description="Compare what Salesforce holds with what the systems hold, for a range.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reconcile.add_argument("--since", type=day, required=True, help="first day, YYYY-MM-DD")
    reconcile.add_argument("--until", type=day, required=True, help="last day, YYYY-MM-DD")
    form = reconcile.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="CSV on stdout, for a spreadsheet")
    form.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    reconcile.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from daemon import app, logs
    from daemon.ops.reconcile import Difference, reconcile
    from daemon.settings import load_settings
    from daemon.store import db

    if args.since > args.until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    settings = load_settings()
    logs.configure("WARNING")
    engine = db.open_existing(settings.database_url)
    systems = app.systems(settings, app.rules(settings).systems)
    with db.sessions(engine)() as session:
        gateway = app.salesforce(settings)
        found = reconcile(
            gateway,
            systems,
            session,
            args.since,
            args.until,
            invoices=app.invoices_enabled(settings, gateway),
            fields=settings.status_fields(),
        )
    if args.json:
        rows = [dict(zip(Difference.FIELDS, d.row(), strict=True)) for d in found]
        print(json.dumps({"differences": rows}, indent=2))
    elif args.csv:
        writer = spreadsheet.Writer(sys.stdout)
        writer.writerow(Difference.FIELDS)
        writer.writerows(d.row() for d in found)
    else:
        for d in found:
            ref = f" [{d.reference}]" if d.reference else ""
            print(
                f"{d.kind}: {d.system or '-'} {d.salesforce_number or d.salesforce_id}{ref}: "
                f"{d.detail}"
            )
        print(f"{len(found)} differences from {args.since} to {args.until}", file=sys.stderr)
    return 1 if found else 0
