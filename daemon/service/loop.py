"""The daemon's loop: a cycle, a wait on the stop event, again; systemd told all along.

A ``schedule.Scheduler`` holds the loop's jobs: the sync cycle (re-armed after each run
with the pacing's next wait, daemon.service.pacing), the jeopardy sweep on its own cadence
(``ORDERFLOW_JEOPARDY_INTERVAL``, daemon.cycle.run.sweep), and hourly housekeeping (callback
receipts past their use and the history of plans settled longer than
``ORDERFLOW_RETENTION_DAYS`` ago, daemon.service.retention). Between jobs the loop waits on
the stop event for the scheduler's idle seconds, so a signal ends the wait at once.

No error stops the loop but a fatal one (a refused login, a bad setting): whatever else a
job raises is logged with its traceback (secrets masked, daemon.logs) and the job is run
again after a back-off that doubles with each failure in a row, up to
:data:`MAX_BACKOFF` seconds.

Liveness has one source, the loop's own progress: a beat at each cycle's start and end, at
every store commit the loop's own thread makes (a long first poll or a big dispatch commits
often; a callback handler's commit, on the listener's threads, is not the loop's progress)
and at least once a poll interval while waiting. Each beat feeds ``/healthz`` and, under
systemd, sends ``WATCHDOG=1`` (no more often than a quarter of the watchdog period). A loop
that hangs stops beating, so systemd's watchdog restarts it; no side thread keeps it alive.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import Any

import schedule
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from daemon.cluster.wakeup import Wakeup
from daemon.context import Context
from daemon.cycle.pipeline import Pipeline
from daemon.cycle.run import CycleReport, run_cycle, safe_sweep
from daemon.service import pacing
from daemon.service.health import Heartbeat, stale_after
from daemon.service.retention import prune_history, prune_receipts
from daemon.service.systemd_notify import Notifier
from daemon.store import db
from orchestration.errors import ConfigError, FatalError, RecordError, RetriableError

log = logging.getLogger(__name__)

#: The shortest re-arm of the cycle job (schedule cannot repeat a job every 0 seconds).
MIN_WAIT = 0.001
#: The longest back-off after unexpected errors in a row.
MAX_BACKOFF = 300.0


def install_signal_handlers(stop: threading.Event, notifier: Notifier | None = None) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping after the current step", signal.Signals(signum).name)
        if notifier is not None:
            notifier.stopping("stopping: finishing the current cycle")
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def safe_cycle(ctx: Context, pipeline: Pipeline | None = None) -> CycleReport | None:
    """One cycle (its dispatch the ``pipeline``'s, if given); passing failures are logged
    and left to the next cycle (None then)."""
    try:
        if pipeline is None:
            report = run_cycle(ctx)
        else:
            report = run_cycle(ctx, pipeline.pulse, pipeline.quiet)
            report.dispatched += pipeline.sent()  # and what went out since the pulse
    except RetriableError as exc:
        log.warning("cycle interrupted, will retry: %s", exc)
        return None
    except RecordError as exc:
        log.error("cycle stopped on a record, will retry: %s", exc)
        return None
    except (OperationalError, IntegrityError) as exc:
        # The database went away for a moment, or (several instances) chose this cycle as
        # a deadlock victim or saw another instance insert first: the next cycle redoes it.
        log.warning("cycle interrupted by the database, will retry: %s", exc.orig)
        return None
    if not report.idle:
        log.info(
            "cycle: %d polled, %d planned, %d dispatched, %d written (%s)",
            report.polled,
            report.planned,
            report.dispatched,
            report.written,
            report.timings(),
            extra={"seconds": {k: round(v, 3) for k, v in report.seconds.items()}},
        )
    return report


def next_wait(ctx: Context, interval: float, report: CycleReport | None = None) -> float:
    """Seconds from the end of one cycle to the start of the next: the Salesforce budget's
    pace (``interval`` while work goes on, backing off while polls find nothing).

    An instance that does not lead polls nothing: it waits ``interval`` at most (woken
    sooner by a notification, daemon.cluster.wakeup), ready to take the lead within a few seconds.
    """
    wait = pacing.next_wait(ctx, report)
    return wait if ctx.membership.leading else min(wait, interval)


class Pulse:
    """Beats the heartbeat and, rate-limited, systemd's watchdog."""

    def __init__(self, notifier: Notifier, heartbeat: Heartbeat) -> None:
        self.notifier = notifier
        self.heartbeat = heartbeat
        period = notifier.watchdog_period
        self._every = None if period is None else period / 4
        self._last_ping = -float("inf")
        self._loop = threading.get_ident()  # made by the loop, on its thread

    def beat(self, *_args: Any) -> None:
        self.heartbeat.beat()
        self._ping()

    def on_commit(self, *_args: Any) -> None:
        """A store commit: a beat when the loop made it. The listener's threads commit too
        (callbacks, canvas actions); they must not keep a hung loop looking alive."""
        if threading.get_ident() == self._loop:
            self.beat()

    def _ping(self) -> None:
        if self._every is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self._every:
            self._last_ping = now
            self.notifier.watchdog()

    @property
    def max_wait(self) -> float | None:
        """The longest the loop may wait without a beat (half the watchdog period)."""
        return None if self._every is None else self._every * 2

    def wait(
        self, stop: threading.Event, seconds: float, interval: float, wakeup: Wakeup | None = None
    ) -> bool:
        """Wait ``seconds`` or until ``stop`` is set (or ``wakeup`` says work is ready),
        beating at least every ``interval``. True when ``wakeup`` ended the wait."""
        slice_ = min(interval, self.max_wait or interval)
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.beat()
            if wakeup is None:
                stop.wait(timeout=min(left, slice_))
            elif wakeup.wait(min(left, slice_)):
                return not stop.is_set()
        return False


def run_forever(
    ctx: Context,
    interval: float,
    stop: threading.Event,
    *,
    notifier: Notifier | None = None,
    heartbeat: Heartbeat | None = None,
    wakeup: Wakeup | None = None,
    jeopardy_interval: float | None = 30.0,
    retention_days: int = 90,
    pipeline: Pipeline | None = None,
) -> None:
    """Run cycles, ``interval`` seconds apart, and a jeopardy sweep every
    ``jeopardy_interval`` seconds (None: none), until ``stop`` is set.

    The wait is on the stop event, not a sleep, so a signal ends the wait at once. A cycle
    that is running finishes before the loop sees the event; each of its steps commits on
    its own, so if systemd's ``TimeoutStopSec`` kills it first, the next start resends what
    was in flight under the same idempotency keys (nothing is lost or doubled).

    With a ``pipeline`` (``orderflow run``), callouts are sent by its threads beside the
    cycles from start to stop (daemon.cycle.pipeline); stopping, its calls out finish and are
    recorded before this returns.
    """
    notifier = notifier or Notifier()
    heartbeat = heartbeat or Heartbeat(stale_after(interval))
    pulse = Pulse(notifier, heartbeat)
    on_commit = pulse.on_commit  # one bound method, so the same one is removed
    event.listen(ctx.sessions, "after_commit", on_commit)
    scheduler = schedule.Scheduler()

    def cycle() -> None:
        heartbeat.cycle_started()
        pulse.beat()
        if heartbeat.cycles == 1:
            notifier.ready("first cycle: polling Salesforce")
        else:
            notifier.status(f"cycle {heartbeat.cycles}: polling, dispatching, writing back")
        report = safe_cycle(ctx) if pipeline is None else safe_cycle(ctx, pipeline)
        heartbeat.cycle_ended()
        wait = next_wait(ctx, interval, report)
        notifier.status(_describe(heartbeat.cycles, report, wait))
        cycles.interval = max(wait, MIN_WAIT)  # schedule re-arms the job with it on return

    def sweep() -> None:
        if not stop.is_set():
            safe_sweep(ctx)

    def housekeeping() -> None:
        try:
            pruned = prune_receipts(ctx)
            prune_history(ctx, retention_days)  # logs what it pruned
        except (OperationalError, IntegrityError) as exc:
            log.warning("housekeeping put off by the database: %s", exc.orig)
            return
        if pruned:
            log.info("pruned %d callback receipts older than a day", pruned)

    # Typed int, but schedule makes a timedelta of it: fractions of seconds work.
    cycles = scheduler.every(interval).seconds.do(cycle)  # type: ignore[arg-type]
    cycles.next_run = datetime.now()  # the first cycle at once (schedule's clock: local)
    if jeopardy_interval:
        scheduler.every(jeopardy_interval).seconds.do(sweep)  # type: ignore[arg-type]
    scheduler.every().hour.do(housekeeping)
    failures = 0
    if pipeline is not None:
        pipeline.start()
    try:
        while not stop.is_set():
            try:
                scheduler.run_pending()
            except (FatalError, ConfigError):
                raise
            except Exception:
                # The job was not re-armed (schedule re-arms after a return): it runs again
                # once the back-off is waited out.
                failures += 1
                delay = min(interval * 2 ** (failures - 1), MAX_BACKOFF)
                log.exception("unexpected error (%d in a row), going on in %g s", failures, delay)
                heartbeat.cycle_ended()
                pulse.wait(stop, delay, interval)
                continue
            failures = 0
            idle = max(0.0, scheduler.idle_seconds or 0.0)
            if pulse.wait(stop, idle, interval, wakeup):
                cycles.next_run = datetime.now()  # another instance made work: cycle now
    finally:
        if pipeline is not None:
            pipeline.stop()  # the calls out finish and are recorded
        event.remove(ctx.sessions, "after_commit", on_commit)
    notifier.stopping("stopped")
    log.info("stopped")


def _describe(cycles: int, report: CycleReport | None, wait: float) -> str:
    if report is None:
        return f"cycle {cycles} interrupted (see the log); next in {wait:g} s"
    return (
        f"cycle {cycles}: {report.polled} polled, {report.planned} planned, "
        f"{report.dispatched} dispatched, {report.written} written; next in {wait:g} s"
    )


@contextlib.contextmanager
def running(ctx: Context, stop: threading.Event, *, listen: bool = True) -> Iterator[Wakeup]:
    """This instance on duty for the block: beating, reaping, leading when it can, and
    (on PostgreSQL, ``listen``) woken by the others' notifications. Signs off at the end."""
    engine = ctx.sessions.kw["bind"]
    url = db.libpq_url(engine) if listen and db.is_postgres(engine) else None
    wake = Wakeup(url)
    member = ctx.membership
    member.on_lead = wake.event.set
    member.start(ctx.clock(), ctx.clock)
    wake.start(stop)
    log.info(
        "instance %s started (%s)",
        member.id,
        "leading" if member.leading else "dispatching; another instance leads",
        extra={"instance": member.id},
    )
    try:
        yield wake
    finally:
        wake.close()
        member.stop(ctx.clock())
