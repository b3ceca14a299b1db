"""``orderflow doctor``: is everything Orderflow needs there? A pass/fail list."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.commands.checks import Check, fail, guard
from daemon.commands.colour import paint
from daemon.commands.doctor_salesforce import salesforce_checks
from orchestration.errors import OrderflowError

HELP = """\
Checks, in order: settings; the rules file and the systems it needs; the database (connects,
schema at the newest migration); Salesforce (login, API budget, whether Invoices are read,
and with describe, as the integration user sees the org, each object and field this
configuration reads or writes: ORDERFLOW_SF_*_FIELDS, ORDERFLOW_SF_WRITEBACK_FIELDS, Invoice
when enabled, the values written into each picklist); each downstream system (an HTTP
request to its base URL: any HTTP answer means reachable). A check whose prerequisite
failed is skipped. Each field with a problem is a FAIL line of its own.

--json keys (stable):
  ok       true when no check failed
  checks   [{name, status ("pass", "fail" or "skip"), detail}]
check names: settings, rules, database, cutover,
  salesforce.login, salesforce.api_budget,
  salesforce.invoices, salesforce.events (the Pub/Sub subscription: fails only with
  ORDERFLOW_SF_EVENTS=cdc), salesforce.describe.<Object> (one per object, when all is well),
  salesforce.describe.<Object>.<Field> (one per problem), downstream.<system>

Exit codes: 0 every check passed; 1 a check failed.
"""


def register(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check settings, database, Salesforce and downstream systems",
        description="Check everything Orderflow needs; a pass/fail list.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    doctor.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    logs.configure("ERROR")  # the list is the output; passing noise would only hide it
    checks = run_checks()
    ok = all(c.status != "fail" for c in checks)
    if args.json:
        found = [{**asdict(c), "detail": logs.redact(c.detail)} for c in checks]
        print(json.dumps({"ok": ok, "checks": found}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            word = paint(f"{c.status.upper():<4}", c.status)
            print(f"{word}  {c.name:<{width}}  {logs.redact(c.detail)}")
        failed = sum(c.status == "fail" for c in checks)
        print(f"{failed} of {len(checks)} checks failed" if failed else "all checks passed")
    sys.stdout.flush()
    return 0 if ok else 1


def run_checks() -> list[Check]:
    """Every check, in order; one that cannot run for want of another is skipped."""
    from daemon.settings import load_settings

    checks: list[Check] = []
    try:
        settings = load_settings()
    except OrderflowError as exc:
        checks.append(fail("settings", exc))
        for name in ("rules", "database", "salesforce.login", "downstream"):
            checks.append(Check(name, "skip", "needs valid settings"))
        return checks
    checks.append(Check("settings", "pass", "every ORDERFLOW_* setting is valid"))
    checks.append(guard("rules", lambda: _rules(settings)))
    checks.append(guard("database", lambda: _database(settings)))
    if checks[-1].status == "pass":
        checks.append(guard("cutover", lambda: _cutover(settings)))
    else:
        checks.append(Check("cutover", "skip", "needs the database"))
    checks.extend(salesforce_checks(settings))
    checks.extend(_downstream(settings))
    return checks


def _rules(settings: Any) -> str:
    from daemon.app import rules

    ruleset = rules(settings)
    missing = [s for s in ruleset.systems if s not in settings.system_urls()]
    if missing:
        raise OrderflowError(
            f"the rules send tasks to {missing[0]!r}; set ORDERFLOW_{missing[0].upper()}_URL"
        )
    return f"{settings.rules_file.name} version {ruleset.version}"


def _database(settings: Any) -> str:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from daemon.store import db

    engine = db.make_engine(settings.database_url)
    try:
        name = engine.url.database
        on_disk = engine.dialect.name == "sqlite" and name and name != ":memory:"
        if on_disk and not Path(str(name)).is_file():
            raise OrderflowError(f"no database file {name} ('orderflow db upgrade' makes it)")
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS))
        heads = set(ScriptDirectory.from_config(config).get_heads())
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    if current != heads:
        at = ", ".join(sorted(current)) or "no schema"
        raise OrderflowError(
            f"schema at {at}, this version needs {', '.join(sorted(heads))} "
            "(run 'orderflow db upgrade')"
        )
    return f"{engine.url.render_as_string(hide_password=True)} at migration {', '.join(heads)}"


def _cutover(settings: Any) -> str:
    from daemon.store import cutover, db

    engine = db.make_engine(settings.database_url)
    try:
        with db.sessions(engine)() as session:
            row = cutover.current(session)
            empty = cutover.store_empty(session)
    finally:
        engine.dispose()
    if row is not None:
        adopted = "history adopted" if row.adopted_at else "adoption not finished"
        return f"{cutover.iso(row.at)} (set by {row.actor}; {adopted})"
    if settings.cutover_at is not None:
        return f"{cutover.iso(settings.cutover_at)} from ORDERFLOW_CUTOVER_AT, stored at start"
    if empty:
        raise OrderflowError(cutover.NO_CUTOVER)
    return "none set; the store already holds orders, so starts are allowed"


def _downstream(settings: Any) -> list[Check]:
    import requests

    from daemon.http import make_session

    http = make_session(settings.downstream_ca_bundle)
    timeout = min(settings.downstream_timeout, 10.0)
    checks = []
    for name, (url, _token) in sorted(settings.system_urls().items()):
        try:
            answer = http.get(url, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            reason = type(exc).__name__
            checks.append(Check(f"downstream.{name}", "fail", f"{url} unreachable: {reason}"))
            continue
        checks.append(
            Check(f"downstream.{name}", "pass", f"{url} answered HTTP {answer.status_code}")
        )
    return checks
