"""The crash suite: the daemon SIGKILLed at random moments and restarted, nothing lost.

    python -m reliability.crash [--orders 2000 --kills 100 --seed 1]

The orders (3 lines each) are activated in waves while the daemon runs, so every kill
lands on work in flight: polling, planning, a dispatch between send and commit, a status
poll, a writeback, or the start-up itself. Each kill comes at a random moment (0.2-3 s
after the daemon started, from a seeded generator); the daemon is restarted at once. After
the last kill it runs until every order is settled. Then:

- every Order shows Completed in Salesforce;
- the stubs report 0 duplicate effects and 0 payload doubles (the same payload under two
  keys), and exactly one effect per expected step;
- no step is lost: each order has a plan holding every step the rules make of it, each in
  a final state.
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    LocalWorld,
    add_orders,
    audit_steps,
    load_ruleset,
    machine,
    polled_orders,
    say,
    stop_daemon,
    table,
    wait_until,
)

LINES = 3
#: Some latency and an asynchronous provisioning, so kills catch calls in flight.
STUBS: dict[str, dict[str, Any]] = {
    "erp": {"latency": (0.0, 0.01)},
    "billing": {"latency": (0.0, 0.01)},
    "provisioning": {"latency": (0.0, 0.01), "completion": "status", "complete_after": 0.3},
}


@dataclass
class CrashReport:
    orders: int
    kills: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    payload_doubles: int = 0
    effects: dict[str, int] = field(default_factory=dict)
    expected_effects: dict[str, int] = field(default_factory=dict)
    replays: int = 0
    missing_plans: int = 0
    missing_steps: int = 0
    unfinished_steps: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return self.statuses.get("Completed", 0)

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.orders
            and self.duplicates == 0
            and self.payload_doubles == 0
            and self.effects == self.expected_effects
            and self.missing_plans + self.missing_steps + self.unfinished_steps == 0
        )

    def render(self) -> str:
        rows = [
            ("orders", self.orders, self.orders),
            ("orders Completed", self.completed, self.orders),
            ("SIGKILLs (each followed by a restart)", self.kills, self.kills),
            ("duplicate effects at the stubs", self.duplicates, 0),
            ("payloads received under two keys", self.payload_doubles, 0),
            *(
                (f"effects at {name}", self.effects.get(name, 0), n)
                for name, n in sorted(self.expected_effects.items())
            ),
            ("orders without a plan", self.missing_plans, 0),
            ("expected steps missing", self.missing_steps, 0),
            ("steps not in a final state", self.unfinished_steps, 0),
            ("resends answered from the ledger (replays)", self.replays, "-"),
            ("seconds", round(self.seconds, 1), "-"),
        ]
        lines = [
            f"Crash suite: {self.orders} orders x {LINES} lines, SIGKILL at {self.kills} "
            "random moments, restarted each time",
            f"machine: {machine()}",
            "",
            table(("figure", "got", "expected"), rows),
            "",
            "result: " + ("PASS" if self.ok else "FAIL"),
        ]
        lines += [f"  {p}" for p in self.problems[:20]]
        return "\n".join(lines)


def run(
    orders: int, kills: int, workdir: Path, *, seed: int = 1, timeout: float = 1800
) -> CrashReport:
    rng = random.Random(seed)
    report = CrashReport(orders)
    waves = max(1, min(kills, 20))
    sizes = [orders // waves + (1 if i < orders % waves else 0) for i in range(waves)]
    started = time.monotonic()
    with LocalWorld(workdir, STUBS) as world:
        env = world.env(provisioning_status_poll_interval="0.5", sf_poll_max_interval="1")
        with (workdir / "daemon.log").open("wb") as log:
            for kill in range(kills):
                wave = kill * waves // max(kills, 1)
                if kill == 0 or wave != (kill - 1) * waves // max(kills, 1):
                    add_orders(world.emu, sizes[wave], lines=LINES, seed=seed * 1000 + wave)
                daemon = world.start_daemon(env, log)
                time.sleep(rng.uniform(0.2, 3.0))
                if daemon.poll() is not None:
                    report.problems.append(f"the daemon exited by itself: {daemon.returncode}")
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                report.kills += 1
                if kill % 10 == 9:
                    say(f"crash: {report.kills} kills, {world.settled()}/{orders} settled")
            if kills == 0:
                add_orders(world.emu, orders, lines=LINES, seed=seed * 1000)
            daemon = world.start_daemon(env, log)
            try:
                wait_until(
                    lambda: world.settled() >= orders,
                    timeout,
                    alive=lambda: daemon.poll() is None,
                    every=0.5,
                )
                # Provisioning answers later: let the last status polls land.
            finally:
                stop_daemon(daemon)
        report.seconds = time.monotonic() - started
        report.statuses = dict(world.statuses())
        stats = {name: stub.stats() for name, stub in world.stubs.items()}
        report.duplicates = sum(int(s["duplicates"]) for s in stats.values())
        report.payload_doubles = sum(int(s["payload_doubles"]) for s in stats.values())
        report.replays = sum(int(s["replays"]) for s in stats.values())
        report.effects = {name: int(s["effects"]) for name, s in stats.items()}
        lines = len(world.emu.records("OrderItem"))
        report.expected_effects = {"erp": orders, "billing": lines, "provisioning": lines}
        audit = audit_steps(world.database, polled_orders(world.emu), load_ruleset())
        report.missing_plans = audit.orders_without_plan
        report.missing_steps = audit.missing_steps
        report.unfinished_steps = audit.unfinished_steps
        report.problems += audit.problems
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.orders < 1 or args.kills < 0:
        parser.error("--orders must be at least 1 and --kills at least 0")
    with tempfile.TemporaryDirectory(prefix="orderflow-crash-") as folder:
        report = run(args.orders, args.kills, Path(folder), seed=args.seed)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
