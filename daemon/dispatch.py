"""Dispatching callouts: intent committed before the call, result after it, in parallel.

Due callouts are claimed in batches, each in one short transaction that writes the intent
(In Progress, ``dispatch_started_at``) and this instance's lease (daemon.claims), then
sent, up to ``Context.concurrency`` calls in flight per system, and each result is
committed on its own, with the lease's end, as soon as it arrives. A crash between the two
commits leaves the intent behind; once the reaper finds its instance dead (daemon.instances;
after a restart on SQLite: at once) the next claim resends it with the same idempotency
key, and the system answers with what it did the first time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon import claims, store
from daemon.context import Context
from daemon.fallout import fail
from daemon.metrics import submit_timed
from daemon.models import Plan, Task
from daemon.systems import correlation_for, hold_for_offline
from downstream.protocol import Outcome, SubmitResult, SystemOffline, TaskRequest
from orchestration.errors import RecordError, RetriableError
from orchestration.states import StepState

log = logging.getLogger(__name__)


#: Claim rounds per dispatch at most: the leader's other phases are not kept waiting (an
#: instance that does not lead has nothing else to do, and goes on ten times longer).
MAX_ROUNDS = 20


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
    claimed = _claim(ctx, batch)
    by_system: dict[str, list[tuple[int, TaskRequest]]] = defaultdict(list)
    for task_id, request in claimed:
        by_system[request.system].append((task_id, request))
    pools = [
        (ThreadPoolExecutor(min(ctx.concurrency, len(work)), f"dispatch-{system}"), work)
        for system, work in sorted(by_system.items())
    ]
    futures: list[Future[None]] = []
    try:
        for pool, work in pools:
            futures.extend(pool.submit(_send, ctx, task_id, request) for task_id, request in work)
        wait(futures)
    finally:
        for pool, _ in pools:
            pool.shutdown(wait=True)
    for future in futures:
        future.result()  # an unexpected error (the store is gone) stops the cycle loudly
    return len(claimed)


def _batch(ctx: Context) -> int:
    """Callouts claimed at a time: two rounds of calls in flight for every system."""
    return ctx.concurrency * max(len(ctx.systems), 1) * 2


def _claim(ctx: Context, limit: int | None = None) -> list[tuple[int, TaskRequest]]:
    """Commit the intent and lease of up to ``limit`` due callouts; the requests to send."""
    limit = limit or _batch(ctx)
    now = ctx.clock()
    member = ctx.membership
    with ctx.sessions.begin() as session:
        due = claims.claim(session, member.id, now, member.lease, limit, shared=member.shared)
        return [(task.id, _request(task, session)) for task in due]


def _send(ctx: Context, task_id: int, request: TaskRequest) -> None:
    system = ctx.systems.get(request.system)
    try:
        if system is None:
            raise RecordError(f"no system named {request.system!r} is configured")
        # ids as the system speaks; the call's duration goes to the dispatch latency metric
        result = submit_timed(system, ctx.outbound(request, ctx.clock()))
    except SystemOffline as exc:
        hold_for_offline(ctx, task_id, str(exc))  # On Hold, the attempt given back
    except RetriableError as exc:
        _record(ctx, task_id, None, exc)
    except RecordError as exc:
        failed = SubmitResult(outcome=Outcome.FAILED, message=str(exc)[:255], code="config")
        _record(ctx, task_id, failed, None)
    else:
        _record(ctx, task_id, result, None)


def _request(task: Task, session: Session) -> TaskRequest:
    plan = session.get(Plan, task.plan_id)
    assert plan is not None
    return TaskRequest(
        system=task.system or "",
        action=task.action or "",
        idempotency_key=task.idempotency_key,
        step_ref=f"{plan.order_id}/{task.step_id}/r{task.revision}",
        payload=task.payload,
        correlation=correlation_for(task),
    )


def _record(
    ctx: Context, task_id: int, result: SubmitResult | None, error: RetriableError | None
) -> None:
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        # Locked, the plan first as the leader's phases lock them (plans, then their tasks),
        # so the two never wait on each other in a circle; and a callback or another
        # instance's resend recording the same task waits for this one.
        plan_id = session.scalar(select(Task.plan_id).where(Task.id == task_id))
        session.get(Plan, plan_id, with_for_update=True, populate_existing=True)
        task = session.get(Task, task_id, with_for_update=True, populate_existing=True)
        assert task is not None
        if task.state != StepState.IN_PROGRESS:
            return  # its callback arrived before this answer and finished it
        task.dispatch_started_at = None
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
        plan = session.get(Plan, task.plan_id)
        assert plan is not None
        ctx.answered(session, plan.order_id, task, now)  # its reference: the system's key
        store.refresh_rollup(plan, now)
