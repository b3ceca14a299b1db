"""The orders view's queries: filter tabs, search, worst-first order, server-side paging.

Everything here is a few indexed queries whatever the store holds: one page of plans
(``LIMIT``/``OFFSET`` over the worst-first order), one count, one grouped count for the tab
badges, and the reasons shown beside the page's orders. Jeopardy is read from
``plans.jeopardy`` when the store has that column (see :func:`jeopardy_column`); until then
open orders read "On Track" and the At Risk and Late tabs are empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from daemon.cycle.crosswalk import find
from daemon.cycle.jeopardy import worst_step
from daemon.store.accounts import account_names
from daemon.store.flags import flag_text, maybe_flagged
from daemon.store.models import Plan, Task
from orchestration.jeopardy import Jeopardy, sentence
from orchestration.states import FulfillmentStatus, StepKind, StepState
from remap.ids import canonical, is_id

PAGE_SIZE = 50
ON_TRACK, AT_RISK, LATE = "On Track", "At Risk", "Late"
OPEN_STATUSES = (FulfillmentStatus.NOT_STARTED.value, FulfillmentStatus.IN_PROGRESS.value)
FALLOUT = FulfillmentStatus.FALLOUT.value
#: Orders whose work is not over: what jeopardy applies to.
UNSETTLED = (*OPEN_STATUSES, FALLOUT)


def jeopardy_column(model: type[Plan] | type[Task]) -> InstrumentedAttribute[Any] | None:
    """``model.jeopardy`` when the store has it (the jeopardy work adds it), else None."""
    column: InstrumentedAttribute[Any] | None = getattr(model, "jeopardy", None)
    return column


def jeopardy_of(row: Plan | Task, settled: bool) -> str:
    """The jeopardy shown for a plan or a step: "" once settled without one."""
    value = getattr(row, "jeopardy", None)
    if value:
        return str(value)
    return "" if settled else ON_TRACK


@dataclass(frozen=True)
class Tab:
    key: str
    label: str


TABS = (
    Tab("all", "All"),
    Tab("in-progress", "In Progress"),
    Tab("at-risk", AT_RISK),
    Tab("late", LATE),
    Tab("fallout", "Fallout"),
    Tab("manual", "Manual Tasks"),
    Tab("completed", "Completed"),
    Tab("flagged", "Flagged"),
    Tab("invoices", "Invoices"),
)
#: Invoice transfers to the ERP are plans too (``Plan.kind``), counted and listed apart.
ORDER, INVOICE = "order", "invoice"
TAB_KEYS = frozenset(t.key for t in TABS)


def manual_waiting() -> Any:
    """Plan ids with a manual step waiting for its operator (the tasks' state index)."""
    plan = aliased(Plan)
    return (
        select(Task.plan_id)
        .join(plan, plan.id == Task.plan_id)
        .where(Task.state == StepState.IN_PROGRESS.value)
        .where(Task.kind == StepKind.MANUAL.value)
        .where(Task.revision == plan.revision)
    )


def tab_filter(key: str) -> ColumnElement[bool]:
    """The WHERE clause of a tab: invoice transfers under Invoices, orders under the rest."""
    if key == "invoices":
        return Plan.kind == INVOICE
    if key == "flagged":
        return maybe_flagged()
    within = _order_tab(key)
    return Plan.kind == ORDER if within is None else and_(Plan.kind == ORDER, within)


def _order_tab(key: str) -> ColumnElement[bool] | None:
    jeopardy = jeopardy_column(Plan)
    if key == "in-progress":
        return Plan.status.in_(OPEN_STATUSES)
    if key in ("at-risk", "late"):
        if jeopardy is None:
            return false()
        return and_(jeopardy == (AT_RISK if key == "at-risk" else LATE), Plan.status.in_(UNSETTLED))
    if key == "fallout":
        return Plan.status == FALLOUT
    if key == "manual":
        return Plan.id.in_(manual_waiting())
    if key == "completed":
        return Plan.status == FulfillmentStatus.COMPLETED.value
    return None


def severity() -> Any:
    """Worst first: Fallout, Late, At Risk, In Progress, Not Started, then the settled."""
    jeopardy = jeopardy_column(Plan)
    whens: list[tuple[ColumnElement[bool], int]] = [(Plan.status == FALLOUT, 0)]
    if jeopardy is not None:
        unsettled = Plan.status.in_(UNSETTLED)
        whens += [(and_(jeopardy == LATE, unsettled), 1), (and_(jeopardy == AT_RISK, unsettled), 2)]
    whens += [
        (Plan.status == FulfillmentStatus.IN_PROGRESS.value, 3),
        (Plan.status == FulfillmentStatus.NOT_STARTED.value, 4),
    ]
    return case(*whens, else_=5)


def search_filter(session: Session, text: str) -> ColumnElement[bool] | None:
    """Orders matching an order number, an Order, line or Account id (15 or 18), a legacy
    CPQ id the crosswalk maps, or a downstream system's key (an ERP order number)."""
    text = text.strip()
    if not text:
        return None
    ids: set[str] = set()
    if is_id(text):
        ids.add(canonical(text))
    found = find(session, text)
    ids.update(m.standard_id for m in found.as_legacy)
    ids.update(k.sf_id for k in found.keys)
    wanted: list[ColumnElement[bool]] = [Plan.order_number == text]
    if text.isdigit():
        wanted.append(Plan.order_number.like(f"%{text}"))
    if ids:
        wanted += [Plan.order_id.in_(ids), Plan.account_id.in_(ids)]
        plans = _plans_of_lines(session, ids)
        if plans:
            wanted.append(Plan.id.in_(plans))
    return or_(*wanted)


def _plans_of_lines(session: Session, ids: Iterable[str]) -> set[int]:
    """The plans with steps made from any OrderItem ids among ``ids``. (``tasks.line_id``
    has no index: this scan runs only when the search is an id of the OrderItem kind.)"""
    lines = [i for i in ids if i.startswith("802")]
    if not lines:
        return set()
    return set(session.scalars(select(Task.plan_id).where(Task.line_id.in_(lines)).distinct()))


@dataclass
class OrderRow:
    id: int
    order_id: str
    order_number: str
    account_id: str | None
    kind: str
    status: str
    jeopardy: str
    progress: int
    created_at: datetime
    updated_at: datetime
    age_seconds: int
    attention: str = ""
    account_name: str | None = None  # as Salesforce gave it (daemon.store.accounts)


@dataclass
class OrdersPage:
    tab: str
    query: str
    page: int
    pages: int
    total: int
    rows: list[OrderRow]
    tab_counts: dict[str, int] = field(default_factory=dict)
    jeopardy_tracked: bool = False

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.page * PAGE_SIZE, self.total)


def orders_page(session: Session, tab: str, query: str, page: int, now: datetime) -> OrdersPage:
    """One page of orders under a tab and a search, worst first."""
    tab = tab if tab in TAB_KEYS else "all"
    where = [tab_filter(tab), *[c for c in (search_filter(session, query),) if c is not None]]
    total = int(session.scalar(select(func.count()).select_from(Plan).where(*where)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    plans = session.scalars(
        select(Plan)
        .where(*where)
        .order_by(severity(), Plan.created_at, Plan.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    reasons = attention(session, [p.id for p in plans], now)
    names = account_names(session, [p.order_id for p in plans])
    rows = [
        OrderRow(
            id=p.id,
            order_id=p.order_id,
            order_number=p.order_number,
            account_id=p.account_id,
            kind=p.kind,
            status=p.status,
            jeopardy=jeopardy_of(p, p.status not in UNSETTLED),
            progress=p.progress,
            created_at=p.created_at,
            updated_at=p.updated_at,
            age_seconds=max(0, int((now - p.created_at).total_seconds())),
            attention=flag_text(p) or reasons.get(p.id, "") or (p.writeback_error or ""),
            account_name=names.get(p.order_id),
        )
        for p in plans
    ]
    return OrdersPage(
        tab=tab,
        query=query.strip(),
        page=page,
        pages=pages,
        total=total,
        rows=rows,
        tab_counts=tab_counts(session),
        jeopardy_tracked=jeopardy_column(Plan) is not None,
    )


def tab_counts(session: Session) -> dict[str, int]:
    """How many orders each tab holds: indexed counts (plans.status, plans.jeopardy)."""
    counts = dict.fromkeys((t.key for t in TABS), 0)
    by_status = session.execute(
        select(Plan.kind, Plan.status, func.count()).group_by(Plan.kind, Plan.status)
    )
    for kind, status, n in by_status:
        if kind == INVOICE:
            counts["invoices"] += n
            continue
        counts["all"] += n
        if status in OPEN_STATUSES:
            counts["in-progress"] += n
        elif status == FALLOUT:
            counts["fallout"] += n
        elif status == FulfillmentStatus.COMPLETED.value:
            counts["completed"] += n
    jeopardy = jeopardy_column(Plan)
    if jeopardy is not None:
        rows = session.execute(
            select(jeopardy, func.count())
            .where(jeopardy.in_([AT_RISK, LATE]), Plan.status.in_(UNSETTLED))
            .where(Plan.kind == ORDER)
            .group_by(jeopardy)
        )
        for level, n in rows:
            counts["at-risk" if level == AT_RISK else "late"] += n
    counts["flagged"] = int(
        session.scalar(select(func.count()).select_from(Plan).where(maybe_flagged())) or 0
    )
    counts["manual"] = int(
        session.scalar(select(func.count()).select_from(manual_waiting().distinct().subquery()))
        or 0
    )
    return counts


#: What stops a step, worst first: shown beside its order.
_BLOCKING = (
    StepState.FATALLY_FAILED.value,
    StepState.FAILED.value,
    StepState.ON_HOLD.value,
    StepState.IN_PROGRESS.value,
)


def attention(session: Session, plan_ids: list[int], now: datetime) -> dict[int, str]:
    """Per plan, the step that needs looking at and why (fallout first, then retries,
    holds, and manual steps waiting), and the step most late or at risk with its system
    and due time: an order not On Track always says why."""
    if not plan_ids:
        return {}
    blocking = _blocking(session, plan_ids)
    late = _in_jeopardy(session, plan_ids, now)
    return {
        plan_id: "; ".join(t for t in (blocking.get(plan_id), late.get(plan_id)) if t)
        for plan_id in blocking.keys() | late.keys()
    }


def _in_jeopardy(session: Session, plan_ids: list[int], now: datetime) -> dict[int, str]:
    column = jeopardy_column(Task)
    if column is None:
        return {}
    tasks = session.scalars(
        select(Task)
        .join(Plan, Plan.id == Task.plan_id)
        .where(Task.plan_id.in_(plan_ids), Task.revision == Plan.revision)
        .where(column.in_([AT_RISK, LATE]), Task.due_at.is_not(None))
    ).all()
    by_plan: dict[int, list[Task]] = {}
    for task in tasks:
        by_plan.setdefault(task.plan_id, []).append(task)
    found: dict[int, str] = {}
    for plan_id, steps in by_plan.items():
        step = worst_step(steps)
        if step is not None and step.due_at is not None:
            title = f"{step.title} on {step.system or 'internal'}"
            found[plan_id] = sentence(title, Jeopardy(str(step.jeopardy)), step.due_at, now)
    return found


def _blocking(session: Session, plan_ids: list[int]) -> dict[int, str]:
    rows = session.execute(
        select(Task.plan_id, Task.state, Task.kind, Task.title, Task.message)
        .join(Plan, Plan.id == Task.plan_id)
        .where(Task.plan_id.in_(plan_ids), Task.revision == Plan.revision)
        .where(Task.state.in_(_BLOCKING))
        .order_by(Task.id)
    ).all()
    best: dict[int, tuple[int, str]] = {}
    for plan_id, state, kind, title, message in rows:
        if state == StepState.IN_PROGRESS.value and kind != StepKind.MANUAL.value:
            continue
        rank = _BLOCKING.index(state)
        text = f"{title}: {message}" if message else f"{title} ({state.lower()})"
        if state == StepState.IN_PROGRESS.value:
            text = f"{title}: waiting for an operator"
        if plan_id not in best or rank < best[plan_id][0]:
            best[plan_id] = (rank, text)
    return {plan_id: text for plan_id, (_, text) in best.items()}
