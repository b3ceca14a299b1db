"""What the benchmarks and the reliability suites share: a local world (the Salesforce
emulator, three stub systems, the daemon as its own process), orders to feed it, the
checks that say a run is settled, and the small tables every suite prints."""

from __future__ import annotations

import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from daemon.app import POLLED_FIELDS
from daemon.ops.demo import SYSTEMS, demo_environment
from daemon.store import db
from daemon.store.models import Plan, SfBudget, Task
from downstream.stubs import StubSystem
from orchestration.auto import REGISTRY
from orchestration.decompose import decompose
from orchestration.records import Order
from orchestration.rules import RuleSet, load_rules
from orchestration.states import FINAL_STATES
from salesforce.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org

#: Callouts only: what the benchmarks and the reliability suites run (see the file).
CALLOUT_RULES = Path(__file__).with_name("callout_rules.yaml")
SETTLED = frozenset({"Completed", "Fallout", "Cancelled", "Superseded"})
DAEMON = [sys.executable, "-m", "daemon", "run"]
#: The catalogue's codes by family (salesforce.emulator.seed).
SUBSCRIPTIONS = ("PLAT-ENT", "PLAT-PRO", "PLAT-STD")
EXTRAS = ("ADD-SSO", "ADD-AUDIT", "SEATS-EXTRA")


@dataclass
class Catalogue:
    account_ids: list[str]
    pricebook_id: str
    products: dict[str, dict[str, Any]]  # ProductCode -> Product2 (with "entry")


def seed_catalogue(emu: Emulator) -> Catalogue:
    """The demo org's accounts, products and price book, without its orders."""
    if not emu.records("Product2"):
        seed_demo_org(emu, orders=0)
    entries = {e["Product2Id"]: e for e in emu.records("PricebookEntry")}
    products = {p["ProductCode"]: {**p, "entry": entries[p["Id"]]} for p in emu.records("Product2")}
    pricebook = next(iter(entries.values()))["Pricebook2Id"]
    return Catalogue([a["Id"] for a in emu.records("Account")], pricebook, products)


def order_header(catalogue: Catalogue, rng: random.Random, **fields: Any) -> dict[str, Any]:
    return {
        "AccountId": rng.choice(catalogue.account_ids),
        "Pricebook2Id": catalogue.pricebook_id,
        "Status": "Draft",
        "EffectiveDate": "2026-12-01",
        "EndDate": "2027-11-30",
        "Type": "New",
        **fields,
    }


def order_line(catalogue: Catalogue, code: str, **fields: Any) -> dict[str, Any]:
    product = catalogue.products[code]
    return {
        "Product2Id": product["Id"],
        "PricebookEntryId": product["entry"]["Id"],
        "Quantity": 5.0,
        "UnitPrice": float(product["entry"]["UnitPrice"]),
        "ServiceDate": "2026-12-01",
        "EndDate": "2027-11-30",
        **fields,
    }


def add_orders(
    emu: Emulator, count: int, *, lines: int = 3, seed: int = 7, chunk: int = 1000
) -> list[str]:
    """``count`` activated orders of ``lines`` lines each (a subscription and add-ons),
    ActivatedDate stamped now; ``chunk`` at a time, as an org makes them: each order and its
    lines created as a draft, then the chunk activated in one transaction (Salesforce
    activates no order without its products). Returns their ids."""
    catalogue = seed_catalogue(emu)
    rng = random.Random(seed)
    ids: list[str] = []
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        headers = [order_header(catalogue, rng) for _ in range(n)]
        codes = [
            [rng.choice(SUBSCRIPTIONS), *rng.sample(EXTRAS, min(lines - 1, len(EXTRAS)))][:lines]
            for _ in range(n)
        ]
        order_ids = emu.insert_many("Order", headers)
        emu.insert_many(
            "OrderItem",
            [
                {**order_line(catalogue, code), "OrderId": order_id}
                for order_id, order_codes in zip(order_ids, codes, strict=True)
                for code in order_codes
            ],
        )
        emu.update_many("Order", {order_id: {"Status": "Activated"} for order_id in order_ids})
        ids += order_ids
    return ids


@dataclass
class LocalWorld:
    """The emulator and the stubs in this process; the daemon as a child process."""

    workdir: Path
    stub_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    emu: Emulator = field(init=False)
    stubs: dict[str, StubSystem] = field(init=False)

    def __post_init__(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.emu = Emulator(self.workdir / "salesforce")
        self.stubs = {
            name: StubSystem(name, token=f"bench-{name}-token", **self.stub_options.get(name, {}))
            for name in SYSTEMS
        }

    def __enter__(self) -> LocalWorld:
        self.emu.start()
        for stub in self.stubs.values():
            stub.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.stop()
        self.emu.stop()

    @property
    def database(self) -> Path:
        return self.workdir / "orderflow.db"

    def env(self, rules: Path = CALLOUT_RULES, **settings: str) -> dict[str, str]:
        """The daemon's ORDERFLOW_* settings for this world (as the demo sets them)."""
        env = demo_environment(self.emu, self.stubs, self.workdir)
        env["ORDERFLOW_RULES_FILE"] = str(rules)
        env["ORDERFLOW_LOG_LEVEL"] = "WARNING"
        env.update({f"ORDERFLOW_{k.upper()}": v for k, v in settings.items()})
        return env

    def start_daemon(self, env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(DAEMON, env=dict(env), stdout=log, stderr=subprocess.STDOUT)

    def statuses(self) -> Counter[str]:
        return Counter(str(r.get("Fulfillment_Status__c")) for r in self.emu.records("Order"))

    def settled(self) -> int:
        return sum(n for status, n in self.statuses().items() if status in SETTLED)

    def streams_open(self) -> bool:
        """Whether the daemon's change event streams are open and its polls past their
        opening (``orderflow status``: events connected): from then on, an activation
        reaches it as an event."""
        if not self.database.exists():
            return False
        engine = db.make_engine(f"sqlite:///{self.database}")
        try:
            with db.sessions(engine)() as session:
                row = session.get(SfBudget, "events")
                return row is not None and bool(row.data.get("connected"))
        except SQLAlchemyError:
            return False  # not created yet
        finally:
            engine.dispose()

    def duplicates(self) -> int:
        return sum(int(s.stats()["duplicates"]) for s in self.stubs.values())

    def effects(self) -> dict[str, int]:
        return {name: int(s.stats()["effects"]) for name, s in self.stubs.items()}


def stop_daemon(daemon: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    *,
    alive: Callable[[], bool] = lambda: True,
    every: float = 0.25,
) -> bool:
    """Poll ``condition`` until true (True), ``timeout`` passes or ``alive`` says no."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not alive():
            return condition()
        time.sleep(every)
    return condition()


# -- the checks after a run ---------------------------------------------------------------------
def load_ruleset(path: Path = CALLOUT_RULES) -> RuleSet:
    return load_rules(path, POLLED_FIELDS, REGISTRY)


def polled_orders(emu: Emulator) -> list[Order]:
    """The emulator's Orders as the poller reads them (lines with their Product2)."""
    products = {p["Id"]: p for p in emu.records("Product2")}
    lines: dict[str, list[dict[str, Any]]] = {}
    for line in emu.records("OrderItem"):
        product = products.get(str(line.get("Product2Id")), {})
        lines.setdefault(str(line["OrderId"]), []).append({**line, "Product2": product})
    return [
        Order.from_record({**order, "OrderItems": {"records": lines.get(order["Id"], [])}})
        for order in emu.records("Order")
    ]


@dataclass
class StepAudit:
    """Every order's expected steps against the store: none missing, none unfinished."""

    plans: int = 0
    orders_without_plan: int = 0
    missing_steps: int = 0
    unfinished_steps: int = 0
    tasks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.orders_without_plan + self.missing_steps + self.unfinished_steps


def audit_steps(database: Path, orders: Iterable[Order], ruleset: RuleSet) -> StepAudit:
    """Compare each order's plan in the store with what the rules make of the order."""
    audit = StepAudit()
    engine = db.make_engine(f"sqlite:///{database}")
    with db.sessions(engine)() as session:
        plans = {p.order_id: p for p in session.scalars(select(Plan).where(Plan.kind == "order"))}
        tasks: dict[int, list[Task]] = {}
        for task in session.scalars(select(Task)):
            tasks.setdefault(task.plan_id, []).append(task)
        for order in orders:
            plan = plans.get(order.id)
            if plan is None:
                audit.orders_without_plan += 1
                audit.problems.append(f"{order.id}: no plan")
                continue
            audit.plans += 1
            live = [t for t in tasks.get(plan.id, []) if t.revision == plan.revision]
            audit.tasks += len(live)
            have = {t.step_id for t in live}
            expected = {s.step_id for s in decompose(order, ruleset)}
            for step in sorted(expected - have):
                audit.missing_steps += 1
                audit.problems.append(f"{order.id}: step {step} missing")
            for task in live:
                if task.state not in {s.value for s in FINAL_STATES}:
                    audit.unfinished_steps += 1
                    audit.problems.append(f"{order.id}: {task.step_id} is {task.state}")
    engine.dispose()
    return audit


# -- output ---------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small fixed-width table: the first column left-aligned, the others right."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    """One line about the machine the figures come from."""
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kb = int(meminfo.readline().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores{memory}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
