"""``orderflow jeopardy``: the steps At Risk or Late now, worst first, with their due times."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from daemon import logs
from daemon.commands.colour import paint
from daemon.settings import load_settings

HELP = """\
Every open step is assessed against its SLA at this moment (what the daemon's next sweep
will write to Salesforce). Late steps first, the longest overdue first; then At Risk ones,
the soonest due first.

--json keys (stable):
  now        the moment assessed (ISO 8601 UTC)
  counts     {"At Risk": n, "Late": n}
  steps      [{order, order_id, task_id, step, title, system, state, jeopardy, due_at,
               seconds_late}]  (seconds_late < 0: seconds left before the due time)

Exit codes: 0 listed (even when some are late); 2 bad settings.
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "jeopardy",
        help="steps At Risk or Late now, worst first",
        description="The steps At Risk or Late now, worst first, with their due times.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.set_defaults(handler=_jeopardy)


def _jeopardy(args: argparse.Namespace) -> int:
    from daemon.app import utcnow
    from daemon.cycle.jeopardy import at_risk_now
    from daemon.store import db

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    engine = db.open_existing(settings.database_url)
    now = utcnow()
    with db.sessions(engine)() as session:
        steps = at_risk_now(session, now)
    engine.dispose()
    summary = report(steps, now)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print("\n".join(lines(summary)))
    return 0


def report(steps: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    counts = {"At Risk": 0, "Late": 0}
    for step in steps:
        counts[step["jeopardy"]] += 1
    return {"now": now.isoformat(), "counts": counts, "steps": steps}


def lines(summary: dict[str, Any]) -> list[str]:
    counts = summary["counts"]
    out = [f"{counts['Late']} late, {counts['At Risk']} at risk"]
    if not summary["steps"]:
        out.append("no step is at risk or late")
    for step in summary["steps"]:
        due = datetime.fromisoformat(step["due_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        late = step["seconds_late"]
        when = f"{_span(late)} late" if late >= 0 else f"{_span(-late)} left"
        word = paint(f"{step['jeopardy']:<8}", step["jeopardy"])
        out.append(
            f"{word} {step['order']:<12} {step['title']} [{step['state']}] due {due} ({when})"
        )
    return out


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
