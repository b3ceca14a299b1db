"""Peak memory of `orderflow resync` by the number of orders it re-reads: flat, or not.

    python -m bench.resync_memory [--orders 10000 100000] [--rules FILE]

Each run is a fresh world: the Salesforce emulator (in this process) seeded with that many
activated orders of 1-5 lines, the three stub systems, a new SQLite store. Then
``orderflow resync`` runs as a child process over the range that holds every order (all
new: each one decomposed, planned and committed, the heaviest case) and its peak resident
set is read from the kernel for that child alone (``os.wait4``: ``ru_maxrss``). A child's
``ru_maxrss`` starts from its parent's size at the fork, and this process holds the whole
emulated org: so each resync is started by a small launcher process (a fresh interpreter,
a few MiB) that reads the figure of its own child. A first row resyncs an empty range:
the fixed cost of the interpreter and the imports. Figures, never assertions: the machine
decides them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from daemon.ops.demo import SYSTEMS, demo_environment
from daemon.settings import DEFAULT_RULES
from downstream.stubs import StubSystem
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org

#: The launcher: runs argv[2:] and writes its peak RSS (KiB) to the file argv[1].
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(child.returncode)
"""


@dataclass
class Result:
    orders: int
    read: int
    planned: int
    seconds: float
    peak_kib: int


def run(orders: int, rules: Path) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-resync-"))
    emu = Emulator(workdir / "salesforce")
    emu.start()
    stubs = {name: StubSystem(name, token=f"bench-{name}-token") for name in SYSTEMS}
    for stub in stubs.values():
        stub.start()
    try:
        if orders:
            seed_demo_org(emu, orders=orders)
        env = demo_environment(emu, stubs, workdir)
        env["ORDERFLOW_RULES_FILE"] = str(rules)
        today = datetime.now(UTC).date()
        # Seeded orders carry today's SystemModstamp; the empty run reads a day long past.
        since, until = today - timedelta(days=1), today
        if not orders:
            since = until = date(2001, 1, 1)
        command = [sys.executable, "-m", "daemon", "resync", "--objects", "Order", "--json"]
        command += ["--since", since.isoformat(), "--until", until.isoformat()]
        out_path, err_path = workdir / "resync.json", workdir / "resync.log"
        peak_path = workdir / "peak"
        started = time.monotonic()
        with out_path.open("w") as out, err_path.open("w") as err:
            launch = [sys.executable, "-c", LAUNCHER, str(peak_path), *command]
            code = subprocess.run(launch, stdout=out, stderr=err, env=env, check=False).returncode
        seconds = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"resync of {orders} orders failed: {err_path.read_text()[-2000:]}")
        found = json.loads(out_path.read_text())["objects"]["Order"]
        return Result(orders, found["read"], found["planned"], seconds, int(peak_path.read_text()))
    finally:
        for stub in stubs.values():
            stub.stop()
        emu.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="the rules file")
    args = parser.parse_args()
    print(f"rules {args.rules.name}; resync in a child process, peak RSS of that child alone")
    print(f"{'orders':>8}{'read':>8}{'planned':>9}{'seconds':>9}{'peak RSS MiB':>14}")
    for orders in [0, *args.orders]:
        r = run(orders, args.rules)
        print(
            f"{r.orders:>8}{r.read:>8}{r.planned:>9}{r.seconds:>9.1f}{r.peak_kib / 1024:>14.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
