"""How fast the canvas's queries answer on a big store: ``python -m bench.canvas [ORDERS]``.

Fills a SQLite file with ORDERS plans (100,000 by default) of four steps each, in the mix a
busy day leaves (mostly completed, some in flight, some fallout), then prints the time of
each view's queries: every tab, a search, a deep page, one plan, the systems. Figures only,
never assertions.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from daemon.store import db
from daemon.store.models import Plan, Task
from daemon.web.canvas.orders import TABS, orders_page
from daemon.web.canvas.plan import plan_view
from daemon.web.canvas.systems import systems_view

STATUSES = [("Completed", 0.80), ("In Progress", 0.14), ("Not Started", 0.03), ("Fallout", 0.03)]
STEPS = [("erp", "sales-orders"), ("billing", "subscriptions"), ("provisioning", "licenses")]


def fill(path: Path, orders: int, seed: int = 3) -> Any:
    rng = random.Random(seed)
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    now = datetime.now(UTC)
    statuses, weights = zip(*STATUSES, strict=True)
    with engine.begin() as conn:
        for start in range(0, orders, 5000):
            plans, tasks = [], []
            for n in range(start, min(orders, start + 5000)):
                status = rng.choices(statuses, weights)[0]
                created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
                plans.append(
                    {
                        "id": n + 1,
                        "order_id": f"801{n:015d}",
                        "order_number": f"{n:08d}",
                        "account_id": f"001{n % 997:015d}",
                        "revision": 1,
                        "rules_version": "bench",
                        "state": "Completed" if status == "Completed" else "In Progress",
                        "status": status,
                        "progress": 100 if status == "Completed" else rng.randint(0, 90),
                        "kind": "order",
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                for i, (system, action) in enumerate(STEPS):
                    state = "Completed"
                    if status == "Fallout" and i == 2:
                        state = "Fatally Failed"
                    elif status in ("In Progress", "Not Started") and i >= 1:
                        state = "Ready" if i == 1 else "Pending"
                    tasks.append(_task(n, i, system, action, state, created))
                tasks.append(_task(n, 3, None, "approve", "Completed", created, kind="manual"))
            conn.execute(insert(Plan), plans)
            conn.execute(insert(Task), tasks)
    return engine


def _task(
    n: int, i: int, system: str | None, action: str, state: str, at: datetime, kind: str = ""
) -> dict[str, Any]:
    return {
        "plan_id": n + 1,
        "revision": 1,
        "step_id": f"line{i}.{action}",
        "rule": "bench",
        "key": action,
        "kind": kind or "callout",
        "system": system,
        "action": action,
        "title": f"{action} for order {n}",
        "line_id": None,
        "depends_on": [f"line{i - 1}.{STEPS[i - 1][1]}"] if 0 < i < 3 else [],
        "payload": {"order": n},
        "state": state,
        "idempotency_key": f"{n}-{i}",
        "attempts": 1,
        "message": "",
        "created_at": at,
        "updated_at": at,
    }


def timed(label: str, call: Callable[[], Any]) -> None:
    start = time.perf_counter()
    call()
    print(f"  {label:<34} {1000 * (time.perf_counter() - start):8.1f} ms")


def main(orders: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = fill(Path(tmp) / "canvas.db", orders)
        print(f"{orders:,} orders, {orders * 4:,} steps in {time.perf_counter() - started:.1f} s")
        sessions = db.sessions(engine)
        now = datetime.now(UTC)
        with sessions() as session:
            for tab in TABS:
                timed(
                    f"orders, tab {tab.label}", partial(orders_page, session, tab.key, "", 1, now)
                )
            timed("orders, page 1000", lambda: orders_page(session, "all", "", 1000, now))
            timed("orders, search by number", lambda: orders_page(session, "all", "00042", 1, now))
            timed("orders, search by account", lambda: orders_page(
                session, "all", "001000000000000042", 1, now))  # fmt: skip
            timed("one plan", lambda: plan_view(session, orders // 2, now))
            timed("systems", lambda: systems_view(session, ["erp", "billing", "provisioning"]))
        engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
