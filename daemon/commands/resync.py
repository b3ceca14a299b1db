"""``orderflow resync --since DATE --until DATE``: re-read a date range from Salesforce."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from daemon.commands import day
from daemon.ops.resync import FIELDS, OBJECTS, ResyncReport, ResyncSpec, check, objects_with

HELP = """\
Re-reads the Orders (with their lines) and Invoices (with their lines) whose --field falls
on a day of the range (both days included, UTC) and takes them in as a poll does: a record
Orderflow holds unchanged changes nothing; a new one is planned; a changed one is handled
as a change; a deleted one is cancelled or flagged. Only plans are made: the running
daemon sends them, with the same idempotency keys, so a resync never sends anything twice.
--dry-run reads the same and reports the same, and writes nothing to the store.

--field: SystemModstamp (default), EffectiveDate, ActivatedDate. An Invoice's EffectiveDate
is its InvoiceDate; Invoices have no ActivatedDate (with it, only Orders are read).
--objects: Order,Invoice (default: every object that has --field).

--json keys (stable): since, until, field, dry_run,
  objects: {Order|Invoice: {read, unchanged, new, changed, reorchestrated, deleted, planned,
            waiting, would_send: {system: callouts}}},
  total: the same keys summed.
  (new: not held before; changed: held with other content; reorchestrated: changed and
  its plan revised; planned: plans made; waiting: not taken, their lines could not all be
  read (logged; resync again); would_send: callouts of the plans made or revised, not sent
  yet)

Exit codes: 0 done; 1 Salesforce or the store failed; 2 bad dates (not YYYY-MM-DD, --since
after --until, a range starting after today), unknown --field or --objects, bad settings.
"""


def _objects(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in OBJECTS]
    if unknown or not names:
        what = f"unknown object {unknown[0]!r}" if unknown else "no object named"
        raise argparse.ArgumentTypeError(f"{what}: choose from {','.join(OBJECTS)}")
    return tuple(dict.fromkeys(names))


def register(commands: Any) -> None:
    resync = commands.add_parser(
        "resync",
        help="re-read a date range from Salesforce and plan what the poll missed",
        description="Re-read the Orders and Invoices of a date range and take them in again.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    resync.add_argument("--since", type=day, required=True, help="first day, YYYY-MM-DD")
    resync.add_argument("--until", type=day, required=True, help="last day, YYYY-MM-DD")
    resync.add_argument("--field", choices=FIELDS, default="SystemModstamp")
    resync.add_argument("--objects", type=_objects, help="comma-separated: Order,Invoice")
    resync.add_argument("--dry-run", action="store_true", help="report only; write nothing")
    resync.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    resync.set_defaults(handler=_resync)


def _resync(args: argparse.Namespace) -> int:
    from daemon import app, logs
    from daemon.ops.resync import resync
    from daemon.settings import load_settings

    spec = ResyncSpec(
        since=args.since,
        until=args.until,
        field=args.field,
        objects=args.objects or objects_with(args.field),
        dry_run=args.dry_run,
    )
    check(spec, datetime.now(UTC).date())  # before any setting is read: bad input first
    settings = load_settings()
    logs.configure("WARNING", fmt=settings.log_format)  # the report is on stdout
    ctx = app.context(settings)
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        report = resync(ctx, spec, progress=bar)
    finally:
        if bar is not None:
            bar.close()
        ctx.sessions.kw["bind"].dispose()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(report)))
    return 0


def summary_lines(report: ResyncReport) -> list[str]:
    """The report for people: a line per object, and what the daemon will send."""
    spec = report.spec
    head = f"resync {spec.since}..{spec.until} by {spec.field}"
    lines = [head + (" (dry run: nothing written)" if spec.dry_run else "")]
    for obj, t in report.objects.items():
        lines.append(
            f"  {obj}: {t.read} read, {t.unchanged} unchanged, {t.new} new, "
            f"{t.changed} changed ({t.reorchestrated} re-orchestrated), {t.deleted} deleted, "
            f"{t.planned} plans made"
            + (f", {t.waiting} waiting (lines not all read: resync again)" if t.waiting else "")
        )
    sends = report.total().would_send
    verb = "would send" if spec.dry_run else "to send (by the daemon)"
    if sends:
        listed = ", ".join(f"{n} to {system}" for system, n in sorted(sends.items()))
        lines.append(f"  {verb}: {listed}")
    else:
        lines.append(f"  {verb}: nothing")
    return lines


class ProgressBar:
    """A one-line bar redrawn in place (``\\r``) on a terminal: object, share, counts."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str = "resync") -> None:
        self.stream = stream
        self.label = label
        self.drawn = False
        self.current = ""

    def __call__(self, obj: str, done: int, total: int) -> None:
        if self.drawn and obj != self.current:
            self.stream.write("\n")  # the finished object's bar stays on screen
        self.current = obj
        share = done / total if total else 1.0
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} {obj:<8} [{bar}] {done}/{total} {share:4.0%}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
