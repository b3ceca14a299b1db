"""Go-live on an org with history: adopted, never sent, through a SIGKILL during adoption.

    python -m reliability.golive [--historic 2000 --live 50]

The org holds ``historic`` orders activated a month before the cut-over (some amended by
change orders, some cancelled by reduction orders, both before the cut-over too) and
``live`` orders activated since. ``orderflow run`` starts on an empty store with
``ORDERFLOW_CUTOVER_AT``, is SIGKILLed as soon as it reads the history, and is started
again; it runs until the live orders are Completed. Then:

- nothing reached a system before the kill (adoption sends nothing);
- every historic order and change order has an adopted plan, and no live one;
- the systems hold exactly one effect per step sent, all of live orders (ERP sales orders
  of the live orders only, no line of history in any payload), 0 duplicates;
- no historic Order shows a status written by Orderflow.

``tests/acceptance/test_golive.py`` runs a short version in ``make test``.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bench.common import LocalWorld, add_orders, say, stop_daemon, table, wait_until
from daemon.store import cutover, db
from daemon.store.models import Cutover, Plan, Task
from salesforce.emulator import Emulator
from salesforce.emulator.values import format_datetime

#: The cut-over: a day ago (it may not be in the future); history a month before it.
CUTOVER = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
HISTORY = CUTOVER - timedelta(days=30)


@dataclass
class GoLiveReport:
    historic: int
    live: int
    seconds: float = 0.0
    sent_before_restart: int = 0
    killed_during_adoption: bool = False
    adopted: int = 0
    adopted_live: int = 0
    live_completed: int = 0
    effects: dict[str, int] = field(default_factory=dict)
    steps_sent: dict[str, int] = field(default_factory=dict)
    erp_orders_not_live: int = 0
    history_in_payloads: int = 0
    duplicates: int = 0
    history_statuses_written: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.sent_before_restart == 0
            and self.killed_during_adoption
            and self.adopted == self.historic
            and self.adopted_live == 0
            and self.live_completed == self.live
            and self.effects == self.steps_sent
            and self.erp_orders_not_live == 0
            and self.history_in_payloads == 0
            and self.duplicates == 0
            and self.history_statuses_written == 0
        )


def build_org(emu: Emulator, historic: int, live: int, changes: int) -> tuple[set[str], set[str]]:
    """The org on go-live day: (historic order ids with their change orders, live ids)."""
    ids = add_orders(emu, historic + live, lines=2)
    old, new = ids[:historic], set(ids[historic:])
    for n, order_id in enumerate(old):
        when = HISTORY + timedelta(minutes=n)
        emu.update("Order", order_id, {"ActivatedDate": format_datetime(when)})
    changed = [
        _change_order(emu, order_id, cancel=n % 3 == 0) for n, order_id in enumerate(old[:changes])
    ]
    return set(old) | set(changed), new


def _change_order(emu: Emulator, original_id: str, *, cancel: bool) -> str:
    """A change order of the past: one more of each line, or (``cancel``) all of it gone."""
    original = emu.get("Order", original_id)
    lines = [r for r in emu.records("OrderItem") if r["OrderId"] == original_id]
    when = format_datetime(CUTOVER - timedelta(days=2))
    order_id = emu.insert(
        "Order",
        {
            **{k: original[k] for k in ("AccountId", "Pricebook2Id", "EffectiveDate")},
            "Status": "Activated",
            "ActivatedDate": when,
            "OriginalOrderId": original_id,
            "IsReductionOrder": cancel,
            "Type": "Amendment",
        },
    )
    emu.insert_many(
        "OrderItem",
        [
            {
                **{k: line[k] for k in ("PricebookEntryId", "UnitPrice", "ServiceDate", "EndDate")},
                "OrderId": order_id,
                "Quantity": -line["Quantity"] if cancel else 1.0,
                "OriginalOrderItemId": line["Id"],
            }
            for line in lines
        ],
    )
    return order_id


def run(workdir: Path, historic: int = 2000, live: int = 50, timeout: float = 600) -> GoLiveReport:
    started = time.monotonic()
    changes = max(3, historic // 50)
    report = GoLiveReport(historic=historic + changes, live=live)
    with LocalWorld(workdir) as world:
        history, new = build_org(world.emu, historic, live, changes)
        env = world.env(cutover_at=cutover.iso(CUTOVER))
        with (workdir / "first.log").open("wb") as log:
            first = world.start_daemon(env, log)
            wait_until(lambda: world.emu.api_calls >= 1, 120, alive=lambda: first.poll() is None)
            first.send_signal(signal.SIGKILL)
            first.wait()
        report.killed_during_adoption = not _adoption_done(world.database)
        report.sent_before_restart = sum(int(s.stats()["requests"]) for s in world.stubs.values())
        with (workdir / "second.log").open("wb") as log:
            second = world.start_daemon(env, log)
            try:
                wait_until(lambda: _completed(world.emu, new) == len(new), timeout)
            finally:
                stop_daemon(second)
        report.live_completed = _completed(world.emu, new)
        _audit(world, history, new, report)
    report.seconds = time.monotonic() - started
    return report


def _adoption_done(database: Path) -> bool:
    engine = db.make_engine(f"sqlite:///{database}")
    try:
        with db.sessions(engine)() as session:
            row = session.scalars(select(Cutover)).first()
            return row is not None and row.adopted_at is not None
    except OperationalError:  # killed before the schema was made
        return False
    finally:
        engine.dispose()


def _completed(emu: Emulator, orders: set[str]) -> int:
    return sum(
        1
        for r in emu.records("Order")
        if r["Id"] in orders and r.get("Fulfillment_Status__c") == "Completed"
    )


def _audit(world: LocalWorld, history: set[str], new: set[str], report: GoLiveReport) -> None:
    engine = db.make_engine(f"sqlite:///{world.database}")
    with db.sessions(engine)() as session:
        adopted = set(session.scalars(select(Plan.order_id).where(Plan.adopted_at.is_not(None))))
        sent = session.execute(
            select(Task.system, func.count())
            .where(Task.system.is_not(None), Task.attempts > 0)
            .group_by(Task.system)
        )
        report.steps_sent = {str(system): int(n) for system, n in sent}
    engine.dispose()
    report.adopted = len(adopted & history)
    report.adopted_live = len(adopted & new)
    report.effects = {k: v for k, v in world.effects().items() if v}
    report.duplicates = world.duplicates()
    erp = {e.payload.get("salesforce_order_id") for e in world.stubs["erp"].effects}
    report.erp_orders_not_live = len(erp - new)
    old_lines = {r["Id"] for r in world.emu.records("OrderItem") if r["OrderId"] in history}
    report.history_in_payloads = sum(
        1
        for stub in world.stubs.values()
        for e in stub.effects
        if e.payload.get("order_item_id") in old_lines
    )
    report.history_statuses_written = sum(
        1
        for r in world.emu.records("Order")
        if r["Id"] in history and r.get("Fulfillment_Status__c")
    )


def _print(report: GoLiveReport) -> None:
    rows: list[tuple[str, Any]] = [
        ("historic orders and changes", report.historic),
        ("adopted", report.adopted),
        ("killed during adoption", report.killed_during_adoption),
        ("calls to systems before the restart", report.sent_before_restart),
        ("live orders Completed", f"{report.live_completed} of {report.live}"),
        ("effects by system", dict(Counter(report.effects))),
        ("steps sent by system", report.steps_sent),
        ("ERP orders not live", report.erp_orders_not_live),
        ("history lines in payloads", report.history_in_payloads),
        ("duplicate effects", report.duplicates),
        ("historic Orders with a status written", report.history_statuses_written),
        ("seconds", round(report.seconds, 1)),
    ]
    say(table(["go-live", "value"], rows))
    say("OK" if report.ok else "FAILED")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--historic", type=int, default=2000)
    parser.add_argument("--live", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Path(tmp) / "golive", args.historic, args.live)
    _print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
