"""Dispatching callouts: intent committed before the call, result after it, in parallel.

Due callouts are claimed in batches, each in one short transaction that writes the intent
(In Progress, ``dispatch_started_at``) and this instance's lease (daemon.cycle.claims), then
sent, up to ``Context.concurrency`` calls in flight per system, and the results are
committed as they come in, each with its lease's end. A crash between the two commits
leaves the intent behind; once the reaper finds its instance dead (daemon.cluster.instances;
after a restart on SQLite: at once) the next claim resends it with the same idempotency
key, and the system answers with what it did the first time (a dispatch interrupted again
and again falls out: daemon.cycle.claims).

No answer stops the batch: whatever a call raises becomes that task's retriable error,
and answers whose recording fails are recorded again one by one, so one bad task never
loses the others' answers.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from prometheus_client import Histogram
from sqlalchemy import ScalarResult, Select, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from daemon import store
from daemon.context import Context
from daemon.cycle import claims
from daemon.cycle.advance import advance_plan
from daemon.cycle.fallout import fail
from daemon.cycle.jeopardy import SlaCache
from daemon.cycle.systems import hold_for_offline, offline_systems
from daemon.store.models import Plan, Task
from downstream.protocol import DownstreamSystem, Outcome, SubmitResult, SystemOffline, TaskRequest
from orchestration.contracts import PayloadError
from orchestration.errors import RecordError, RetriableError
from orchestration.states import StepState

log = logging.getLogger(__name__)

_Row = TypeVar("_Row")


#: Answers committed per transaction at most (those that came in since the last commit).
RECORD_BATCH = 100

#: Claim rounds per dispatch at most: the leader's other phases are not kept waiting (an
#: instance that does not lead has nothing else to do, and goes on ten times longer).
MAX_ROUNDS = 20

#: Observed here, exported by the listener's /metrics (daemon.web.metrics).
DISPATCH_LATENCY = Histogram(
    "orderflow_dispatch_latency_seconds",
    "Seconds a downstream system took to answer a task submission.",
    ["system"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,
)


def submit_timed(system: DownstreamSystem, request: TaskRequest) -> SubmitResult:
    """``system.submit(request)``, its duration observed (errors included)."""
    started = time.monotonic()
    try:
        return system.submit(request)
    finally:
        DISPATCH_LATENCY.labels(request.system).observe(time.monotonic() - started)


def dispatch(ctx: Context) -> int:
    """Send every Ready callout, and resend dispatches a crash interrupted. Returns the count.

    Batch after batch, so several instances share the work (each claims a batch at a time).
    """
    batch = _batch(ctx)
    sent = 0
    for _ in range(MAX_ROUNDS if ctx.membership.leading else 10 * MAX_ROUNDS):
        claimed = _dispatch_batch(ctx, batch)
        sent += claimed
        if claimed < batch:
            break
    return sent


def _dispatch_batch(ctx: Context, batch: int) -> int:
    claimed = claim_requests(ctx, batch)
    by_system: dict[str, list[tuple[int, TaskRequest]]] = defaultdict(list)
    for task_id, request in claimed:
        by_system[request.system].append((task_id, request))
    pools = [
        (ThreadPoolExecutor(min(ctx.concurrency, len(work)), f"dispatch-{system}"), work)
        for system, work in sorted(by_system.items())
    ]
    pending: set[Future[Answer | None]] = set()
    try:
        for pool, work in pools:
            pending.update(pool.submit(send, ctx, task_id, request) for task_id, request in work)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            # An unexpected error (the store is gone) stops the cycle loudly.
            answers = [answer for future in done if (answer := future.result()) is not None]
            for start in range(0, len(answers), RECORD_BATCH):
                record_answers(ctx, answers[start : start + RECORD_BATCH])
    finally:
        for pool, _ in pools:
            pool.shutdown(wait=True)
    return len(claimed)


def _batch(ctx: Context) -> int:
    """Callouts claimed at a time: two rounds of calls in flight for every system."""
    return ctx.concurrency * max(len(ctx.systems), 1) * 2


def claim_requests(
    ctx: Context,
    limit: int | None = None,
    *,
    system: str | None = None,
    busy: Collection[int] = (),
) -> list[tuple[int, TaskRequest]]:
    """Commit the intent and lease of up to ``limit`` due callouts (of ``system`` only, if
    given; ``busy``: this process's dispatches still out); the requests to send."""
    limit = limit or _batch(ctx)
    now = ctx.clock()
    member = ctx.membership
    with ctx.sessions.begin() as session:
        due = claims.claim(
            session,
            member.id,
            now,
            member.lease,
            limit,
            shared=member.shared,
            max_resends=ctx.max_resends,
            system=system,
            busy=busy,
        )
        if not due:
            return []
        plan_ids = {task.plan_id for task in due}
        rows = session.execute(select(Plan.id, Plan.order_id).where(Plan.id.in_(plan_ids)))
        order_ids = {plan_id: order_id for plan_id, order_id in rows}
        return [(task.id, _request(task, order_ids[task.plan_id])) for task in due]


@dataclass(frozen=True)
class Answer:
    """What a system said to one dispatch: a result, or a retriable error."""

    task_id: int
    result: SubmitResult | None
    error: RetriableError | None = None


def send(ctx: Context, task_id: int, request: TaskRequest) -> Answer | None:
    system = ctx.systems.get(request.system)
    try:
        if system is None:
            raise RecordError(f"no system named {request.system!r} is configured")
        # ids as the system speaks; the call's duration goes to the dispatch latency metric
        request = ctx.outbound(request, ctx.clock())
        # what is sent must fit the rules' contract: else Fallout, and nothing is sent
        ctx.ruleset.check_payload(
            request.rule, request.key, request.system, request.action, request.payload
        )
        result = submit_timed(system, request)
    except SystemOffline as exc:
        hold_for_offline(ctx, task_id, str(exc))  # On Hold, the attempt given back
        return None
    except RetriableError as exc:
        return Answer(task_id, None, exc)
    except PayloadError as exc:
        return Answer(
            task_id, SubmitResult(outcome=Outcome.FAILED, message=str(exc)[:255], code="payload")
        )
    except RecordError as exc:
        return Answer(
            task_id, SubmitResult(outcome=Outcome.FAILED, message=str(exc)[:255], code="config")
        )
    except Exception as exc:  # no answer may stop the others (see the module's docstring)
        log.exception("%s: the call for task %d failed unexpectedly", request.system, task_id)
        what = f"{request.system}: unexpected {type(exc).__name__}: {exc}"
        return Answer(task_id, None, RetriableError(what, code="unexpected"))
    return Answer(task_id, result)


def _request(task: claims.Claim, order_id: str) -> TaskRequest:
    return TaskRequest(
        system=task.system or "",
        action=task.action or "",
        idempotency_key=task.idempotency_key,
        step_ref=f"{order_id}/{task.step_id}/r{task.revision}",
        payload=task.payload,
        correlation=task.correlation_token,
        rule=task.rule,
        key=task.key,
    )


def record_answers(ctx: Context, answers: list[Answer], *, advance: bool = False) -> None:
    """Record ``answers`` together; if that fails, each on its own, so a bad one (logged,
    its intent left to be resent) does not lose the others. A store that is gone is not
    retried answer by answer: the cycle stops and the intents stay."""
    try:
        _record(ctx, answers, advance)
    except OperationalError:
        raise
    except Exception:
        if len(answers) == 1:
            log.exception("recording the answer for task %d failed", answers[0].task_id)
            return
        for answer in answers:
            record_answers(ctx, [answer], advance=advance)


def _record(ctx: Context, answers: list[Answer], advance: bool = False) -> None:
    """Commit a batch of answers in one transaction: each step's result and its plan's new
    rollup together, the lease ended; with ``advance`` (the pipeline), each plan advanced
    too, so the steps that follow are due the moment this commits. A crash before the
    commit loses no effect: the intents stay, and the resends carry the same idempotency
    keys.

    Locked, the plans first and in id order, as every other writer locks them (plans, then
    their tasks), so no two transactions wait on each other in a circle; and a callback or
    another instance's resend recording the same task waits for this one."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        ids = [a.task_id for a in answers]
        plan_ids = set(session.scalars(select(Task.plan_id).where(Task.id.in_(ids))))
        query = select(Plan).where(Plan.id.in_(plan_ids)).order_by(Plan.id)
        # Each rollup reads all of its plan's tasks: loaded with the plans.
        plans = {p.id: p for p in _locked(session, query.options(selectinload(Plan.tasks)))}
        by_id = select(Task).where(Task.id.in_(ids)).order_by(Task.id)
        tasks = {t.id: t for t in _locked(session, by_id)}
        touched: set[int] = set()
        # One flush at the end, not one per answer (the keys learned below query the store).
        with session.no_autoflush:
            for answer in answers:
                task = tasks.get(answer.task_id)
                if task is None or task.state != StepState.IN_PROGRESS:
                    continue  # its callback arrived before this answer and finished it
                _apply(ctx, session, task, answer, now)
                ctx.answered(session, plans[task.plan_id].order_id, task, now)  # system's key
                touched.add(task.plan_id)
        for plan_id in sorted(touched):
            store.refresh_rollup(plans[plan_id], now)
        if advance and touched:
            offline, slas = offline_systems(ctx, session), SlaCache()
            for plan_id in sorted(touched):
                advance_plan(ctx, session, plans[plan_id], now, offline, slas)


def _locked(session: Session, query: Select[_Row]) -> ScalarResult[_Row]:
    """The rows of ``query``, locked until the commit and read afresh."""
    locked = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(locked)


def _apply(ctx: Context, session: Session, task: Task, answer: Answer, now: datetime) -> None:
    result, error = answer.result, answer.error
    task.dispatch_started_at = None
    task.resends = 0
    claims.release(task)
    if result is not None and result.outcome is Outcome.COMPLETED:
        task.external_ref = result.external_ref
        task.message = ""
        store.transition(session, task, StepState.COMPLETED, "system answered completed", now)
    elif result is not None and result.outcome is Outcome.ACCEPTED:
        task.external_ref = result.external_ref
        task.message = f"accepted by {task.system}, waiting for completion"
    elif result is not None:
        code = result.code or "failed"
        fail(
            session,
            task,
            result.message or f"{task.system} refused the task ({code})",
            now,
            code=code,
            retriable=False,
            rules=ctx.ruleset,
            rng=ctx.rng,
        )
    else:
        assert error is not None
        fail(
            session,
            task,
            str(error),
            now,
            code=error.code,
            retriable=True,
            rules=ctx.ruleset,
            rng=ctx.rng,
            retry_after=error.retry_after,
        )
