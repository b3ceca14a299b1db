"""``orderflow demo``: the real daemon against a local Salesforce org and stub systems.

The emulator and the stubs run in this process; the daemon runs as its own process
(``orderflow run``), configured only through ``ORDERFLOW_*`` variables, as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from daemon import db, store
from downstream.stubs import StubSystem
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org

SETTLED = frozenset({"Completed", "Fallout", "Cancelled", "Superseded"})
SYSTEMS = ("erp", "billing", "provisioning")
CLIENT_ID, CLIENT_SECRET = "orderflow-demo", "demo-secret"


def demo_environment(emu: Emulator, stubs: dict[str, StubSystem], workdir: Path) -> dict[str, str]:
    """The daemon's settings for the local world, as an operator would set them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env.update(
        {
            "ORDERFLOW_SF_LOGIN_URL": emu.url,
            "ORDERFLOW_SF_CLIENT_ID": CLIENT_ID,
            "ORDERFLOW_SF_CLIENT_SECRET": CLIENT_SECRET,
            "ORDERFLOW_SF_CA_BUNDLE": str(emu.ca_file),
            "ORDERFLOW_SF_POLL_SETTLE": "0",
            "ORDERFLOW_DATABASE_URL": f"sqlite:///{workdir / 'orderflow.db'}",
            "ORDERFLOW_POLL_INTERVAL": "0.5",
        }
    )
    for name, stub in stubs.items():
        env[f"ORDERFLOW_{name.upper()}_URL"] = stub.url
        if stub.token:
            env[f"ORDERFLOW_{name.upper()}_TOKEN"] = stub.token
    return env


def run_demo(orders: int, *, as_json: bool, workdir: Path, timeout: float) -> int:
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    emu = Emulator(workdir / "salesforce")
    emu.start()
    seed_demo_org(emu, orders=orders)
    stubs = {name: StubSystem(name, token=f"demo-{name}-token") for name in SYSTEMS}
    for stub in stubs.values():
        stub.start()
    log_path = workdir / "daemon.log"
    _say(as_json, f"Salesforce emulator at {emu.url} with {orders} activated orders")
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            env=demo_environment(emu, stubs, workdir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            settled = _wait(emu, daemon, orders, timeout, quiet=as_json)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
    summary = _summary(emu, stubs, workdir, time.monotonic() - started)
    for stub in stubs.values():
        stub.stop()
    emu.stop()
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(summary)
    if not settled:
        print(f"orderflow: not every order settled; daemon log: {log_path}", file=sys.stderr)
        return 1
    return 0


def _wait(
    emu: Emulator, daemon: subprocess.Popen[bytes], orders: int, timeout: float, *, quiet: bool
) -> bool:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        statuses = Counter(r.get("Fulfillment_Status__c") for r in emu.records("Order"))
        done = sum(n for s, n in statuses.items() if s in SETTLED)
        line = f"settled {done}/{orders}: " + ", ".join(
            f"{s or 'not seen'} {n}" for s, n in sorted(statuses.items(), key=lambda i: str(i[0]))
        )
        if line != last:
            _say(quiet, line)
            last = line
        if done >= orders:
            return True
        if daemon.poll() is not None:
            _say(quiet, f"the daemon exited with code {daemon.returncode}")
            return False
        time.sleep(0.25)
    return False


def _summary(
    emu: Emulator, stubs: dict[str, StubSystem], workdir: Path, elapsed: float
) -> dict[str, Any]:
    engine = db.make_engine(f"sqlite:///{workdir / 'orderflow.db'}")
    with db.sessions(engine)() as session:
        counts = store.counts(session)
    engine.dispose()
    tasks_by_state: Counter[str] = Counter()
    for states in counts["tasks_by_system"].values():
        tasks_by_state.update(states)
    orders = Counter(str(r.get("Fulfillment_Status__c")) for r in emu.records("Order"))
    stats = {name: stub.stats() for name, stub in stubs.items()}
    return {
        "orders_total": sum(orders.values()),
        "orders_by_status": dict(orders),
        "tasks_by_state": dict(tasks_by_state),
        "tasks_by_system": counts["tasks_by_system"],
        "salesforce_api_calls": emu.api_calls,
        "downstream_effects": {n: s["effects"] for n, s in stats.items()},
        "downstream_requests": {n: s["requests"] for n, s in stats.items()},
        "duplicate_effects": sum(s["duplicates"] for s in stats.values()),
        "elapsed_seconds": round(elapsed, 2),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"\nOrders: {summary['orders_total']}")
    for status, n in sorted(summary["orders_by_status"].items()):
        print(f"  {status:<14} {n:>6}")
    print("Tasks by system and state:")
    for system, states in sorted(summary["tasks_by_system"].items()):
        print(f"  {system:<14} " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    print(f"Salesforce API calls: {summary['salesforce_api_calls']}")
    effects = summary["downstream_effects"]
    print("Downstream effects:   " + ", ".join(f"{k} {v}" for k, v in sorted(effects.items())))
    print(f"Duplicate effects:    {summary['duplicate_effects']}")
    print(f"Elapsed:              {summary['elapsed_seconds']} s")


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)
