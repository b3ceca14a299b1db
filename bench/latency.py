"""Activation to first dispatch at idle, and Salesforce calls per idle day: events on, off.

    python -m bench.latency [--orders 12] [--pause 130] [--idle 120] [--speed 10] [--modes cdc,off]

For each mode (``ORDERFLOW_SF_EVENTS=cdc``, then ``off``), ``orderflow run`` runs as its own
process against a fresh emulator (with its Pub/Sub API) and the stubs:

- **Latency.** Once the daemon idles (no poll found anything for a while, so its poll
  interval has grown towards ``ORDERFLOW_SF_POLL_MAX_INTERVAL``), ``--orders`` orders are
  activated one at a time (a draft with a line, then ``Status = Activated``, as a person
  in Salesforce does), each only after the previous one's first callout reached a stub and
  a pause of ``--pause`` to ``--pause`` + 20 s (130 s: long enough for the poll interval to
  grow from 0.5 s back to its 60 s ceiling, so each order is activated at idle). Measured:
  activation to the first effect at any stub.
- **Idle calls.** With nothing to do, the REST calls the daemon makes in ``--idle`` seconds,
  counted by the emulator (token requests excluded), with the cadences fast-forwarded
  ``--speed`` times (``ORDERFLOW_SF_POLL_MAX_INTERVAL`` 60 s / speed,
  ``ORDERFLOW_SF_SAFETY_POLL_INTERVAL`` 600 s / speed): the calls per idle day are the
  count scaled to 86,400 s of fast-forwarded time (``idle * speed`` seconds measured).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    LocalWorld,
    machine,
    order_header,
    order_line,
    say,
    seed_catalogue,
    stop_daemon,
    table,
    wait_until,
)

DAY = 86_400.0
MAX_IDLE = 60.0
SAFETY = 600.0


@dataclass(frozen=True)
class Result:
    mode: str
    latencies: list[float]
    idle_calls: int
    idle_seconds: float
    speed: float

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    @property
    def calls_per_day(self) -> float:
        return self.idle_calls * DAY / (self.idle_seconds * self.speed)


def effects(world: LocalWorld) -> int:
    return sum(world.effects().values())


def activate_one(world: LocalWorld, rng: random.Random) -> float:
    """A draft with a line, activated; seconds from the activation to the first effect."""
    catalogue = seed_catalogue(world.emu)
    order_id = world.emu.insert("Order", order_header(catalogue, rng))
    world.emu.insert("OrderItem", {**order_line(catalogue, "PLAT-PRO"), "OrderId": order_id})
    before = effects(world)
    started = time.monotonic()
    world.emu.update("Order", order_id, {"Status": "Activated"})  # ActivatedDate stamped
    if not wait_until(lambda: effects(world) > before, 300, every=0.01):
        raise RuntimeError(f"order {order_id} not dispatched within 300 s")
    return time.monotonic() - started


def run(mode: str, orders: int, pause: float, idle: float, speed: float, workdir: Path) -> Result:
    rng = random.Random(11)
    with LocalWorld(workdir) as world:
        seed_catalogue(world.emu)
        with (workdir / "daemon.log").open("wb") as log:
            env = world.env(sf_events=mode)
            daemon = world.start_daemon(env, log)
            try:
                time.sleep(MAX_IDLE / 2)  # idle: the poll interval grows
                latencies = []
                for n in range(orders):
                    latencies.append(activate_one(world, rng))
                    say(f"{mode}: order {n + 1}/{orders}: {latencies[-1]:.3f} s")
                    time.sleep(rng.uniform(pause, pause + 20))
            finally:
                stop_daemon(daemon)
            fast = world.env(
                sf_events=mode,
                sf_poll_max_interval=str(MAX_IDLE / speed),
                sf_safety_poll_interval=str(SAFETY / speed),
            )
            daemon = world.start_daemon(fast, log)
            try:
                time.sleep(MAX_IDLE / speed * 2)  # settled into its idle cadence
                before = world.emu.api_calls
                time.sleep(idle)
                calls = world.emu.api_calls - before
            finally:
                stop_daemon(daemon)
    return Result(mode, latencies, calls, idle, speed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=12)
    parser.add_argument("--pause", type=float, default=130.0, help="seconds between orders")
    parser.add_argument("--modes", default="cdc,off", help="ORDERFLOW_SF_EVENTS values")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds measured idle")
    parser.add_argument("--speed", type=float, default=10.0, help="cadence fast-forward")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            workdir = Path(tmp) / mode
            results.append(run(mode, args.orders, args.pause, args.idle, args.speed, workdir))
    say(machine())
    say(
        table(
            ["events", "orders", "p50 s", "p99 s", "max s", "idle calls", "calls/idle day"],
            [
                [
                    r.mode,
                    len(r.latencies),
                    f"{statistics.median(r.latencies):.3f}",
                    f"{r.percentile(0.99):.3f}",
                    f"{max(r.latencies):.3f}",
                    r.idle_calls,
                    f"{r.calls_per_day:,.0f}",
                ]
                for r in results
            ],
        )
    )


if __name__ == "__main__":
    main()
