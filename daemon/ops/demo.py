"""``orderflow demo``: the real daemon against a local Salesforce org and stub systems.

The emulator and the stubs run in this process; the daemon runs as its own process
(``orderflow run``), configured only through ``ORDERFLOW_*`` variables, as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon import store
from daemon.ops import playground
from daemon.store import db
from downstream.stubs import StubSystem
from orchestration.states import ErpSyncStatus, Resolution
from salesforce.emulator import Emulator
from salesforce.emulator.seed import (
    DEMO_CPQ_PREFIXES,
    seed_demo_org,
    seed_invoices,
    seed_migrated_orders,
)

SETTLED = frozenset({"Completed", "Fallout", "Cancelled", "Superseded"})
SYSTEMS = ("erp", "billing", "provisioning")
CLIENT_ID, CLIENT_SECRET = "orderflow-demo", "demo-secret"
#: The stubs behave like real systems: some latency; provisioning accepts and finishes later
#: (asked by status polling, on the cadence ASYNC_ENVIRONMENT sets), slower than its SLA in
#: the demo's rules (DEMO_SLA): its steps go At Risk, then Late, then complete.
STUB_BEHAVIOUR: dict[str, dict[str, Any]] = {
    "erp": {"latency": (0.0, 0.02)},
    "billing": {"latency": (0.0, 0.02)},
    "provisioning": {"latency": (0.0, 0.02), "completion": "status", "complete_after": 5.0},
}
ASYNC_ENVIRONMENT = {"ORDERFLOW_PROVISIONING_STATUS_POLL_INTERVAL": "0.5"}
#: The default rules' SLAs in seconds instead of hours, so jeopardy shows within the demo.
DEMO_SLA = {
    "callout": {"estimate": "6s", "jeopardy": "2s"},
    "callout/provisioning": {"estimate": "3.5s", "jeopardy": "3s"},
    "auto": {"estimate": "5s", "jeopardy": "2s"},
    "manual": {"estimate": "6s", "jeopardy": "2s"},
}


def jeopardy_environment(workdir: Path) -> dict[str, str]:
    """The default rules with the demo's short SLAs, and a sweep every half second."""
    import yaml

    from daemon.settings import DEFAULT_RULES

    rules = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    rules["sla"] = DEMO_SLA
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return {"ORDERFLOW_RULES_FILE": str(path), "ORDERFLOW_JEOPARDY_INTERVAL": "0.5"}


def invoices_synced(emu: Emulator) -> bool:
    """Every posted Invoice shows its ERP transfer's outcome."""
    return all(
        r.get("ERP_Sync_Status__c") in (ErpSyncStatus.TRANSFERRED, ErpSyncStatus.FAILED)
        for r in emu.records("Invoice")
        if r.get("Status") == "Posted"
    )


#: How long the simulated operator lets a manual task wait before doing it.
OPERATOR_DELAY = timedelta(seconds=1)


def act_as_operator(
    sessions: sessionmaker[Session], now: datetime, delay: timedelta = OPERATOR_DELAY
) -> int:
    """The simulated operator: complete the manual tasks that have waited ``delay``, through
    the code path of ``orderflow task complete``. Returns how many."""
    with sessions.begin() as session:
        due = store.manual_tasks_waiting(session, now - delay)
        for task_id in due:
            reason = "done by the demo's simulated operator"
            store.resolve_task(session, task_id, Resolution.COMPLETE, reason, "demo-operator", now)
    return len(due)


def _operate(database: Path, stop: threading.Event) -> None:
    """Act as the operator every quarter second until ``stop``, once the store exists."""
    engine = db.make_engine(f"sqlite:///{database}")
    sessions = db.sessions(engine)
    while not stop.wait(0.25):
        if not database.exists():
            continue
        # The daemon may still be creating the schema, or hold the write lock: next time.
        with contextlib.suppress(OperationalError):
            act_as_operator(sessions, datetime.now(UTC))
    engine.dispose()


#: The demo's cut-over: before every order its org holds, so all of them are sent.
DEMO_CUTOVER = "2000-01-01T00:00:00Z"


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
            # The demo org's orders are all new business: none was fulfilled before this.
            "ORDERFLOW_CUTOVER_AT": DEMO_CUTOVER,
            # A free port: demos and tests may run side by side.
            "ORDERFLOW_HTTP_PORT": "0",
        }
    )
    # Change events from the org's Pub/Sub API (daemon.cycle.events); an org without it raises,
    # and ORDERFLOW_SF_EVENTS=auto then polls only.
    with contextlib.suppress(RuntimeError):
        env["ORDERFLOW_SF_PUBSUB_ENDPOINT"] = emu.pubsub_endpoint
    for name, stub in stubs.items():
        env[f"ORDERFLOW_{name.upper()}_URL"] = stub.url
        if stub.token:
            env[f"ORDERFLOW_{name.upper()}_TOKEN"] = stub.token
    return env


def run_demo(
    orders: int, *, as_json: bool, workdir: Path, timeout: float, keep: bool = False
) -> int:
    """Seed, run the daemon until every order settles, print the summary; with ``keep``,
    leave the world running as a playground until Ctrl-C (daemon.ops.playground)."""
    started = time.monotonic()
    workdir = playground.prepare(workdir)
    emu = Emulator(workdir / "salesforce")
    emu.start()
    migrated = min(orders // 3, max(3, orders // 10))  # orders migrated from CPQ
    seed_demo_org(emu, orders=orders - migrated)
    invoices = len(seed_invoices(emu))  # posted invoices, transferred to the ERP
    expected_fallout = _seed_migration(emu, migrated, workdir)
    stubs = {
        name: StubSystem(name, token=f"demo-{name}-token", **STUB_BEHAVIOUR.get(name, {}))
        for name in SYSTEMS
    }
    for stub in stubs.values():
        stub.start()
    log_path = workdir / "daemon.log"
    _say(as_json, f"Salesforce emulator at {emu.url} with {orders} activated orders")
    _say(as_json, f"{migrated} migrated from CPQ, {expected_fallout} with an unmapped legacy id")
    _say(as_json, f"{invoices} posted invoices; provisioning completes asynchronously")
    env = {
        **demo_environment(emu, stubs, workdir),
        **REMAP_ENVIRONMENT,
        **ASYNC_ENVIRONMENT,
        **jeopardy_environment(workdir),
    }
    if keep:  # a known port, so the canvas URL can be printed
        env["ORDERFLOW_HTTP_PORT"] = str(playground.free_port())
    playground.write_env(workdir, env)
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        stop = threading.Event()
        seen: dict[str, set[str]] = {"At Risk": set(), "Late": set()}
        operator = threading.Thread(
            target=_operate, args=(workdir / "orderflow.db", stop), name="demo-operator"
        )
        operator.start()
        try:
            settled = _wait(emu, daemon, orders, timeout, quiet=as_json, seen=seen)
        except BaseException:
            keep = False  # interrupted while waiting: nothing to keep
            raise
        finally:
            stop.set()
            operator.join()  # with --keep, manual tasks now wait for a person
            if not keep:
                playground.stop(daemon)
    summary = _summary(emu, stubs, workdir, time.monotonic() - started)
    summary.update(_remap_summary(workdir, expected_fallout))
    summary["jeopardy_seen"] = {level: len(ids) for level, ids in seen.items()}
    if as_json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        _print_summary(summary)
        _print_remap(summary)
    code = _verdict(summary, settled, expected_fallout, log_path)
    if keep:
        port = env["ORDERFLOW_HTTP_PORT"]
        playground.hold(workdir, f"http://127.0.0.1:{port}/canvas/", daemon)
    for stub in stubs.values():
        stub.stop()
    emu.stop()
    return code


def _verdict(summary: dict[str, Any], settled: bool, expected_fallout: int, log: Path) -> int:
    if not settled:
        print(f"orderflow: not every order settled; daemon log: {log}", file=sys.stderr)
        return 1
    fallout = summary["orders_by_status"].get("Fallout", 0)
    if fallout != expected_fallout:
        print(f"orderflow: fallout {fallout}, expected {expected_fallout}", file=sys.stderr)
        return 1
    return 0


def _wait(
    emu: Emulator,
    daemon: subprocess.Popen[bytes],
    orders: int,
    timeout: float,
    *,
    quiet: bool,
    seen: dict[str, set[str]],
) -> bool:
    """Wait for every order to settle, noting in ``seen`` the orders shown At Risk or Late."""
    deadline = time.monotonic() + timeout
    last, changed = "", False
    while time.monotonic() < deadline:
        records = emu.records("Order")
        for record in records:
            if record.get("Jeopardy_Status__c") in seen:
                seen[record["Jeopardy_Status__c"]].add(record["Id"])
        # Changes wait for four orders under way (or all of them, in a smaller demo).
        under_way = sum(1 for r in records if r.get("Fulfillment_Status__c"))
        if not changed and under_way >= min(4, orders):
            changed = True  # amendments and a cancellation, made once, in flight
            n = make_changes(emu)
            _say(quiet, f"changed {n} orders in flight (change orders, a cancellation)")
            continue
        orders = max(orders, len(records))
        statuses = Counter(r.get("Fulfillment_Status__c") for r in records)
        done = sum(n for s, n in statuses.items() if s in SETTLED)
        line = f"settled {done}/{orders}: " + ", ".join(
            f"{s or 'not seen'} {n}" for s, n in sorted(statuses.items(), key=lambda i: str(i[0]))
        )
        if line != last:
            _say(quiet, line)
            last = line
        if changed and done >= orders and invoices_synced(emu):
            return True
        if daemon.poll() is not None:
            _say(quiet, f"the daemon exited with code {daemon.returncode}")
            return False
        time.sleep(0.25)
    return False


def make_changes(emu: Emulator) -> int:
    """Change orders in flight, as sales would: seats added to two orders, a product removed
    from a third, a fourth cancelled (its status). Returns the orders changed."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for item in emu.records("OrderItem"):
        lines.setdefault(str(item["OrderId"]), []).append(item)
    picked = [
        r
        for r in emu.records("Order")
        if r.get("Fulfillment_Status__c") in ("In Progress", "Completed")
        and not r.get("OriginalOrderId")
        and not r.get("SBQQ__Quote__c")
        and len(lines.get(r["Id"], [])) >= 2
    ][:4]
    for n, order in enumerate(picked):
        items = sorted(lines[order["Id"]], key=lambda i: str(i["Id"]))
        if n == 3:
            emu.update("Order", order["Id"], {"Status": "Cancelled"})
            continue
        item = items[0] if n < 2 else items[-1]
        delta = 2.0 if n < 2 else -float(item["Quantity"])
        change = {k: order[k] for k in ("AccountId", "EffectiveDate", "Pricebook2Id")}
        change.update(Status="Draft", OriginalOrderId=order["Id"], Type="Amendment")
        change_id = emu.insert("Order", {**change, "IsReductionOrder": delta < 0})
        fields = ("PricebookEntryId", "UnitPrice", "ServiceDate", "EndDate")
        emu.insert(
            "OrderItem",
            {
                **{k: item[k] for k in fields},
                "OrderId": change_id,
                "Quantity": delta,
                "OriginalOrderItemId": item["Id"],
            },
        )
        emu.update("Order", change_id, {"Status": "Activated"})
    return len(picked)


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
        "salesforce_calls_by_kind": {k: n for k, n in emu.calls_by_kind.items() if n},
        "downstream_effects": {n: s["effects"] for n, s in stats.items()},
        "downstream_requests": {n: s["requests"] for n, s in stats.items()},
        "duplicate_effects": sum(s["duplicates"] for s in stats.values()),
        "invoices_by_erp_status": dict(
            Counter(str(r.get("ERP_Sync_Status__c")) for r in emu.records("Invoice"))
        ),
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
    seen = summary["jeopardy_seen"]
    print(f"Orders in jeopardy:   At Risk {seen['At Risk']}, Late {seen['Late']} (on the Order)")
    invoices = summary["invoices_by_erp_status"]
    print("Invoices to the ERP:  " + ", ".join(f"{k} {v}" for k, v in sorted(invoices.items())))
    print(f"Elapsed:              {summary['elapsed_seconds']} s")


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, file=sys.stderr, flush=True)


# Legacy CPQ ids: the demo org's CPQ prefixes, its migration fields, an ERP built for CPQ.
REMAP_ENVIRONMENT = {
    "ORDERFLOW_REMAP_PREFIXES": json.dumps(DEMO_CPQ_PREFIXES),
    "ORDERFLOW_REMAP_DISCOVERY_FIELDS": '["OrderItem.Legacy_CPQ_Id__c", "Order.SBQQ__Quote__c"]',
    "ORDERFLOW_REMAP_REFERENCE_FIELDS": '["OrderItem.SBQQ__Subscription__c"]',
    "ORDERFLOW_REMAP_OUTBOUND": '{"erp": {"speaks": "legacy", "until": "2027-01-01"}}',
}


def _seed_migration(emu: Emulator, migrated: int, workdir: Path) -> int:
    """Seed orders migrated from CPQ and import the migration's crosswalk, as a lead would.

    One order's amended subscription is left out of the crosswalk on purpose: it ends in
    Fallout with the reason. Returns the orders expected in fallout.
    """
    from daemon.app import utcnow
    from daemon.cycle.crosswalk import import_file
    from remap.config import RemapConfig

    unmapped = 1 if migrated else 0
    rows = seed_migrated_orders(emu, migrated, unmapped=unmapped)
    path = workdir / "crosswalk.csv"
    path.write_text(
        "legacy_id,legacy_type,standard_id,standard_type\n"
        + "".join(",".join(row) + "\n" for row in rows)
    )
    engine = db.make_engine(f"sqlite:///{workdir / 'orderflow.db'}")
    db.upgrade(engine)
    import_file(db.sessions(engine), path, RemapConfig.build(DEMO_CPQ_PREFIXES), utcnow())
    engine.dispose()
    return unmapped


def _remap_summary(workdir: Path, expected_fallout: int) -> dict[str, Any]:
    from daemon.cycle.crosswalk import coverage_report
    from daemon.settings import load_settings

    config = load_settings(**{k.removeprefix("ORDERFLOW_").lower(): json.loads(v)
                              for k, v in REMAP_ENVIRONMENT.items()}).remap_config()  # fmt: skip
    engine = db.make_engine(f"sqlite:///{workdir / 'orderflow.db'}")
    with db.sessions(engine)() as session:
        totals = coverage_report(session, config).totals()
    engine.dispose()
    return {"expected_fallout": expected_fallout, "remap": totals}


def _print_remap(summary: dict[str, Any]) -> None:
    remap = summary["remap"]
    print(
        f"Legacy CPQ ids:       {remap['referenced']} referenced by {remap['orders_scanned']} "
        f"orders, {remap['resolved']} resolved, {remap['unresolved']} unresolved "
        f"(orderflow remap check)"
    )
    print(f"Expected fallout:     {summary['expected_fallout']} (an unmapped legacy id)")
