"""Reconciling a change against a running plan: the pure diff.

The change is decomposed into the desired technical state (the steps of the desired order,
:mod:`orchestration.changes`) and compared, step by step, with the steps of the order the
plan was last decomposed from. The live task of each step decides what happens to it:

- unchanged: kept, whatever its state;
- changed: not started, Amended and replaced by the new step; running, kept and its amend
  follows it (or its compensation, then the step again); completed, its amend follows it
  (or it is Canceled, compensated and done again);
- gone: not started, Discarded; running, kept and compensated once it finishes (unless
  its system cancels it, daemon.cycle.amend); completed, Canceled and compensated;
- new: a new step.

Compensations and amends come from the rules (a step's ``compensation`` and ``amend``,
pinned on its task). They are *follow-ups* of their step, named ``STEP~undo.rN`` /
``STEP~amend.rN`` (N: the plan revision that made them), so a step changed twice has two,
and a new follow-up waits for the older ones still running. Compensations run in the
reverse order of their steps (deprovision before billing stops). Every new step names the
task it replaces. A line past its point of no return is not touched (:func:`refusals`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from orchestration.changes import changed_lines, everything_cancelled, live, touched
from orchestration.conditions import Context
from orchestration.decompose import PlannedStep, decompose, line_context
from orchestration.errors import RecordError
from orchestration.mapping import render
from orchestration.plan import rollup
from orchestration.records import LineAction, Order
from orchestration.rules import Compensation, RuleSet, StepPolicy
from orchestration.states import FulfillmentStatus, StepKind, StepState

S = StepState
FOLLOW_UP = "~"
Phase = Literal["waiting", "running", "manual", "done", "over"]


class TaskView(BaseModel):
    """What the diff needs to know of a live task."""

    model_config = ConfigDict(frozen=True)

    id: int
    step_id: str
    rule: str
    key: str
    kind: StepKind
    state: StepState
    started: bool
    title: str
    system: str | None = None
    line_id: str | None = None
    depends_on: tuple[str, ...] = ()
    ponr: bool = False
    policy: StepPolicy | None = None


class TaskMove(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: int
    to: StepState
    reason: str


class NewStep(BaseModel):
    """A step of the new revision, and the task of the old one it replaces."""

    model_config = ConfigDict(frozen=True)

    step: PlannedStep
    replaces: int | None = None


class Reconciliation(BaseModel):
    """What a change does to a plan: moves of old tasks, tasks kept, steps added."""

    model_config = ConfigDict(frozen=True)

    moves: tuple[TaskMove, ...] = ()
    carried: tuple[int, ...] = ()
    new: tuple[NewStep, ...] = ()

    @property
    def changes_anything(self) -> bool:
        return bool(self.moves or self.new)


@dataclass(frozen=True)
class Orders:
    """The order before the change (as last decomposed) and the desired one, with the
    rules' tables: what follow-up payloads are rendered from."""

    old: Order
    new: Order
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


def desired_steps(order: Order, ruleset: RuleSet) -> list[PlannedStep]:
    """The steps an order (with actions) should have: none once every line is cancelled."""
    if everything_cancelled(order):
        return []
    return decompose(live(order), ruleset)


def past_ponr(tasks: Iterable[TaskView]) -> set[str]:
    """Lines whose point of no return is behind them."""
    return {t.line_id for t in tasks if t.ponr and t.state is S.COMPLETED and t.line_id}


def refusals(tasks: Iterable[TaskView], desired: Order) -> dict[str, str]:
    """The lines a change must leave alone (past their PONR), with the reason to show."""
    past = past_ponr(tasks)
    out: dict[str, str] = {}
    for line in touched(desired):
        if line.id in past:
            what = "cancellation" if line.action is LineAction.CANCEL else "change"
            reason = (
                f"line {line.number} ({line.product_label}) is past its point of no return: "
                f"{what} refused"
            )
            out[line.id] = reason[:255]
    return out


def fulfillment_status(
    status: FulfillmentStatus,
    *,
    live_steps: int,
    superseded: bool,
    cancelled: bool,
    refused: bool,
) -> FulfillmentStatus:
    """What the Order shows once amendments are taken into account."""
    if superseded:
        return FulfillmentStatus.SUPERSEDED
    settled = status is FulfillmentStatus.COMPLETED or live_steps == 0
    if cancelled and not refused and settled:
        return FulfillmentStatus.CANCELLED
    return status


def line_status(steps: Iterable[tuple[str, StepState]]) -> FulfillmentStatus:
    """What a line shows from its live steps: Cancelled once only its undoing is left."""
    steps = list(steps)
    status = rollup(state for _, state in steps)[0]
    undone = [s for step_id, s in steps if f"{FOLLOW_UP}undo." in step_id or s is S.CANCELED]
    if status is FulfillmentStatus.COMPLETED and steps and len(undone) == len(steps):
        return FulfillmentStatus.CANCELLED
    return status


def is_follow_up(step_id: str) -> bool:
    return FOLLOW_UP in step_id


def base_of(step_id: str) -> str:
    return step_id.split(FOLLOW_UP, 1)[0]


def reconcile(
    old_steps: Sequence[PlannedStep],
    new_steps: Sequence[PlannedStep],
    tasks: Sequence[TaskView],
    orders: Orders,
    revision: int,
) -> Reconciliation:
    """The diff of a plan's live ``tasks`` (planned as ``old_steps``) against ``new_steps``.

    ``revision`` is the plan revision being made; it names the follow-ups.
    """
    return _Diff(old_steps, new_steps, tasks, orders, revision).run()


def _spec(step: PlannedStep) -> tuple[Any, ...]:
    # What makes a step the same step; titles (line numbers) and actions do not.
    return (
        step.kind,
        step.system,
        step.action,
        step.payload,
        step.depends_on,
        step.ponr,
        step.not_before,
        step.delay,
        step.state,
        step.message,
    )


def _phase(task: TaskView) -> Phase:
    state = task.state
    if state is S.COMPLETED:
        return "done"
    if state in (S.SKIPPED, S.AMENDED, S.DISCARDED, S.CANCELED):
        return "over"
    if state is S.IN_PROGRESS and task.kind is StepKind.MANUAL:
        return "manual"
    if state in (S.IN_PROGRESS, S.FAILED) or (state is S.ON_HOLD and task.started):
        return "running"  # sent, perhaps with an effect already
    return "waiting"


class _Diff:
    def __init__(
        self,
        old_steps: Sequence[PlannedStep],
        new_steps: Sequence[PlannedStep],
        tasks: Sequence[TaskView],
        orders: Orders,
        revision: int,
    ) -> None:
        self.old = {s.step_id: s for s in old_steps}
        self.new = {s.step_id: s for s in new_steps}
        self.tasks = {t.step_id: t for t in tasks if not is_follow_up(t.step_id)}
        self.follow: dict[str, list[TaskView]] = defaultdict(list)
        for t in tasks:
            if is_follow_up(t.step_id):
                self.follow[base_of(t.step_id)].append(t)
        self.orders = orders
        self.revision = revision
        self.moves: list[TaskMove] = []
        self.carried: list[int] = []
        self.added: list[tuple[PlannedStep, int | None]] = []
        self.undo_of: dict[str, str] = {}  # step id -> its compensation made here

    def run(self) -> Reconciliation:
        for step_id, task in self.tasks.items():
            wanted = self.new.get(step_id)
            old = self.old.get(step_id)
            if wanted is None:
                self._gone(task)
            elif old is not None and _spec(old) == _spec(wanted):
                self._keep(task)
            else:
                self._changed(task, wanted)
        for step_id, wanted in self.new.items():
            if step_id not in self.tasks:
                self._add(wanted, None)
        for base, tasks in self.follow.items():
            if base not in self.tasks:
                self.carried.extend(t.id for t in tasks)  # what they follow is gone already
        return self._result()

    # -- per step --------------------------------------------------------------------------
    def _keep(self, task: TaskView) -> None:
        self.carried.append(task.id)
        self.carried.extend(t.id for t in self.follow.get(task.step_id, []))

    def _gone(self, task: TaskView) -> None:
        phase = _phase(task)
        comp = task.policy.compensation if task.policy else None
        if phase == "waiting":
            self._move(task, S.DISCARDED, "dropped by the change before it started")
            self._settle_follow_ups(task, waiting=S.DISCARDED)
        elif phase == "manual":
            self._move(task, S.CANCELED, "no longer needed after the change")
            self._settle_follow_ups(task, waiting=S.DISCARDED)
        elif phase == "running":
            self.carried.append(task.id)
            running = self._settle_follow_ups(task, waiting=S.DISCARDED)
            if comp is not None:
                self._undo(task, comp, (task.step_id, *running))
        elif phase == "done":
            self._move(task, S.CANCELED, "undone by the change")
            running = self._settle_follow_ups(task, waiting=S.DISCARDED, done=S.CANCELED)
            if comp is not None:
                self._undo(task, comp, tuple(running))

    def _changed(self, task: TaskView, wanted: PlannedStep) -> None:
        phase = _phase(task)
        policy = task.policy
        amend = policy.amend if policy else None
        comp = policy.compensation if policy else None
        if phase == "waiting":
            self._move(task, S.AMENDED, "replaced by the change before it started")
            self._settle_follow_ups(task, waiting=S.DISCARDED)
            self._add(wanted, task.id)
        elif phase in ("manual", "over") or (amend is None and comp is None):
            self._keep(task)  # a person's work, a skipped step, or nothing can redo it
        elif phase == "running" or amend is not None:
            self.carried.append(task.id)
            running = self._settle_follow_ups(task, waiting=S.AMENDED)
            after = (task.step_id,) if phase == "running" else ()
            if amend is not None:
                self._amend(task, amend, wanted, (*after, *running))
            else:
                assert comp is not None
                undo = self._undo(task, comp, (*after, *running))
                redo = f"{task.step_id}{FOLLOW_UP}redo.r{self.revision}"
                self._add(_after(wanted, undo, redo), task.id)
        else:  # done, no amend: undo it, then do it again as it now reads
            assert comp is not None
            self._move(task, S.CANCELED, "undone by the change, to be done again")
            running = self._settle_follow_ups(task, waiting=S.DISCARDED, done=S.CANCELED)
            undo = self._undo(task, comp, tuple(running))
            self._add(_after(wanted, undo, wanted.step_id), task.id)

    def _settle_follow_ups(
        self, task: TaskView, *, waiting: StepState, done: StepState | None = None
    ) -> list[str]:
        """Earlier follow-ups of a step a change touches again: those not started are
        replaced, finished ones kept (or undone with their step); the running ones' ids."""
        running: list[str] = []
        for f in self.follow.get(task.step_id, []):
            phase = _phase(f)
            if phase == "waiting":
                self._move(f, waiting, "replaced by a later change")
            elif phase == "done" and done is not None:
                self._move(f, done, "undone with the step it changed")
            elif phase != "over":
                self.carried.append(f.id)
                if phase in ("running", "manual"):
                    running.append(f.step_id)
        return running

    # -- follow-ups ------------------------------------------------------------------------
    def _undo(self, task: TaskView, comp: Compensation, after: tuple[str, ...]) -> str:
        step_id = f"{task.step_id}{FOLLOW_UP}undo.r{self.revision}"
        ctx, lines = self._context(task.line_id, old=True)
        title = comp.title or f"Undo: {task.title}"
        self._add(self._follow_up(task, comp, step_id, title, after, ctx, lines), task.id)
        self.undo_of[task.step_id] = step_id
        return step_id

    def _amend(
        self, task: TaskView, amend: Compensation, wanted: PlannedStep, after: tuple[str, ...]
    ) -> None:
        step_id = f"{task.step_id}{FOLLOW_UP}amend.r{self.revision}"
        ctx, lines = self._context(task.line_id, old=False)
        title = amend.title or f"Change: {task.title}"
        deps = (*after, *wanted.depends_on)
        self._add(self._follow_up(task, amend, step_id, title, deps, ctx, lines), task.id)

    def _follow_up(
        self,
        task: TaskView,
        spec: Compensation,
        step_id: str,
        title: str,
        after: tuple[str, ...],
        ctx: Context,
        lines: list[Context],
    ) -> PlannedStep:
        state, message, payload = S.PENDING, "", {}
        try:
            payload = render(spec.payload, ctx, lines, self.orders.tables)
        except RecordError as exc:
            state, message = S.FATALLY_FAILED, str(exc)[:255]
        policy = task.policy
        return PlannedStep(
            step_id=step_id,
            rule=task.rule,
            key=task.key,
            kind=spec.kind,
            system=spec.system,
            action=spec.action,
            title=title[:255],
            line_id=task.line_id,
            depends_on=tuple(dict.fromkeys(after)),
            payload=payload,
            state=state,
            message=message,
            policy=StepPolicy(retry=policy.retry, sla=policy.sla) if policy else None,
        )

    def _context(self, line_id: str | None, *, old: bool) -> tuple[Context, list[Context]]:
        """What a follow-up's payload reads: the line (or order) as it was, for an undo; as
        it now reads, with only the changed lines in ``each_line``, for an amend."""
        order = self.orders.old if old else self.orders.new
        others = self.orders.new if old else self.orders.old
        each = list(order.lines) if old else changed_lines(order)
        lines = [line_context(order, line) for line in each]
        if line_id is None:
            return {"order": order.fields}, lines
        found = next((ln for ln in order.lines if ln.id == line_id), None)
        if found is None:
            found = next((ln for ln in others.lines if ln.id == line_id), None)
            order = others
        if found is None:
            return {"order": order.fields}, lines
        return line_context(order, found), lines

    # -- bookkeeping -----------------------------------------------------------------------
    def _move(self, task: TaskView, to: StepState, reason: str) -> None:
        self.moves.append(TaskMove(task_id=task.id, to=to, reason=reason))

    def _add(self, step: PlannedStep, replaces: int | None) -> None:
        self.added.append((step, replaces))

    def _result(self) -> Reconciliation:
        carried = set(self.carried)
        present = {t.step_id for t in self._all_tasks() if t.id in carried}
        present |= {step.step_id for step, _ in self.added}
        new: list[NewStep] = []
        for step, replaces in self.added:
            deps = list(step.depends_on)
            base = base_of(step.step_id)
            if self.undo_of.get(base) == step.step_id:
                deps += self._reverse_order(base)
            kept = tuple(d for d in dict.fromkeys(deps) if d in present and d != step.step_id)
            step = step.model_copy(update={"depends_on": kept})
            new.append(NewStep(step=step, replaces=replaces))
        return Reconciliation(
            moves=tuple(self.moves),
            carried=tuple(dict.fromkeys(self.carried)),
            new=tuple(new),
        )

    def _reverse_order(self, base: str) -> list[str]:
        """Compensations of the steps that depended on ``base``: they go first."""
        out = []
        for other, undo in self.undo_of.items():
            task = self.tasks.get(other)
            if task is not None and base in task.depends_on:
                out.append(undo)
        return out

    def _all_tasks(self) -> list[TaskView]:
        return [*self.tasks.values(), *(t for ts in self.follow.values() for t in ts)]


def _after(step: PlannedStep, dependency: str, step_id: str) -> PlannedStep:
    deps = (dependency, *step.depends_on)
    return step.model_copy(update={"step_id": step_id, "depends_on": deps})
