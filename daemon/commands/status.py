"""``orderflow status [ORDER]``: what is in flight, or one order's plan as a tree."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon import logs
from daemon.commands.colour import paint
from daemon.settings import load_settings
from daemon.store.models import Plan, Task
from orchestration.errors import ConfigError
from orchestration.states import NEEDS_OPERATOR, PlanState, StepKind, StepState

RECENT_ERRORS = 10

HELP = """\
Without ORDER: everything in flight. With ORDER (an order number, or a 15- or 18-character
Order id): that order's plan as a tree, each step under the step it waits for.

--json keys (stable), everything in flight:
  orders_by_status          {fulfillment status: count}  (Orders only)
  invoices_by_status        {status: count}  (posted Invoices transferred to the ERP)
  tasks_by_system           {system ("internal" when none): {state: count}}
  orders_in_flight          plans Not Started or In Progress
  fallout_tasks             steps in Fatally Failed (waiting for an operator)
  manual_tasks              manual steps waiting for an operator
  recent_writeback_errors   [{order_id, order_number, error, updated_at}], newest first
  flagged_orders            [{order, order_id, flag, acknowledged: {actor, reason, at} or
                             null}]: a change refused past the point of no return, an
                             Order deleted in flight... ('orderflow flag ack ORDER')
  salesforce                {budget: {api_calls_used, api_calls_left, reserve_calls,
                             under_reserve, poll_interval_seconds, projected_calls_per_day,
                             ...} or null, writeback_refused, writeback_refused_recent,
                             writeback_retrying, flagged_orders}
  cutover                   {cutover, adopted_at, adopted_plans, history} (orderflow cutover)
  events                    {mode, connected, last_event_at, events_taken,
                             events_without_query, gaps_polled, topics: {topic: {connected,
                             last_event_at, replay_id (hex), error, drops}}, updated_at} or
                             null: the change event stream (ORDERFLOW_SF_EVENTS) as the
                             daemon last saved it; null when it polls only
one order:
  order_id, order_number, account_id, account_name (null where Salesforce gave none),
  status, state, progress, revision, rules_version,
  written_status, writeback_error, flag, flag_acknowledged, updated_at,
  steps: [{step_id, title, kind, system, action, state, depends_on, parent, depth,
           not_before, next_attempt_at, attempts, message, external_ref, updated_at}]
  (steps in tree order; parent is the dependency a step is drawn under; times ISO 8601 UTC)

Exit codes: 0 shown; 2 no such order in the store, or bad settings.
"""


def register(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="what is in flight, or one order's plan",
        description="What is in flight, or one order's plan as a tree.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("order", nargs="?", metavar="ORDER", help="order number or Order id")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from daemon.store import db

    settings = load_settings()
    logs.configure(settings.log_level, fmt=settings.log_format)
    engine = db.open_existing(settings.database_url)
    with db.sessions(engine)() as session:
        if args.order:
            summary = order_plan(session, args.order)
            lines = _plan_lines(summary)
        else:
            summary = in_flight(session)
            lines = _overview_lines(summary)
    engine.dispose()
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print("\n".join(lines))
    return 0


def in_flight(session: Session) -> dict[str, Any]:
    """Counts of everything in the store, and the latest writeback errors."""
    from daemon import store

    summary = store.counts(session)
    summary["orders_in_flight"] = session.scalar(
        select(func.count())
        .select_from(Plan)
        .where(Plan.state.in_([PlanState.NOT_STARTED, PlanState.IN_PROGRESS]))
        .where(Plan.kind == "order")
    )
    summary["fallout_tasks"] = session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.state.in_([s.value for s in NEEDS_OPERATOR]))
    )
    summary["manual_tasks"] = session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.kind == StepKind.MANUAL.value)
        .where(Task.state.in_([StepState.READY.value, StepState.IN_PROGRESS.value]))
    )
    failed = session.scalars(
        select(Plan)
        .where(Plan.writeback_error.is_not(None))
        .order_by(Plan.updated_at.desc(), Plan.id.desc())
        .limit(RECENT_ERRORS)
    )
    summary["recent_writeback_errors"] = [
        {
            "order_id": p.order_id,
            "order_number": p.order_number,
            "error": p.writeback_error,
            "updated_at": _iso(p.updated_at),
        }
        for p in failed
    ]
    from daemon.commands.cutover import describe
    from daemon.cycle.org_state import salesforce_status
    from daemon.store.flags import flagged_orders

    summary["flagged_orders"] = flagged_orders(session)
    summary["salesforce"] = salesforce_status(session)
    summary["cutover"] = describe(session)
    from daemon.service.subscription import saved_state

    summary["events"] = saved_state(session)
    return summary


def find_plan(session: Session, ref: str) -> Plan:
    plan = session.scalars(
        select(Plan)
        .where(
            (Plan.order_number == ref)
            | (Plan.order_id == ref)
            | ((func.length(ref) == 15) & (func.substr(Plan.order_id, 1, 15) == ref))
        )
        .order_by(Plan.id)
        .limit(1)
    ).first()
    if plan is None:
        raise ConfigError(f"no order {ref!r} in the store (give an order number or Order id)")
    return plan


def order_plan(session: Session, ref: str) -> dict[str, Any]:
    """One order's plan, its live steps in tree order."""
    from daemon.store.accounts import account_names
    from daemon.store.flags import acknowledgement, flag_text

    plan = find_plan(session, ref)
    return {
        "order_id": plan.order_id,
        "order_number": plan.order_number,
        "account_id": plan.account_id,
        "account_name": account_names(session, [plan.order_id]).get(plan.order_id),
        "status": plan.status,
        "state": plan.state,
        "progress": plan.progress,
        "revision": plan.revision,
        "rules_version": plan.rules_version,
        "written_status": plan.written_status,
        "writeback_error": plan.writeback_error,
        "flag": flag_text(plan) or None,
        "flag_acknowledged": acknowledgement(session, plan),
        "updated_at": _iso(plan.updated_at),
        "steps": _tree([t for t in plan.tasks if t.revision == plan.revision]),
    }


def _tree(tasks: list[Task]) -> list[dict[str, Any]]:
    """Steps depth first, each under the dependency it waits for longest (its parent)."""
    by_id = {t.step_id: t for t in tasks}
    level: dict[str, int] = {}

    def rank(step_id: str, seen: frozenset[str] = frozenset()) -> int:
        # The longest chain of dependencies above a step (a cycle cannot pass validation,
        # but a broken row must not hang the command).
        if step_id not in level:
            deps = [d for d in by_id[step_id].depends_on if d in by_id and d not in seen]
            level[step_id] = 1 + max((rank(d, seen | {step_id}) for d in deps), default=-1)
        return level[step_id]

    parent: dict[str, str | None] = {}
    children: dict[str | None, list[Task]] = {}
    for task in tasks:
        deps = [d for d in task.depends_on if d in by_id]
        up = max(deps, key=lambda d: (rank(d), by_id[d].id)) if deps else None
        parent[task.step_id] = up
        children.setdefault(up, []).append(task)
    out: list[dict[str, Any]] = []

    def walk(up: str | None, depth: int) -> None:
        for task in sorted(children.get(up, []), key=lambda t: t.id):
            out.append(_step(task, parent[task.step_id], depth))
            walk(task.step_id, depth + 1)

    walk(None, 0)
    return out


def _step(task: Task, parent: str | None, depth: int) -> dict[str, Any]:
    return {
        "step_id": task.step_id,
        "title": task.title,
        "kind": task.kind,
        "system": task.system,
        "action": task.action,
        "state": task.state,
        "depends_on": list(task.depends_on),
        "parent": parent,
        "depth": depth,
        "not_before": _iso(task.not_before),
        "next_attempt_at": _iso(task.next_attempt_at),
        "attempts": task.attempts,
        "message": task.message,
        "external_ref": task.external_ref,
        "updated_at": _iso(task.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _overview_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"orders in flight: {summary['orders_in_flight']}", "orders by status:"]
    for status, n in sorted(summary["orders_by_status"].items()):
        lines.append(f"  {paint(f'{status:<16}', status)} {n:>7}")
    if not summary["orders_by_status"]:
        lines.append("  none")
    lines.append("invoices to the ERP by status:")
    for status, n in sorted(summary["invoices_by_status"].items()):
        lines.append(f"  {paint(f'{status:<16}', status)} {n:>7}")
    if not summary["invoices_by_status"]:
        lines.append("  none")
    lines.append("tasks by system and state:")
    for system, states in sorted(summary["tasks_by_system"].items()):
        lines.append(
            f"  {system:<16} " + ", ".join(f"{paint(s)} {n}" for s, n in sorted(states.items()))
        )
    if not summary["tasks_by_system"]:
        lines.append("  none")
    lines.append(f"fallout tasks (waiting for an operator): {summary['fallout_tasks']}")
    lines.append(f"manual tasks waiting: {summary['manual_tasks']}")
    flagged = summary["flagged_orders"]
    lines.append(f"flagged orders (a person must decide): {len(flagged) or 'none'}")
    for item in flagged:
        seen = _acknowledged(item["acknowledged"])
        lines.append(f"  {paint('Flagged')} {item['order']}: {item['flag']}{seen}")
    errors = summary["recent_writeback_errors"]
    lines.append(f"recent writeback errors: {len(errors) or 'none'}")
    for e in errors:
        lines.append(f"  {e['updated_at']}  {e['order_number']} ({e['order_id']}): {e['error']}")
    from daemon.cycle.org_state import status_lines

    lines.extend(status_lines(summary["salesforce"]))
    from daemon.commands.cutover import lines as cutover_lines

    lines.extend(cutover_lines(summary["cutover"])[:1])
    from daemon.service.subscription import status_line

    lines.append(status_line(summary["events"]))
    return lines


def _acknowledged(ack: dict[str, Any] | None) -> str:
    return f" (acknowledged by {ack['actor']}: {ack['reason']})" if ack else ""


def _account(summary: dict[str, Any]) -> str:
    """The Account's name with its id, or the id alone where Salesforce gave no name."""
    name, account_id = summary["account_name"], summary["account_id"] or "none"
    return f"{name} ({account_id})" if name else account_id


def _plan_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"order {summary['order_number']} ({summary['order_id']}): {paint(summary['status'])}, "
        f"{summary['progress']}% done, plan revision {summary['revision']}, "
        f"rules {summary['rules_version']}",
        f"account: {_account(summary)}",
        f"Salesforce shows: {summary['written_status'] or 'nothing yet'}"
        + (
            f" (writeback error: {summary['writeback_error']})"
            if summary["writeback_error"]
            else ""
        ),
    ]
    if summary["flag"]:
        seen = _acknowledged(summary["flag_acknowledged"])
        lines.append(f"{paint('Flagged')}: {summary['flag']}{seen}")
    lines.append("steps:")
    for step in summary["steps"]:
        where = step["system"] or step["kind"]
        facts = [paint(step["state"]), where, f"attempts {step['attempts']}"]
        if step["not_before"]:
            facts.append(f"not before {step['not_before']}")
        if step["next_attempt_at"]:
            facts.append(f"retry at {step['next_attempt_at']}")
        others = [d for d in step["depends_on"] if d != step["parent"]]
        if others:
            facts.append("also after " + ", ".join(others))
        line = "  " + "   " * step["depth"] + f"{step['step_id']}: " + ", ".join(facts)
        if step["message"]:
            line += f" ({step['message']})"
        lines.append(line)
    return lines
