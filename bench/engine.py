"""How fast orders are decomposed and planned, beside SQLite's raw insert rate.

    python -m bench.engine [--orders 10000]

Three figures for the same orders (1-5 lines each, the default rules):
- decomposition alone, in memory (rules -> plan steps, pure);
- decomposition plus persisting each plan through the store (SQLAlchemy, a real SQLite file,
  the schema made by the migrations, a commit every 500 orders as the poller commits pages);
- the same plan, task and task-event rows inserted with plain ``sqlite3.executemany`` into
  the same schema: the floor the store could approach.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon import store
from daemon.app import POLLED_FIELDS
from daemon.settings import DEFAULT_RULES
from daemon.store import db
from orchestration.auto import REGISTRY
from orchestration.decompose import PlannedStep, decompose, idempotency_key
from orchestration.records import Order
from orchestration.rules import RuleSet, load_rules

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PRODUCTS = [
    ("PLAT-ENT", "Subscription"),
    ("PLAT-PRO", "Subscription"),
    ("PLAT-STD", "Subscription"),
    ("ADD-SSO", "License"),
    ("ADD-AUDIT", "License"),
    ("SEATS-EXTRA", "License"),
    ("PS-ONBOARD", "Services"),
    ("PS-TRAIN", "Services"),
]
BATCH = 500


def make_orders(count: int, seed: int = 7) -> list[Order]:
    """``count`` orders as the poller would read them: one subscription and 0-4 extras."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        picks = [rng.choice(PRODUCTS[:3]), *rng.sample(PRODUCTS[3:], rng.randrange(0, 5))]
        lines = [
            {
                "Id": f"802{n:09d}{i:03d}AAA",
                "Product2Id": f"01t{PRODUCTS.index((code, family)):012d}AAA",
                "Quantity": float(rng.choice((1, 2, 5, 10))),
                "UnitPrice": 1200.0,
                "ServiceDate": "2026-12-01",
                "EndDate": "2027-11-30",
                "Product2": {"ProductCode": code, "Family": family, "Name": code},
            }
            for i, (code, family) in enumerate(picks)
        ]
        record = {
            "Id": f"801{n:012d}AAA",
            "OrderNumber": f"{n:08d}",
            "AccountId": "001000000000001AAA",
            "Status": "Activated",
            "EffectiveDate": "2026-12-01",
            "SystemModstamp": "2026-11-27T10:00:00.000+0000",
            "OrderItems": {"records": lines},
        }
        orders.append(Order.from_record(record))
    return orders


def timed(work: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = work()
    return time.perf_counter() - started, rows


def in_memory(orders: list[Order], ruleset: RuleSet) -> int:
    return sum(len(decompose(order, ruleset)) for order in orders)


def through_store(orders: list[Order], ruleset: RuleSet, path: Path) -> int:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    sessions = db.sessions(engine)
    tasks = 0
    for start in range(0, len(orders), BATCH):
        with sessions.begin() as session:
            for order in orders[start : start + BATCH]:
                steps = decompose(order, ruleset)
                store.create_plan(session, order, steps, ruleset, NOW)
                tasks += len(steps)
    engine.dispose()
    return tasks


def raw_rows(
    orders: list[Order], ruleset: RuleSet
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows the store writes for these plans, ready for executemany (made untimed)."""
    plans, tasks, events = [], [], []
    stamp = NOW.replace(tzinfo=None).isoformat(sep=" ")
    task_id = 0
    for plan_id, order in enumerate(orders, start=1):
        plans.append(
            (
                plan_id,
                order.id,
                order.number,
                order.fields.get("AccountId"),
                1,
                ruleset.version,
                ruleset.digest,
                "Not Started",
                "Not Started",
                0,
                stamp,
                stamp,
            )
        )
        for step in decompose(order, ruleset):
            task_id += 1
            tasks.append(_task_row(task_id, plan_id, order, step, stamp))
            events.append((task_id, stamp, None, step.state.value, "planned", "orderflow"))
    return plans, tasks, events


def _task_row(
    task_id: int, plan_id: int, order: Order, step: PlannedStep, stamp: str
) -> tuple[Any, ...]:
    definition = json.dumps(step.policy.model_dump(mode="json")) if step.policy else None
    return (
        task_id,
        plan_id,
        1,
        step.step_id,
        step.rule,
        step.key,
        step.kind.value,
        step.system,
        step.action,
        step.title[:255],
        step.line_id,
        json.dumps(list(step.depends_on)),
        json.dumps(step.payload),
        step.ponr,
        step.line_action.value if step.line_action else None,
        definition,
        step.state.value,
        idempotency_key(order.id, step.step_id, 1),
        0,
        step.message,
        stamp,
        stamp,
    )


def raw_sqlite(rows: tuple[list[Any], list[Any], list[Any]], path: Path) -> int:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)  # the same schema and indexes
    engine.dispose()
    plans, tasks, events = rows
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    per_batch = max(1, len(tasks) * BATCH // max(len(plans), 1))
    with connection:
        connection.executemany(
            "INSERT INTO plans (id, order_id, order_number, account_id, revision, rules_version,"
            " rules_digest, state, status, progress, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            plans,
        )
    for start in range(0, len(tasks), per_batch):
        with connection:
            connection.executemany(
                "INSERT INTO tasks (id, plan_id, revision, step_id, rule, key, kind, system,"
                " action, title, line_id, depends_on, payload, ponr, line_action, definition,"
                " state, idempotency_key, attempts, message, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                tasks[start : start + per_batch],
            )
            connection.executemany(
                "INSERT INTO task_events (task_id, at, from_state, to_state, reason, actor)"
                " VALUES (?,?,?,?,?,?)",
                events[start : start + per_batch],
            )
    connection.close()
    return len(tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args()
    ruleset = load_rules(DEFAULT_RULES, POLLED_FIELDS, REGISTRY)
    orders = make_orders(args.orders)
    results = []
    with tempfile.TemporaryDirectory(prefix="orderflow-bench-") as folder:
        seconds, tasks = timed(lambda: in_memory(orders, ruleset))
        results.append(("decompose (in memory)", seconds, tasks))
        seconds, tasks = timed(lambda: through_store(orders, ruleset, Path(folder) / "store.db"))
        results.append(("decompose + store (SQLite)", seconds, tasks))
        rows = raw_rows(orders, ruleset)
        seconds, tasks = timed(lambda: raw_sqlite(rows, Path(folder) / "raw.db"))
        results.append(("raw sqlite3 executemany", seconds, tasks))
    print(f"{args.orders} orders, {results[0][2]} tasks, rules {ruleset.version}")
    print(f"{'stage':<28} {'seconds':>8} {'orders/s':>10} {'tasks/s':>10}")
    for name, seconds, tasks in results:
        print(f"{name:<28} {seconds:>8.2f} {args.orders / seconds:>10.0f} {tasks / seconds:>10.0f}")


if __name__ == "__main__":
    main()
