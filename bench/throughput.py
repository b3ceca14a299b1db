"""Callouts per second against a bare client's, orders settled per second, activation to
first dispatch, peak memory.

    python -m bench.throughput [--orders 1000,10000] [--latency 0,0.1,0.05-0.5]
                               [--concurrency 8]

For each size and stub latency (seconds before each answer: 0 answers at once, ``0.05-0.5``
draws each from the range): a fresh Salesforce emulator and three stub systems, the
daemon (``orderflow run``, its own process) started first and idle (its change event
streams open); then the orders (3 lines each, made as drafts) are activated in one burst,
a thousand to a transaction (ActivatedDate stamped then), and the clock runs until every
Order shows a settled ``Fulfillment_Status__c``. The rules are the
callouts-only ``bench/callout_rules.yaml`` (the default rules' manual step would measure
an operator, their pauses a timer). The poll interval is 0.5 s and the idle back-off is
capped at 1 s, so the burst is seen at once.

Activation to first dispatch is, per order, from its ActivatedDate to the first audit row
(``task_events``) of one of its callouts going In Progress: with a burst of N orders it
includes the wait behind the orders ahead. Beside it, the raw SQLite insert rate of the
same plan, task and event rows (``bench.engine``'s measure, on the same orders).

Callouts per second are the callouts over the dispatch window (the first callout In
Progress to the last one answered). In the same run, the bare client (bench.bare_client:
``requests.Session`` keep-alive, the same concurrency per system, the same stubs, the same
calls per system, no dependencies) gives the ceiling; Orderflow's rate is shown as a share
of it. With slow stubs each system's rate over its own window is also shown against its
limit, ``concurrency / mean latency``. Peak RSS is the daemon's (``VmHWM``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench import bare_client
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
from daemon.ops.demo import SYSTEMS
from daemon.store import db
from daemon.store.models import Plan, Task, TaskEvent
from orchestration.states import StepState
from salesforce.emulator.values import parse_datetime

LINES = 3
#: The action each system's callouts take in bench/callout_rules.yaml (the bare client's).
ACTIONS = {"erp": "sales-orders", "billing": "subscriptions", "provisioning": "activations"}


@dataclass(frozen=True)
class Run:
    orders: int
    tasks: int
    seconds: float
    latencies: list[float]  # activation to first dispatch, seconds, per order
    raw_seconds: float
    raw_rows: int
    settled: bool
    stub_latency: tuple[float, float] = (0.0, 0.0)
    concurrency: int = 8
    callout_seconds: float = float("nan")  # the dispatch window
    bare_seconds: float = float("nan")  # the bare client, the same calls
    #: Per system: (callouts, seconds of its own dispatch window).
    systems: dict[str, tuple[int, float]] = field(default_factory=dict)
    peak_rss_mb: float = float("nan")

    @property
    def callouts_per_second(self) -> float:
        return self.tasks / self.callout_seconds

    @property
    def bare_per_second(self) -> float:
        return self.tasks / self.bare_seconds

    def limit_shares(self) -> str:
        """Each system's calls/s over its window against concurrency / mean latency."""
        mean = sum(self.stub_latency) / 2
        if not mean:
            return "-"
        limit = self.concurrency / mean
        return " / ".join(f"{n / s / limit:.0%}" for n, s in self.systems.values() if s > 0)

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds

    def latency(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    orders: int,
    workdir: Path,
    timeout: float = 3600,
    *,
    latency: tuple[float, float] = (0.0, 0.0),
    concurrency: int = 8,
) -> Run:
    options = {name: {"latency": latency} for name in SYSTEMS}
    with LocalWorld(workdir, stub_options=options) as world:
        env = world.env(
            poll_interval="0.5", sf_poll_max_interval="1", dispatch_concurrency=str(concurrency)
        )
        with (workdir / "daemon.log").open("wb") as log:
            daemon = world.start_daemon(env, log)
            try:
                alive = lambda: daemon.poll() is None  # noqa: E731
                # Idle: its first poll done and its change event streams open, so the
                # burst reaches it as an org's activations do, as events.
                if not wait_until(world.streams_open, 120, alive=alive):
                    raise RuntimeError("the daemon's change event streams did not open")
                started = time.monotonic()
                add_orders(world.emu, orders, lines=LINES)
                settled = wait_until(lambda: world.settled() >= orders, timeout, alive=alive)
                seconds = time.monotonic() - started
                rss = peak_rss_mb(daemon.pid)
            finally:
                stop_daemon(daemon)
        activated = {
            r["Id"]: parse_datetime(str(r["ActivatedDate"])) for r in world.emu.records("Order")
        }
        tasks, latencies = _first_dispatches(world.database, activated)
        systems = _windows(world.database)
        window = _window(world.database)
        targets = [
            bare_client.Target(stub.url, str(stub.token), ACTIONS[name], systems[name][0])
            for name, stub in world.stubs.items()
            if name in systems
        ]
        bare_seconds = bare_client.measure(targets, concurrency)
        ruleset = load_ruleset()
        rows = engine_bench.raw_rows(polled_orders(world.emu), ruleset)
        raw_seconds, raw_rows = engine_bench.timed(
            lambda: engine_bench.raw_sqlite(rows, workdir / "raw.db")
        )
    return Run(
        orders,
        tasks,
        seconds,
        latencies,
        raw_seconds,
        raw_rows,
        settled,
        stub_latency=latency,
        concurrency=concurrency,
        callout_seconds=window,
        bare_seconds=bare_seconds,
        systems=systems,
        peak_rss_mb=rss,
    )


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (Linux ``VmHWM``), in MiB; NaN if unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _window(database: Path, system: str | None = None) -> float:
    """Seconds from the first callout In Progress to the last one answered completed."""
    engine = db.make_engine(f"sqlite:///{database}")
    callouts = Task.system.is_not(None) if system is None else Task.system == system
    with db.sessions(engine)() as session:
        first, last = session.execute(
            select(
                func.min(TaskEvent.at).filter(TaskEvent.to_state == StepState.IN_PROGRESS.value),
                func.max(TaskEvent.at).filter(TaskEvent.to_state == StepState.COMPLETED.value),
            )
            .join(Task, Task.id == TaskEvent.task_id)
            .where(callouts)
        ).one()
    engine.dispose()
    if first is None or last is None:
        return float("nan")
    return (_aware(last) - _aware(first)).total_seconds()


def _windows(database: Path) -> dict[str, tuple[int, float]]:
    """Per system: its callouts and the seconds of its own dispatch window."""
    engine = db.make_engine(f"sqlite:///{database}")
    with db.sessions(engine)() as session:
        counts = session.execute(
            select(Task.system, func.count(Task.id))
            .where(Task.system.is_not(None))
            .group_by(Task.system)
        ).all()
    engine.dispose()
    return {str(name): (int(n), _window(database, str(name))) for name, n in sorted(counts)}


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
            _latency_text(r.stub_latency),
            r.tasks,
            r.seconds,
            r.per_second,
            r.callouts_per_second,
            r.bare_per_second,
            f"{r.callouts_per_second / r.bare_per_second:.0%}",
            r.limit_shares(),
            r.latency(0.5),
            r.latency(0.99),
            r.peak_rss_mb,
            r.raw_rows / r.raw_seconds,
            "yes" if r.settled else "NO",
        )
        for r in runs
    ]
    concurrency = ", ".join(sorted({str(r.concurrency) for r in runs}))
    return "\n".join(
        [
            f"Throughput: orders of {LINES} lines activated in one burst; rules "
            "bench/callout_rules.yaml (callouts only, no operator); concurrency "
            f"{concurrency} per system",
            f"machine: {machine()}",
            "",
            table(
                (
                    "orders",
                    "stub latency s",
                    "callouts",
                    "seconds",
                    "orders/s",
                    "callouts/s",
                    "bare client calls/s",
                    "share of bare",
                    "erp / billing / provisioning of limit",
                    "to 1st dispatch p50 s",
                    "p99 s",
                    "peak RSS MiB",
                    "raw SQLite tasks/s",
                    "settled",
                ),
                rows,
            ),
            "",
            "seconds, orders/s: activation burst to every Order settled in Salesforce; "
            "callouts/s: over the dispatch window (first callout sent to last answered)",
            "bare client: requests.Session keep-alive, the same calls per system and "
            "concurrency, the same stubs, no dependencies (bench.bare_client)",
            "of limit: each system's calls/s over its own window / (concurrency / mean latency)",
            "raw SQLite: the same plan, task and task_events rows by sqlite3.executemany "
            "(bench.engine), the floor of the store's cost",
        ]
    )


def _latency_text(latency: tuple[float, float]) -> str:
    low, high = latency
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def parse_latencies(text: str) -> list[tuple[float, float]]:
    """``0,0.1,0.05-0.5`` -> [(0, 0), (0.1, 0.1), (0.05, 0.5)]; ValueError if malformed."""
    latencies = []
    for item in text.split(","):
        low, _, high = item.strip().partition("-")
        pair = (float(low), float(high or low))
        if not 0 <= pair[0] <= pair[1]:
            raise ValueError(item)
        latencies.append(pair)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument(
        "--latency",
        default="0",
        help="stub latencies in seconds, comma-separated; LOW-HIGH draws from a range",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="calls at once per system")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.orders.split(",")]
    except ValueError:
        parser.error(f"--orders: not a list of numbers: {args.orders!r}")
    if any(n < 1 for n in sizes):
        parser.error("--orders: each size must be at least 1")
    try:
        latencies = parse_latencies(args.latency)
    except ValueError:
        parser.error(f"--latency: not a list of seconds or LOW-HIGH ranges: {args.latency!r}")
    if not 1 <= args.concurrency <= 256:
        parser.error("--concurrency: between 1 and 256")
    runs = []
    with tempfile.TemporaryDirectory(prefix="orderflow-throughput-") as folder:
        for n in sizes:
            for latency in latencies:
                say(f"throughput: {n} orders, stubs answering after {_latency_text(latency)} s")
                workdir = Path(folder) / f"{n}-{_latency_text(latency)}"
                runs.append(measure(n, workdir, latency=latency, concurrency=args.concurrency))
    print(report(runs))
    return 0 if all(r.settled for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
