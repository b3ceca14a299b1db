"""The hostile-downstream suite: billing answers every hostile way in turn, the daemon holds.

    python -m reliability.hostile_downstream [--orders 200 --hostile-orders 40 --seed 1]

Next to the good orders flow hostile ones: billing (a stub in hostile mode,
downstream.stub_hostile) answers every other submit of theirs with the next of: a body cut
short of its Content-Length, invalid JSON, an HTML login page with 200,
a 302 to another host, a 204, an 8 MB body, 503 with ``Retry-After`` nan, -1, 1e12 and an
HTTP-date, a connection reset mid-body, a 10 s stall (the client waits 2 s) and a storm of
ten 429s; every other call is answered well. The daemon runs as its own process
(``orderflow run``, its listener on) while all the orders flow. Checks:

- every good order is Completed;
- every call that met one was retried with the answer's reason on its step (a Failed
  step), or fell out with it (a redirect is not followed: Fatally Failed), or, for a 204,
  Completed;
- 0 duplicate effects and 0 payload doubles at every stub;
- the daemon never exits, and ``/healthz`` answers 200 each time it is asked.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from bench.common import LocalWorld, add_orders, machine, say, stop_daemon, table
from daemon.store import db
from daemon.store.models import Task, TaskEvent
from downstream.stub_hostile import Hostile
from orchestration.states import StepState

LINES = 3
TIMEOUT = 2.0  # the daemon's downstream timeout: the stall outlasts it
#: What a step that met each hostile answer must show (any of), in an event's reason.
REASONS = {
    "truncated": ("answer cut off", "cannot connect"),
    "reset": ("answer cut off", "cannot connect"),
    "invalid_json": ("answered invalid JSON",),
    "html": ("answered text/html, not JSON",),
    "redirect": ("not followed",),
    "huge": ("answer larger than",),
    "retry_nan": ("HTTP 503",),
    "retry_negative": ("HTTP 503",),
    "retry_far": ("HTTP 503",),
    "retry_date": ("HTTP 503",),
    "stall": ("no answer within",),
    "storm": ("HTTP 429",),
}


@dataclass
class HostileReport:
    orders: int
    hostile_orders: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    hostile_answers: dict[str, int] = field(default_factory=dict)
    good_orders: int = 0
    good_completed: int = 0
    unaccounted: list[str] = field(default_factory=list)
    duplicates: int = 0
    payload_doubles: int = 0
    exited: int | None = None
    health_checks: int = 0
    health_failures: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.good_completed == self.good_orders > 0
            and not self.unaccounted
            and self.duplicates == self.payload_doubles == 0
            and self.exited is None
            and self.health_checks > 0
            and self.health_failures == 0
        )

    def render(self) -> str:
        rows: list[tuple[Any, ...]] = [
            ("orders (good + hostile)", f"{self.orders} + {self.hostile_orders}", "-"),
            *((f"  {k}", v, "-") for k, v in sorted(self.statuses.items())),
            ("good orders Completed", self.good_completed, self.good_orders),
            *(
                (f"hostile answers: {k}", v, ">= 1")
                for k, v in sorted(self.hostile_answers.items())
            ),
            ("hostile answers not retried nor fallen out with a reason", len(self.unaccounted), 0),
            ("duplicate effects at the stubs", self.duplicates, 0),
            ("payloads received under two keys", self.payload_doubles, 0),
            ("daemon exit code during the run", self.exited, None),
            ("/healthz asked / not 200", f"{self.health_checks} / {self.health_failures}", "- / 0"),
            ("seconds", round(self.seconds, 1), "-"),
        ]
        lines = [
            f"Hostile downstream: {self.orders} good and {self.hostile_orders} hostile orders x "
            f"{LINES} lines; billing answers every other submit of a hostile order with the "
            "next hostile kind",
            f"machine: {machine()}",
            "",
            table(("figure", "got", "expected"), rows),
            "",
            "result: " + ("PASS" if self.ok else "FAIL"),
        ]
        lines += [f"  {p}" for p in (self.unaccounted + self.problems)[:20]]
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    orders: int,
    workdir: Path,
    *,
    hostile_orders: int = 40,
    storm: int = 10,
    seed: int = 1,
    timeout: float = 900,
) -> HostileReport:
    report = HostileReport(orders, hostile_orders)
    started = time.monotonic()
    with LocalWorld(workdir) as world:
        good = add_orders(world.emu, orders, lines=LINES, seed=seed)
        hostile = add_orders(world.emu, hostile_orders, lines=LINES, seed=seed + 1)
        world.stubs["billing"].set_hostile(
            Hostile(every=2, storm=storm, stall_seconds=10.0, orders=frozenset(hostile))
        )
        port = free_port()
        env = world.env(
            downstream_timeout=str(TIMEOUT),
            sf_poll_max_interval="1",
            http_enabled="true",
            http_port=str(port),
        )
        health = f"http://127.0.0.1:{port}/healthz"
        with (workdir / "daemon.log").open("wb") as log:
            daemon = world.start_daemon(env, log)
            deadline = time.monotonic() + timeout
            seen_healthy = False
            try:
                while not _done(world, orders + hostile_orders) and time.monotonic() < deadline:
                    if daemon.poll() is not None:
                        report.exited = daemon.returncode
                        break
                    status = _health(health)
                    seen_healthy = seen_healthy or status == 200
                    if seen_healthy:  # from its first healthy answer on, it stays healthy
                        report.health_checks += 1
                        report.health_failures += status != 200
                    time.sleep(0.5)
            finally:
                stop_daemon(daemon)
        report.seconds = time.monotonic() - started
        _judge(world, set(good), report)
    return report


def _done(world: LocalWorld, orders: int) -> bool:
    """Every order settled, and no step still retrying (an order in Fallout for one step
    may have another waiting for its next try)."""
    if world.settled() < orders:
        return False
    busy = (StepState.READY, StepState.IN_PROGRESS, StepState.FAILED, StepState.ON_HOLD)
    engine = db.make_engine(f"sqlite:///{world.database}")
    try:
        with db.sessions(engine)() as session:
            return not session.scalars(select(Task.id).where(Task.state.in_(busy))).first()
    finally:
        engine.dispose()


def _health(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def _judge(world: LocalWorld, good: set[str], report: HostileReport) -> None:
    statuses = {r["Id"]: str(r.get("Fulfillment_Status__c")) for r in world.emu.records("Order")}
    report.statuses = dict(Counter(statuses.values()))
    met = world.stubs["billing"].hostile_log
    report.hostile_answers = dict(Counter(kind for kind, _step, _key in met))
    report.good_orders = len(good)
    report.good_completed = sum(statuses.get(order) == "Completed" for order in good)
    stats = [stub.stats() for stub in world.stubs.values()]
    report.duplicates = sum(int(s["duplicates"]) for s in stats)
    report.payload_doubles = sum(int(s["payload_doubles"]) for s in stats)
    engine = db.make_engine(f"sqlite:///{world.database}")
    with db.sessions(engine)() as session:
        for kind, step, key in met:
            task = session.scalars(select(Task).where(Task.idempotency_key == key)).first()
            if task is None:
                report.unaccounted.append(f"{kind}: no task for {step}")
                continue
            reasons = session.scalars(select(TaskEvent.reason).where(TaskEvent.task_id == task.id))
            if kind == "no_content":
                shown = task.state == StepState.COMPLETED
            else:
                shown = any(any(r in reason for r in REASONS[kind]) for reason in reasons)
            settled = task.state in (StepState.COMPLETED, StepState.FATALLY_FAILED)
            if not (shown and settled):
                report.unaccounted.append(f"{kind}: {step} is {task.state}: {task.message}")
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--hostile-orders", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.orders < 1 or args.hostile_orders < 1:
        parser.error("--orders and --hostile-orders must be at least 1")
    say(f"hostile downstream: {args.orders} good and {args.hostile_orders} hostile orders")
    with tempfile.TemporaryDirectory(prefix="orderflow-hostile-") as folder:
        report = run(args.orders, Path(folder), hostile_orders=args.hostile_orders, seed=args.seed)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
