"""What history costs a cycle: ``python -m bench.long_runs [SETTLED [DRAFTS]]``.

Fills a SQLite store with SETTLED settled orders (100,000 by default: plans Completed and
written back, three callouts each, their audit rows and source record copies) and DRAFTS
draft Invoices (20,000, with a line each) that no cycle should plan, then times idle cycles
(nothing new in Salesforce, nothing to send) on it beside the same cycles on an empty
store, phase by phase. Per-cycle work is meant to cost what changed, not what is kept:
the two columns should be close. Figures only, never assertions.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from bench.common import LocalWorld, machine, say, table
from daemon import app
from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.settings import load_settings
from daemon.store import db
from daemon.store.models import Plan, SfWriteback, SourceRecord, Task, TaskEvent

CHUNK = 5000
STEPS = (("erp", "sales-orders"), ("billing", "subscriptions"), ("provisioning", "licenses"))


def fill(engine: Engine, settled: int, drafts: int, now: datetime) -> None:
    """Bulk rows as a long run leaves them (no cycle would touch any of them)."""
    finished = now - timedelta(days=30)
    with engine.begin() as conn:
        for start in range(0, settled, CHUNK):
            plans, tasks, events, records, written = [], [], [], [], []
            for n in range(start, min(settled, start + CHUNK)):
                order_id = f"801{n:015d}"
                plans.append(
                    {
                        "id": n + 1,
                        "order_id": order_id,
                        "order_number": f"{n:08d}",
                        "revision": 1,
                        "rules_version": "bench",
                        "state": "Completed",
                        "status": "Completed",
                        "written_status": "Completed",
                        "progress": 100,
                        "kind": "order",
                        "change_seq": 3,
                        "created_at": finished,
                        "updated_at": finished,
                    }
                )
                written.append(_written("Order", order_id, finished, plan_seq=3))
                records.append(_record("Order", order_id, {"Status": "Activated"}, finished))
                for i, (system, action) in enumerate(STEPS):
                    task_id = 3 * n + i + 1
                    line_id = f"802{3 * n + i:015d}"
                    tasks.append(_task(n, task_id, i, system, action, line_id, finished))
                    records.append(_record("OrderItem", line_id, {"OrderId": order_id}, finished))
                    for to in ("Ready", "In Progress", "Completed"):
                        events.append(
                            {"task_id": task_id, "at": finished, "to_state": to, "reason": to}
                        )
            conn.execute(insert(Plan), plans)
            conn.execute(insert(Task), tasks)
            conn.execute(insert(TaskEvent), events)
            conn.execute(insert(SourceRecord), records)
            conn.execute(insert(SfWriteback), written)
        for start in range(0, drafts, CHUNK):
            records = []
            for n in range(start, min(drafts, start + CHUNK)):
                invoice_id = f"3tt{n:015d}"
                records.append(_record("Invoice", invoice_id, {"Status": "Draft"}, finished))
                line = {"InvoiceId": invoice_id, "Quantity": 1}
                records.append(_record("InvoiceLine", f"3tu{n:015d}", line, finished))
            conn.execute(insert(SourceRecord), records)


def _record(sobject: str, sf_id: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "sobject": sobject,
        "sf_id": sf_id,
        "system_modstamp": at,
        "content_hash": sf_id,
        "seen_at": at,
        "data": {"Id": sf_id, **data},
    }


def _written(sobject: str, sf_id: str, at: datetime, plan_seq: int) -> dict[str, Any]:
    return {
        "sobject": sobject,
        "sf_id": sf_id,
        "written": {"Fulfillment_Status__c": "Completed"},
        "attempts": 1,
        "updated_at": at,
        "plan_seq": plan_seq,
    }


def _task(
    n: int, task_id: int, i: int, system: str, action: str, line_id: str, at: datetime
) -> dict[str, Any]:
    return {
        "id": task_id,
        "plan_id": n + 1,
        "revision": 1,
        "step_id": f"line{i}.{action}",
        "rule": "bench",
        "key": action,
        "kind": "callout",
        "system": system,
        "action": action,
        "title": f"{action} for order {n}",
        "line_id": line_id,
        "depends_on": [],
        "payload": {"order": n},
        "state": "Completed",
        "idempotency_key": f"bench-{n}-{i}",
        "attempts": 1,
        "message": "",
        "started_at": at,
        "completed_at": at,
        "created_at": at,
        "updated_at": at,
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cycle_times(ctx: Context, cycles: int) -> dict[str, float]:
    """Median seconds of ``cycles`` idle cycles, in all and per phase (after one to warm)."""
    run_cycle(ctx)
    totals: list[float] = []
    phases: dict[str, list[float]] = {}
    for _ in range(cycles):
        ctx.gateway.pacer.next_poll_at = None  # poll every cycle, as a busy daemon does
        started = time.perf_counter()
        report = run_cycle(ctx)
        totals.append(time.perf_counter() - started)
        for name, seconds in report.seconds.items():
            phases.setdefault(name, []).append(seconds)
    return {"cycle": statistics.median(totals)} | {
        name: statistics.median(values) for name, values in phases.items()
    }


def measure(workdir: Path, settled: int, drafts: int, cycles: int = 5) -> dict[str, float]:
    with LocalWorld(workdir) as world, environment(world.env()):
        settings = load_settings()
        engine = db.make_engine(settings.database_url)
        db.upgrade(engine)
        if settled or drafts:
            started = time.perf_counter()
            fill(engine, settled, drafts, datetime.now(UTC))
            say(f"  filled {settled:,} settled orders, {drafts:,} drafts "
                f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        engine.dispose()
        ctx = app.context(settings)
        return cycle_times(ctx, cycles)


def main(settled: int = 100_000, drafts: int = 20_000) -> None:
    say(f"Idle cycle time, empty store vs {settled:,} settled orders + {drafts:,} draft invoices")
    with tempfile.TemporaryDirectory() as tmp:
        empty = measure(Path(tmp) / "empty", 0, 0)
        full = measure(Path(tmp) / "full", settled, drafts)
    names = list(dict.fromkeys([*empty, *full]))
    rows = [
        [name, f"{1000 * empty.get(name, 0.0):.1f} ms", f"{1000 * full.get(name, 0.0):.1f} ms"]
        for name in names
    ]
    print(table(["phase (median)", "empty store", "with history"], rows))
    say(machine())


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
