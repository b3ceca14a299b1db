"""Throughput end to end: orders settled per second by 1, 2 and 3 instances on PostgreSQL,
beside one instance on SQLite.

    python -m bench.scale [--orders 2000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each run is a fresh world: the Salesforce emulator seeded with ``--orders`` activated
orders, the three stub systems answering at once, and ``orderflow run`` started as that
many processes on a fresh database (PostgreSQL: a new ``orderflow_bench_*`` database,
dropped after). The clock starts when the processes are started and stops when every
Order in the emulator shows a settled Fulfillment_Status__c; an operator thread completes
the manual steps as in the demo. Figures, never assertions: the machine decides them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from daemon.ops.demo import SETTLED, SYSTEMS, act_as_operator, demo_environment
from daemon.store import db
from downstream.stubs import StubSystem
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Faster than the defaults, so a takeover or a fallback poll costs little of the run.
FAST = {
    "ORDERFLOW_POLL_INTERVAL": "0.2",
    # The emulator commits at once: no late commit to reach back ten minutes for.
    "ORDERFLOW_SF_POLL_OVERLAP": "2",
    "ORDERFLOW_HEARTBEAT_INTERVAL": "0.5",
    "ORDERFLOW_INSTANCE_DEAD_AFTER": "3",
    "ORDERFLOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    "ORDERFLOW_HTTP_PORT": "0",
}


@dataclass
class Result:
    label: str
    instances: int
    orders: int
    seconds: float
    duplicates: int

    @property
    def rate(self) -> float:
        return self.orders / self.seconds


@contextlib.contextmanager
def pg_database(admin_url: str, prefix: str = "orderflow_bench") -> Iterator[str]:
    """A new database on the server of ``admin_url``, dropped after."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def operate(url: str, stop: threading.Event) -> None:
    """The demo's operator: complete manual steps every quarter second."""
    engine = db.make_engine(url)
    sessions = db.sessions(engine)
    while not stop.wait(0.25):
        with contextlib.suppress(OperationalError):
            act_as_operator(sessions, datetime.now(UTC))
    engine.dispose()


def settled(emu: Emulator) -> int:
    statuses = Counter(r.get("Fulfillment_Status__c") for r in emu.records("Order"))
    return sum(n for status, n in statuses.items() if status in SETTLED)


def run(label: str, url: str, instances: int, orders: int, timeout: float) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-scale-"))
    emu = Emulator(workdir / "salesforce")
    emu.start()
    seed_demo_org(emu, orders=orders)
    stubs = {name: StubSystem(name, token=f"bench-{name}-token") for name in SYSTEMS}
    for stub in stubs.values():
        stub.start()
    env = {**demo_environment(emu, stubs, workdir), **FAST, "ORDERFLOW_DATABASE_URL": url}
    db.upgrade(db.make_engine(url))  # the schema first: the operator thread reads it
    stop = threading.Event()
    operator = threading.Thread(target=operate, args=(url, stop), daemon=True)
    operator.start()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / f"instance-{n}.log").open("w"),
        )
        for n in range(instances)
    ]
    try:
        while settled(emu) < orders:
            if time.monotonic() - started > timeout:
                raise SystemExit(f"{label}: not settled in {timeout:g} s (logs in {workdir})")
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"{label}: an instance exited (logs in {workdir})")
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        operator.join()
    duplicates = sum(stub.stats()["duplicates"] for stub in stubs.values())
    for stub in stubs.values():
        stub.stop()
    emu.stop()
    if "BENCH_KEEP" not in os.environ:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(workdir)
    return Result(label, instances, orders, seconds, duplicates)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--pg", default=os.environ.get("ORDERFLOW_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--instances", type=int, nargs="*", default=[1, 2, 3])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'orderflow.db'}"
        results.append(run("SQLite", sqlite, 1, args.orders, args.timeout))
    for n in args.instances:
        with pg_database(args.pg) as url:
            results.append(run("PostgreSQL", url, n, args.orders, args.timeout))
    print(f"{'store':<12}{'instances':>10}{'orders':>8}{'seconds':>9}{'orders/s':>10}{'dup':>5}")
    for r in results:
        print(
            f"{r.label:<12}{r.instances:>10}{r.orders:>8}{r.seconds:>9.1f}"
            f"{r.rate:>10.1f}{r.duplicates:>5}"
        )


if __name__ == "__main__":
    main()
