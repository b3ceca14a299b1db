"""`orderflow resync` started as a process, as an operator would run it."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from daemon.ops.demo import demo_environment
from daemon.store.models import Plan
from salesforce.emulator.seed import seed_demo_org, seed_invoices
from tests.integration.world import World

ROOT = Path(__file__).resolve().parents[2]
ORDERFLOW = [sys.executable, "-m", "daemon", "resync"]
WEEK = ["--since", "2026-11-01", "--until", "2026-11-07"]


def bare_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "2026-11-31", "--until", "2026-12-01"], "'2026-11-31' is not a date"),
        (["--since", "yesterday", "--until", "2026-12-01"], "'yesterday' is not a date"),
        (["--since", "2026-11-07", "--until", "2026-11-01"], "is after --until"),
        (["--since", "2099-01-01", "--until", "2099-01-07"], "starts in the future"),
        (["--since", "2026-11-01", "--until", "9999-12-31"], "'9999-12-31' is out of range"),
        (["--since", "0001-01-01", "--until", "2026-11-07"], "'0001-01-01' is out of range"),
        ([*WEEK, "--field", "X"], "invalid choice"),
        ([*WEEK, "--objects", "Quote"], "'Quote'"),
        (
            [*WEEK, "--objects", "Invoice", "--field", "ActivatedDate"],
            "Invoice has no such field",
        ),
    ],
)
def test_bad_dates_and_choices_exit_2_with_one_line(args: list[str], says: str) -> None:
    result = subprocess.run(
        [*ORDERFLOW, *args], capture_output=True, text=True, env=bare_env(), cwd=ROOT, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("orderflow: ") and says in lines[0]


def test_a_dry_run_then_a_resync_as_processes_with_a_progress_bar_on_a_terminal(
    world: World,
) -> None:
    seed_demo_org(world.emu, orders=20)
    invoices = seed_invoices(world.emu, every=4)
    env = demo_environment(world.emu, world.stubs, world.workdir)
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=1)).isoformat()

    master, terminal = pty.openpty()
    with subprocess.Popen(
        [*ORDERFLOW, "--since", since, "--until", today.isoformat(), "--dry-run", "--json"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
        cwd=ROOT,
    ) as proc:
        os.close(terminal)
        out, _ = proc.communicate(timeout=120)
    bar = _drain(master)
    assert proc.returncode == 0, bar
    dry = json.loads(out)
    assert dry["dry_run"] is True
    assert dry["objects"]["Order"]["new"] == 20 and dry["objects"]["Order"]["planned"] == 20
    assert dry["objects"]["Invoice"]["planned"] == len(invoices)
    assert dry["total"]["would_send"]["erp"] == 20 + len(invoices)
    assert "\rresync Order" in bar and "\rresync Invoice" in bar and "20/20 100%" in bar
    assert _plans(world) == 0  # the dry run wrote nothing
    assert all(stub.stats()["requests"] == 0 for stub in world.stubs.values())

    args = ["--since", since, "--until", today.isoformat(), "--objects", "Order,Invoice"]
    real = subprocess.run(
        [*ORDERFLOW, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert real.returncode == 0, real.stderr
    assert "\r" not in real.stderr  # no bar when stderr is not a terminal
    assert "Order: 20 read, 0 unchanged, 20 new" in real.stdout
    sends = real.stdout.splitlines()[-1]
    assert sends.startswith("  to send (by the daemon): ")
    assert f"{20 + len(invoices)} to erp" in sends
    assert _plans(world) == 20 + len(invoices)
    again = subprocess.run(
        [*ORDERFLOW, *args, "--json"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert json.loads(again.stdout)["total"]["unchanged"] == 20 + len(invoices)
    assert json.loads(again.stdout)["total"]["would_send"] == {}
    assert all(stub.stats()["requests"] == 0 for stub in world.stubs.values())


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _plans(world: World) -> int:
    engine = create_engine(f"sqlite:///{world.workdir / 'orderflow.db'}")
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(Plan)).scalar_one()
    engine.dispose()
    return int(count)
