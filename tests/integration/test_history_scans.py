"""Per-cycle work reads what changed since it last looked, not the history: planning
Invoices does not read every draft ever polled, writeback not every plan ever written.

(The long version, 20,000 drafts beside 100,000 settled orders: ``python -m bench.long_runs``.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from bench.common import CALLOUT_RULES
from daemon import store
from daemon.context import Context
from daemon.cycle.invoices import plan_invoices
from daemon.cycle.run import run_cycle
from daemon.cycle.writeback import write_back
from daemon.store.models import Plan, SourceRecord
from tests.integration.world import World, run_until_settled


def stored(ctx: Context, sobject: str, sf_id: str, **fields: Any) -> None:
    """A record as the poll stores it, at the clock's time."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        store.remember(session, sobject, {"Id": sf_id, **fields}, now, now)


def invoice(ctx: Context, n: int, status: str, *, lines: bool = True) -> str:
    sf_id = f"3tt5g0000000{n:03d}AAA"
    stored(ctx, "Invoice", sf_id, Status=status, DocumentNumber=f"INV-{n}", TotalAmount=10.0)
    if lines:
        stored(ctx, "InvoiceLine", f"3tu5g0000000{n:03d}AAA", InvoiceId=sf_id, Quantity=1)
    return sf_id


@contextmanager
def loads(model: type[SourceRecord] | type[Plan] = SourceRecord) -> Iterator[list[str]]:
    """The rows of ``model`` the ORM loads meanwhile, by id."""
    seen: list[str] = []

    def loaded(target: Any, _context: object) -> None:
        seen.append(str(target.sf_id if isinstance(target, SourceRecord) else target.order_id))

    event.listen(model, "load", loaded)
    try:
        yield seen
    finally:
        event.remove(model, "load", loaded)


#: The tables that grow with history: per-cycle work must find its rows by index.
HISTORY = re.compile(r"^SCAN (plans|source_records|sf_writebacks|tasks|task_events)\b")


@contextmanager
def full_scans(ctx: Context) -> Iterator[list[str]]:
    """SQLite's plan for every SELECT run meanwhile: the full scans of history tables."""
    engine = ctx.sessions.kw["bind"]
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    found: list[str] = []
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            found += [str(row[-1]) for row in plan if HISTORY.match(str(row[-1]))]


def planned(ctx: Context) -> set[str]:
    with ctx.sessions() as session:
        return set(session.scalars(select(Plan.order_id).where(Plan.kind == "invoice")))


def test_drafts_are_read_once_then_only_what_changed(world: World, monkeypatch):
    ctx = world.context(monkeypatch)
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]

    def later() -> None:
        now[0] += max(ctx.overlap, store.MIN_LOOKBACK) + timedelta(minutes=1)

    drafts = [invoice(ctx, n, "Draft") for n in range(30)]
    posted = invoice(ctx, 100, "Posted")
    waiting = invoice(ctx, 101, "Posted", lines=False)
    with loads() as first:
        assert plan_invoices(ctx) == 1
    assert planned(ctx) == {posted}
    assert set(drafts) <= set(first), "the first look of a process reads them all"

    later()  # records stored within the lookback of a look are read once more (late commits)
    assert plan_invoices(ctx) == 0
    later()
    with loads() as idle, full_scans(ctx) as scans:
        assert plan_invoices(ctx) == 0
    assert idle == [], "nothing changed: nothing read"
    assert scans == [], "found by index"

    # A draft posted, the lines of an invoice that waited for them, a new posted invoice.
    later()
    stored(ctx, "Invoice", drafts[3], Status="Posted", DocumentNumber="INV-3", TotalAmount=10.0)
    stored(ctx, "InvoiceLine", "3tu5g0000000101AAA", InvoiceId=waiting, Quantity=2)
    fresh = invoice(ctx, 102, "Posted")
    later()
    with loads() as changed:
        assert plan_invoices(ctx) == 3
    assert planned(ctx) == {posted, drafts[3], waiting, fresh}
    assert set(changed).isdisjoint(set(drafts) - {drafts[3]}), "the other drafts are not read"

    later()
    assert plan_invoices(ctx) == 0
    later()
    with loads() as idle_again:
        assert plan_invoices(ctx) == 0
    assert idle_again == []

    # Their status goes onto the Invoices once; then no transfer plan is read again.
    write_back(ctx)
    later()
    write_back(ctx)
    later()
    with loads(Plan) as unwritten, full_scans(ctx) as scans:
        assert write_back(ctx) == 0
    assert unwritten == [] and scans == []


def test_writeback_reads_the_plans_changed_since_it_last_looked(world: World, monkeypatch):
    orders = [world.add_order("PLAT-PRO"), world.add_order("PLAT-STD")]
    ctx = world.context(monkeypatch, rules_file=CALLOUT_RULES)
    run_until_settled(ctx, world)
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]

    def later() -> None:
        now[0] += max(ctx.overlap, store.MIN_LOOKBACK) + timedelta(minutes=1)

    later()
    write_back(ctx)  # plans changed within the lookback of the last look: read once more
    later()
    with loads(Plan) as idle, full_scans(ctx) as scans:
        assert write_back(ctx) == 0
    assert idle == [], "nothing changed: no plan read"
    assert scans == [], "the plans written long ago are not scanned"

    # One plan changes (a flag for a person, as an amendment sets): it alone is read, and
    # Salesforce shows it.
    with ctx.sessions.begin() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == orders[0])).one()
        plan.flag = "Look at this order"
        store.touch(plan, ctx.clock())
    with loads(Plan) as changed:
        assert write_back(ctx) == 1
    assert set(changed) == {orders[0]}
    assert world.emu.get("Order", orders[0])["Fulfillment_Message__c"] == "Look at this order"


def test_an_idle_cycle_finds_every_row_it_needs_by_index(world: World, monkeypatch):
    for _ in range(3):
        world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch, rules_file=CALLOUT_RULES)
    run_until_settled(ctx, world)
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]
    for _ in range(3):  # past the lookback of the last changes
        now[0] += max(ctx.overlap, store.MIN_LOOKBACK) + timedelta(minutes=1)
        ctx.gateway.pacer.next_poll_at = None  # a poll every cycle, as when busy
        run_cycle(ctx)
    with full_scans(ctx) as scans:
        ctx.gateway.pacer.next_poll_at = None
        assert run_cycle(ctx).idle
    assert scans == []
