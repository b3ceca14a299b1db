"""Salesforce API calls per 1,000 orders: Orderflow beside the point-to-point baseline.

    python -m bench.api_economy [--orders 1000] [--interval 0.5]

The same orders (3 lines each: a subscription and two add-ons) are taken through their
whole life twice, each time in a fresh Salesforce emulator that counts every REST call:

- by Orderflow (``orderflow run`` as its own process, the callouts-only rules of
  ``bench/callout_rules.yaml``: one ERP sales order per order, each line billed then
  provisioned), until every Order shows a settled ``Fulfillment_Status__c``;
- by the point-to-point baseline (:mod:`bench.baseline`): three integrations polling the
  Orders and their lines and writing their own status back per record, until every Order
  is Completed for all three.

Both poll every ``--interval`` seconds. The stubs answer at once; only Salesforce calls
are counted (token requests are not).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from simple_salesforce.api import Salesforce

from bench.baseline.integration import COMPLETED, SPECS, Integration, deploy_fields
from bench.common import LocalWorld, add_orders, machine, say, stop_daemon, table, wait_until
from daemon.http import make_session

LINES = 3


@dataclass(frozen=True)
class Result:
    approach: str
    orders: int
    calls: int
    calls_by_kind: dict[str, int]
    seconds: float
    settled: bool

    @property
    def per_thousand(self) -> float:
        return self.calls * 1000 / self.orders


def run_orderflow(orders: int, interval: float, workdir: Path, timeout: float) -> Result:
    with LocalWorld(workdir) as world:
        add_orders(world.emu, orders, lines=LINES)
        before, kinds = world.emu.api_calls, world.emu.calls_by_kind
        started = time.monotonic()
        with (workdir / "daemon.log").open("wb") as log:
            daemon = world.start_daemon(world.env(poll_interval=str(interval)), log)
            try:
                settled = wait_until(
                    lambda: world.settled() >= orders,
                    timeout,
                    alive=lambda: daemon.poll() is None,
                )
            finally:
                stop_daemon(daemon)
        seconds = time.monotonic() - started
        return Result(
            "orderflow",
            orders,
            world.emu.api_calls - before,
            _spent(kinds, world.emu.calls_by_kind),
            seconds,
            settled,
        )


def run_baseline(orders: int, interval: float, workdir: Path, timeout: float) -> Result:
    with LocalWorld(workdir) as world:
        emu = world.emu
        deploy_fields(emu)
        add_orders(emu, orders, lines=LINES)
        integrations = [
            Integration(
                spec,
                Salesforce(
                    instance_url=emu.url,
                    session_id=emu.issue_session(),
                    session=make_session(emu.ca_file),
                    version=emu.api_version,
                ),
                world.stubs[spec.system].url,
                str(world.stubs[spec.system].token),
            )
            for spec in SPECS
        ]
        before, kinds = emu.api_calls, emu.calls_by_kind
        stop = threading.Event()
        threads = [
            threading.Thread(target=i.run, args=(interval, stop), name=f"p2p-{i.spec.system}")
            for i in integrations
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()

        def done() -> bool:
            return all(
                all(r.get(spec.field) == COMPLETED for spec in SPECS) for r in emu.records("Order")
            )

        try:
            settled = wait_until(done, timeout)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        seconds = time.monotonic() - started
        return Result(
            "point-to-point (3 integrations)",
            orders,
            emu.api_calls - before,
            _spent(kinds, emu.calls_by_kind),
            seconds,
            settled,
        )


def _spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def compare(
    orders: int, interval: float = 0.5, workdir: Path | None = None, timeout: float = 1800
) -> tuple[Result, Result]:
    """(baseline, orderflow) for the same ``orders``."""
    with tempfile.TemporaryDirectory(prefix="orderflow-api-") as folder:
        root = workdir or Path(folder)
        say(f"point-to-point baseline: {orders} orders")
        baseline = run_baseline(orders, interval, root / "baseline", timeout)
        say(f"orderflow: {orders} orders")
        orderflow = run_orderflow(orders, interval, root / "orderflow", timeout)
    return baseline, orderflow


def report(baseline: Result, orderflow: Result, interval: float) -> str:
    rows = [
        (
            r.approach,
            r.calls,
            round(r.per_thousand),
            r.seconds,
            ", ".join(f"{k} {v}" for k, v in sorted(r.calls_by_kind.items())),
            "yes" if r.settled else "NO",
        )
        for r in (baseline, orderflow)
    ]
    ratio = baseline.calls / max(orderflow.calls, 1)
    return "\n".join(
        [
            f"API economy: {baseline.orders} orders x {LINES} lines, poll interval "
            f"{interval:g} s, Salesforce emulator counting every REST call",
            f"machine: {machine()}",
            "",
            table(
                ("approach", "API calls", "per 1,000 orders", "seconds", "by kind", "settled"),
                rows,
            ),
            "",
            f"ratio: the baseline makes {ratio:,.1f} x the calls Orderflow makes",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.5, help="poll interval (s)")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.interval <= 0:
        parser.error("--orders must be at least 1 and --interval more than 0")
    baseline, orderflow = compare(args.orders, args.interval)
    print(report(baseline, orderflow, args.interval))
    return 0 if baseline.settled and orderflow.settled else 1


if __name__ == "__main__":
    raise SystemExit(main())
