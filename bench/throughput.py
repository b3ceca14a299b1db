"""Orders settled per second end to end, and the time from activation to first dispatch.

    python -m bench.throughput [--orders 1000,10000]

For each size: a fresh Salesforce emulator and three stub systems answering at once, the
daemon (``orderflow run``, its own process) started first and idle; then the orders
(3 lines each) are activated in one burst (ActivatedDate stamped at insertion) and the
clock runs until every Order shows a settled ``Fulfillment_Status__c``. The rules are the
callouts-only ``bench/callout_rules.yaml`` (the default rules' manual step would measure
an operator, their pauses a timer). The poll interval is 0.5 s and the idle back-off is
capped at 1 s, so the burst is seen at once.

Activation to first dispatch is, per order, from its ActivatedDate to the first audit row
(``task_events``) of one of its callouts going In Progress: with a burst of N orders it
includes the wait behind the orders ahead. Beside it, the raw SQLite insert rate of the
same plan, task and event rows (``bench.engine``'s measure, on the same orders).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench import engine as engine_bench
from bench.common import (
    LocalWorld,
    add_orders,
    load_ruleset,
    machine,
    polled_orders,
    say,
    stop_daemon,
    table,
    wait_until,
)
from daemon import db
from daemon.models import Plan, Task, TaskEvent
from orchestration.states import StepState
from salesforce.emulator.values import parse_datetime

LINES = 3


@dataclass(frozen=True)
class Run:
    orders: int
    tasks: int
    seconds: float
    latencies: list[float]  # activation to first dispatch, seconds, per order
    raw_seconds: float
    raw_rows: int
    settled: bool

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds

    def latency(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(orders: int, workdir: Path, timeout: float = 3600) -> Run:
    with LocalWorld(workdir) as world:
        env = world.env(poll_interval="0.5", sf_poll_max_interval="1")
        with (workdir / "daemon.log").open("wb") as log:
            daemon = world.start_daemon(env, log)
            try:
                alive = lambda: daemon.poll() is None  # noqa: E731
                wait_until(lambda: world.emu.api_calls > 0, 60, alive=alive)
                started = time.monotonic()
                add_orders(world.emu, orders, lines=LINES)
                settled = wait_until(lambda: world.settled() >= orders, timeout, alive=alive)
                seconds = time.monotonic() - started
            finally:
                stop_daemon(daemon)
        activated = {
            r["Id"]: parse_datetime(str(r["ActivatedDate"])) for r in world.emu.records("Order")
        }
        tasks, latencies = _first_dispatches(world.database, activated)
        ruleset = load_ruleset()
        rows = engine_bench.raw_rows(polled_orders(world.emu), ruleset)
        raw_seconds, raw_rows = engine_bench.timed(
            lambda: engine_bench.raw_sqlite(rows, workdir / "raw.db")
        )
    return Run(orders, tasks, seconds, latencies, raw_seconds, raw_rows, settled)


def _first_dispatches(database: Path, activated: dict[str, datetime]) -> tuple[int, list[float]]:
    engine = db.make_engine(f"sqlite:///{database}")
    with db.sessions(engine)() as session:
        tasks = int(session.scalar(select(func.count(Task.id))) or 0)
        first = session.execute(
            select(Plan.order_id, func.min(TaskEvent.at))
            .join(Task, Task.plan_id == Plan.id)
            .join(TaskEvent, TaskEvent.task_id == Task.id)
            .where(Task.system.is_not(None))
            .where(TaskEvent.to_state == StepState.IN_PROGRESS.value)
            .group_by(Plan.order_id)
        ).all()
    engine.dispose()
    latencies = [
        (_aware(at) - activated[order_id]).total_seconds()
        for order_id, at in first
        if order_id in activated and at is not None
    ]
    return tasks, latencies


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def report(runs: list[Run]) -> str:
    rows = [
        (
            r.orders,
            r.tasks,
            r.seconds,
            r.per_second,
            r.tasks / r.seconds,
            r.latency(0.5),
            r.latency(0.99),
            r.raw_rows / r.raw_seconds,
            "yes" if r.settled else "NO",
        )
        for r in runs
    ]
    return "\n".join(
        [
            f"Throughput: orders of {LINES} lines activated in one burst; stubs answering at "
            "once; rules bench/callout_rules.yaml (callouts only, no operator)",
            f"machine: {machine()}",
            "",
            table(
                (
                    "orders",
                    "tasks",
                    "seconds",
                    "orders/s",
                    "tasks/s",
                    "to 1st dispatch p50 s",
                    "p99 s",
                    "raw SQLite tasks/s",
                    "settled",
                ),
                rows,
            ),
            "",
            "raw SQLite: the same plan, task and task_events rows by sqlite3.executemany "
            "(bench.engine), the floor of the store's cost",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", default="1000,10000", help="sizes, comma-separated")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.orders.split(",")]
    except ValueError:
        parser.error(f"--orders: not a list of numbers: {args.orders!r}")
    if any(n < 1 for n in sizes):
        parser.error("--orders: each size must be at least 1")
    runs = []
    with tempfile.TemporaryDirectory(prefix="orderflow-throughput-") as folder:
        for n in sizes:
            say(f"throughput: {n} orders")
            runs.append(measure(n, Path(folder) / str(n)))
    print(report(runs))
    return 0 if all(r.settled for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
