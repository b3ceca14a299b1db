"""``orderflow cutover [--at DATETIME [--force]]``: the cut-over, set or shown."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from daemon.commands import login_name
from daemon.commands.shadow import _legacy

HELP = """\
Orders activated before the cut-over (ORDERFLOW_CUTOVER_FIELD, ActivatedDate by default)
were fulfilled by the legacy integrations: Orderflow adopts them (every step Completed by
actor "cutover", nothing sent, nothing written to Salesforce unless
ORDERFLOW_CUTOVER_WRITEBACK=true) and sends only what comes after.

--at stores the cut-over (an ISO-8601 UTC datetime, not in the future) and adopts the
history before it, page by page (a progress bar on a terminal; a kill is resumed by the
next `orderflow cutover` or `orderflow run`). Changing a stored cut-over needs --force and
is audited; orders planned already stay as they are. Without --at: the cut-over and every
change of it.

--go-live switches from a shadow run (ORDERFLOW_MODE=shadow) to live, as a start with
ORDERFLOW_MODE=live does by itself: each order the shadow run planned is adopted when the
legacy side fulfilled it (a --legacy SYSTEM=FILE.csv export, as for `orderflow shadow
report`, or the documents a system lists, name it; or a system it would call has no
legacy source at all), else its steps are sent, each exactly once. The cut-over moves to
now. Set ORDERFLOW_MODE=live (and stop the legacy integrations) first.

--json keys (stable): cutover (ISO time or null), adopted_at (null: adoption not finished),
  adopted_plans, history: [{at, set_at, actor, reason}]

Exit codes: 0 done; 1 Salesforce or the store failed; 2 a bad or future datetime, a change
without --force, ORDERFLOW_CUTOVER_AT saying otherwise, --go-live without a cut-over or a
shadow run, a legacy CSV with bad rows, bad settings.
"""


def _datetime(text: str) -> datetime:
    from daemon.store.cutover import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: Any) -> None:
    cutover = commands.add_parser(
        "cutover",
        help="set or show the cut-over: orders before it are adopted, never sent",
        description="Set or show the cut-over; adopt the orders before it.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cutover.add_argument("--at", type=_datetime, metavar="DATETIME", help="e.g. 2026-11-30T00:00Z")
    cutover.add_argument("--force", action="store_true", help="change a stored cut-over")
    cutover.add_argument(
        "--go-live", action="store_true", help="switch from a shadow run to live (see below)"
    )
    cutover.add_argument(
        "--legacy",
        type=_legacy,
        action="append",
        default=[],
        metavar="SYS=CSV",
        help="with --go-live: what a legacy system did (as for orderflow shadow report)",
    )
    cutover.add_argument("--actor", default=None, help="who (default: the login name)")
    cutover.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    cutover.set_defaults(handler=_cutover)


def _cutover(args: argparse.Namespace) -> int:
    from daemon import app, logs
    from daemon.commands.run import adopt_history
    from daemon.settings import load_settings
    from daemon.store import db
    from daemon.store.cutover import iso, set_cutover
    from orchestration.errors import ConfigError

    if args.go_live and args.at is not None:
        raise ConfigError("--go-live moves the cut-over to now: give it without --at")
    settings = load_settings()
    logs.configure("WARNING", fmt=settings.log_format)  # the answer is on stdout
    if args.go_live:
        _go_live(args, settings)
    elif args.at is not None:
        if settings.cutover_at is not None and settings.cutover_at != args.at:
            raise ConfigError(
                f"setting ORDERFLOW_CUTOVER_AT says {iso(settings.cutover_at)}: set it to "
                f"{iso(args.at)} or unset it first"
            )
        engine = app.database(settings)
        try:
            with db.sessions(engine).begin() as session:
                actor = args.actor or login_name()
                set_cutover(session, args.at, datetime.now(UTC), actor=actor, force=args.force)
        finally:
            engine.dispose()
        ctx = app.context(settings)
        try:
            adopt_history(ctx)
        finally:
            ctx.sessions.kw["bind"].dispose()
    engine = app.database(settings)
    try:
        with db.sessions(engine)() as session:
            shown = describe(session)
    finally:
        engine.dispose()
    print(json.dumps(shown, indent=2, sort_keys=True) if args.json else "\n".join(lines(shown)))
    return 0


def describe(session: Any) -> dict[str, Any]:
    """The cut-over as ``--json`` shows it (``orderflow status`` and ``doctor`` too)."""
    from daemon.store.cutover import adopted_count, current, history, iso

    row = current(session)
    return {
        "cutover": None if row is None else iso(row.at),
        "adopted_at": None if row is None or row.adopted_at is None else iso(row.adopted_at),
        "adopted_plans": adopted_count(session),
        "history": [
            {"at": iso(r.at), "set_at": iso(r.set_at), "actor": r.actor, "reason": r.reason}
            for r in history(session)
        ],
    }


def lines(shown: dict[str, Any]) -> list[str]:
    if shown["cutover"] is None:
        return ["no cut-over set (orderflow cutover --at DATETIME)"]
    adopted = shown["adopted_at"] or "not finished (resumed by the next start)"
    out = [
        f"cut-over {shown['cutover']}; history adopted: {adopted}; "
        f"{shown['adopted_plans']} adopted plans"
    ]
    for h in shown["history"]:
        out.append(f"  {h['set_at']}  {h['reason']} to {h['at']} by {h['actor']}")
    return out


def _go_live(args: argparse.Namespace, settings: Any) -> None:
    from daemon import app
    from daemon.ops import golive

    ctx = app.context(settings)
    try:
        legacy, sourced = golive.evidence(ctx, dict(args.legacy))
        done = golive.switch(ctx, legacy, sourced, actor=args.actor or login_name())
    finally:
        ctx.sessions.kw["bind"].dispose()
    print(
        f"live: {done.adopted} orders fulfilled by the legacy side adopted, {done.to_send} to send"
    )
