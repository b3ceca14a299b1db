"""Downstream systems online and offline: the recorded state, and the phase that keeps it.

A system goes offline two ways: an operator says so (``orderflow system offline NAME``,
mode ``manual``; only ``orderflow system online NAME`` brings it back), or the daemon sees
``ORDERFLOW_{NAME}_OFFLINE_AFTER`` connection failures in a row (mode ``auto``; probed
every ``ORDERFLOW_{NAME}_PROBE_INTERVAL`` seconds and back online when it answers). While
a system is offline its Ready callouts wait On Hold (the engine's ``advance(offline=...)``)
and go back to Ready when it returns, without using up a retry.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon import store
from daemon.context import Context
from daemon.store.models import Plan, SystemState, Task
from downstream.guard import GuardedSystem
from orchestration.states import StepState

log = logging.getLogger(__name__)


def state_of(session: Session, name: str, now: datetime) -> SystemState:
    """The system's row, made on first use."""
    row = session.get(SystemState, name)
    if row is None:
        row = SystemState(name=name, offline=False, mode="", reason="", updated_at=now)
        session.add(row)
    return row


def recorded_offline(session: Session) -> set[str]:
    return set(session.scalars(select(SystemState.name).where(SystemState.offline.is_(True))))


def offline_systems(ctx: Context, session: Session) -> set[str]:
    """Systems offline now: as recorded, and any that tripped since the last check.

    The record wins over a connector's own flag: an operator's ``system online`` (another
    process) is seen here at once, so a pass that runs before the next cycle's
    :func:`check_systems` (a jeopardy sweep) releases the held steps instead of putting
    their plans to sleep on a stale "offline".
    """
    guarded = {n: s for n, s in ctx.systems.items() if isinstance(s, GuardedSystem)}
    offline = recorded_offline(session) | {n for n, s in guarded.items() if s.trip_pending}
    _follow(guarded, offline)
    return offline


def _follow(guarded: dict[str, GuardedSystem], offline: set[str]) -> None:
    """Tell every connector whether it is offline (calls to one that is are held)."""
    for name, system in guarded.items():
        if system.offline != (name in offline):
            system.set_offline(name in offline)


def set_offline(
    session: Session,
    name: str,
    reason: str,
    now: datetime,
    *,
    manual: bool,
    probe_at: datetime | None = None,
) -> bool:
    """Record the system offline; False when it already was."""
    row = state_of(session, name, now)
    if row.offline and (row.mode == "manual" or not manual):
        return False
    row.offline, row.mode, row.reason = True, "manual" if manual else "auto", reason[:255]
    row.since, row.next_probe_at, row.updated_at = now, probe_at, now
    store.wake_open_plans(session, now)  # their Ready callouts to it go On Hold
    return True


def set_online(session: Session, name: str, reason: str, now: datetime) -> bool:
    """Record the system online; False when it already was."""
    row = state_of(session, name, now)
    if not row.offline:
        return False
    row.offline, row.mode, row.reason = False, "", reason[:255]
    row.since, row.next_probe_at, row.updated_at = now, None, now
    store.wake_open_plans(session, now)  # their On Hold callouts to it are Ready again
    return True


def check_systems(ctx: Context) -> None:
    """Record systems that tripped, probe those due, and tell every connector its state."""
    now = ctx.clock()
    guarded = {n: s for n, s in ctx.systems.items() if isinstance(s, GuardedSystem)}
    with ctx.sessions.begin() as session:
        for name, system in guarded.items():
            if system.take_trip():
                reason = f"{system.failures} connection failures in a row"
                probe_at = now + timedelta(seconds=system.probe_interval)
                if set_offline(session, name, reason, now, manual=False, probe_at=probe_at):
                    log.warning("%s is offline: %s; probing from %s", name, reason, probe_at)
        rows = {r.name: r for r in session.scalars(select(SystemState))}
        due = [
            name
            for name, row in rows.items()
            if name in guarded
            and row.offline
            and row.mode == "auto"
            and (row.next_probe_at is None or row.next_probe_at <= now)
        ]
    # Probes go out with no transaction open: a slow system must not hold the store.
    answered = {name: guarded[name].probe() for name in due}
    with ctx.sessions.begin() as session:
        for name, ok in answered.items():
            row = state_of(session, name, now)
            if ok:
                set_online(session, name, "answered a probe", now)
                log.info("%s answers again: back online", name)
            else:
                row.next_probe_at = now + timedelta(seconds=guarded[name].probe_interval)
                row.updated_at = now
        offline = recorded_offline(session)
    _follow(guarded, offline)


def hold_for_offline(ctx: Context, task_id: int, reason: str) -> None:
    """A dispatch found its system offline: the step waits On Hold, its attempt given back."""
    now = ctx.clock()
    with ctx.sessions.begin() as session:
        task = session.get(Task, task_id)
        if task is None or task.state != StepState.IN_PROGRESS:
            return
        task.dispatch_started_at = None
        task.attempts = max(task.attempts - 1, 0)
        task.message = reason[:255]
        store.transition(session, task, StepState.ON_HOLD, reason, now)
        plan = session.get(Plan, task.plan_id)
        if plan is not None:
            store.refresh_rollup(plan, now)
