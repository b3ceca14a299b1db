"""The plan view's queries: one order's steps placed on the graph, its decomposition (which
commercial line became which steps, by which rule, with which payload) and a step's
details with its audit trail."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.store.accounts import account_names
from daemon.store.models import Plan, SourceRecord, Task, TaskEvent
from daemon.web.canvas.layout import ORDER_ROW, Graph, StepIn, lane_of, layout
from daemon.web.canvas.orders import AT_RISK, LATE, UNSETTLED, jeopardy_of
from orchestration.records import Order
from orchestration.states import StepKind, StepState

#: States an operator can act on from the canvas, with the actions that apply.
ACTIONS: dict[str, tuple[str, ...]] = {
    StepState.FATALLY_FAILED.value: ("retry", "complete", "skip"),
    StepState.FAILED.value: ("retry",),
}


def actions_for(task: Task) -> tuple[str, ...]:
    """What the canvas offers for a step (the store decides for good: resolve_task)."""
    if task.kind == StepKind.MANUAL.value and task.state == StepState.IN_PROGRESS.value:
        return ("complete", "skip")
    return ACTIONS.get(task.state, ())


@dataclass
class Step:
    id: int
    step_id: str
    title: str
    kind: str
    system: str | None
    action: str | None
    lane: str
    state: str
    jeopardy: str
    due_at: datetime | None
    attempts: int
    message: str
    rule: str
    key: str
    line_id: str | None
    depends_on: list[str]
    payload: dict[str, Any]
    external_ref: str | None
    ponr: bool
    not_before: datetime | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    actions: tuple[str, ...] = ()

    @property
    def short_title(self) -> str:
        """The title without its "(line 2, ADD-SSO)" tail, which the graph shows below."""
        found = _LINE_TAIL.match(self.title)
        return found.group(1) if found else self.title

    @property
    def line_label(self) -> str:
        found = _LINE_TAIL.match(self.title)
        return found.group(2) if found else ""


_LINE_TAIL = re.compile(r"^(.*?)\s*\((line \d+[^)]*)\)$")


@dataclass
class Line:
    """A commercial line (or the order as a whole) and the steps made from it."""

    line_id: str | None
    number: int | None
    product: str
    quantity: str
    action: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class PlanView:
    id: int
    order_id: str
    order_number: str
    account_id: str | None
    account_name: str | None  # as Salesforce gave it (daemon.store.accounts)
    kind: str
    status: str
    state: str
    jeopardy: str
    progress: int
    revision: int
    rules_version: str
    written_status: str | None
    writeback_error: str | None
    flag: str | None
    created_at: datetime
    updated_at: datetime
    age_seconds: int
    steps: list[Step]
    graph: Graph
    lines: list[Line]
    earlier_steps: int
    attention: str | None  # the leftmost step needing a look: the graph opens on it


def needs_attention(step: Step) -> bool:
    """Fallout, a retry, a hold, an operator's step, or a step At Risk or Late."""
    held = step.state == StepState.ON_HOLD.value
    return bool(step.actions) or held or step.jeopardy in (AT_RISK, LATE)


def first_attention(steps: list[Step], graph: Graph) -> str | None:
    """The step needing attention that comes first left to right, then top to bottom."""
    boxes = graph.boxes
    waiting = [s.step_id for s in steps if needs_attention(s)]
    return min(waiting, key=lambda sid: (boxes[sid].x, boxes[sid].y), default=None)


def step_of(task: Task, settled: bool) -> Step:
    return Step(
        id=task.id,
        step_id=task.step_id,
        title=task.title,
        kind=task.kind,
        system=task.system,
        action=task.action,
        lane=lane_of(task.kind, task.system),
        state=task.state,
        jeopardy=jeopardy_of(task, settled),
        due_at=getattr(task, "due_at", None),
        attempts=task.attempts,
        message=task.message,
        rule=task.rule,
        key=task.key,
        line_id=task.line_id,
        depends_on=list(task.depends_on),
        payload=task.payload,
        external_ref=task.external_ref,
        ponr=task.ponr,
        not_before=task.not_before,
        next_attempt_at=task.next_attempt_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        updated_at=task.updated_at,
        actions=actions_for(task),
    )


_FINISHED = {StepState.COMPLETED.value, StepState.SKIPPED.value, StepState.CANCELED.value}


def plan_view(session: Session, plan_id: int, now: datetime) -> PlanView | None:
    """One plan, its live steps laid out, its decomposition; None when there is no such plan."""
    plan = session.get(Plan, plan_id)
    if plan is None:
        return None
    live = [t for t in plan.tasks if t.revision == plan.revision]
    settled_plan = plan.status not in UNSETTLED
    steps = [step_of(t, settled_plan or t.state in _FINISHED) for t in live]
    lines = decomposition(session, plan, steps)
    graph = layout(
        [
            StepIn(s.step_id, s.lane, s.line_id or ORDER_ROW, tuple(s.depends_on), s.id)
            for s in steps
        ],
        {line.line_id or ORDER_ROW: row_label(line) for line in lines},
    )
    return PlanView(
        id=plan.id,
        order_id=plan.order_id,
        order_number=plan.order_number,
        account_id=plan.account_id,
        account_name=account_names(session, [plan.order_id]).get(plan.order_id),
        kind=plan.kind,
        status=plan.status,
        state=plan.state,
        jeopardy=jeopardy_of(plan, settled_plan),
        progress=plan.progress,
        revision=plan.revision,
        rules_version=plan.rules_version,
        written_status=plan.written_status,
        writeback_error=plan.writeback_error,
        flag=plan.flag,
        created_at=plan.created_at,
        updated_at=plan.updated_at,
        age_seconds=max(0, int((now - plan.created_at).total_seconds())),
        steps=steps,
        graph=graph,
        lines=lines,
        earlier_steps=len(plan.tasks) - len(live),
        attention=first_attention(steps, graph),
    )


def row_label(line: Line) -> tuple[str, str]:
    """A line's row on the graph: its number and quantity ("#2", times 5), its product code."""
    if line.line_id is None:
        return "Order", "as a whole"
    number = f"#{line.number}" if line.number else "Line"
    label = f"{number} \u00d7 {line.quantity}" if line.quantity else number
    return label, line.product.split(" · ")[0]


def decomposition(session: Session, plan: Plan, steps: list[Step]) -> list[Line]:
    """The order's lines as polled, each with the steps its rules made; the order-level
    steps (one ERP sales order for the whole order, fallout without a line) first."""
    source = session.get(SourceRecord, ("Order", plan.order_id))
    polled: dict[str, Line] = {}
    if source is not None:
        try:
            order = Order.from_record(source.data)
        except (ValidationError, KeyError, ValueError):
            order = None
        for line in order.lines if order else ():
            product = line.product
            name = str(product.get("ProductCode") or product.get("Name") or "")
            if product.get("Name") and product.get("ProductCode"):
                name = f"{product['ProductCode']} · {product['Name']}"
            polled[line.id] = Line(
                line_id=line.id,
                number=line.number,
                product=name or "(no product)",
                quantity=_quantity(line.fields.get("Quantity")),
                action=line.action.value,
            )
    whole = Line(line_id=None, number=None, product="the order as a whole", quantity="", action="")
    for step in steps:
        if step.line_id is None:
            whole.steps.append(step)
            continue
        if step.line_id not in polled:
            polled[step.line_id] = Line(step.line_id, None, "(line not polled)", "", "")
        polled[step.line_id].steps.append(step)
    lines = sorted(polled.values(), key=lambda line: (line.number or 10**9, line.line_id or ""))
    return ([whole] if whole.steps else []) + lines


def _quantity(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


@dataclass
class Event:
    at: datetime
    from_state: str | None
    to_state: str
    reason: str
    actor: str


@dataclass
class StepDetail:
    step: Step
    plan_id: int
    order_number: str
    events: list[Event]
    definition: dict[str, Any] | None
    idempotency_key: str


def step_detail(session: Session, task_id: int) -> StepDetail | None:
    """A step with its audit trail, oldest event first; None when there is no such task."""
    task = session.get(Task, task_id)
    if task is None:
        return None
    plan = task.plan
    events = session.scalars(
        select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    )
    settled = plan.status not in UNSETTLED or task.state in _FINISHED
    return StepDetail(
        step=step_of(task, settled),
        plan_id=plan.id,
        order_number=plan.order_number,
        events=[Event(e.at, e.from_state, e.to_state, e.reason, e.actor) for e in events],
        definition=task.definition,
        idempotency_key=task.idempotency_key,
    )
