"""The daemon's loop: one cycle on a schedule, one stop event that SIGTERM sets."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import schedule

from daemon.context import Context
from daemon.cycle import run_cycle
from orchestration.errors import RecordError, RetriableError

log = logging.getLogger(__name__)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping after the current step", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def safe_cycle(ctx: Context) -> None:
    """One cycle; passing failures are logged and left to the next cycle."""
    try:
        report = run_cycle(ctx)
    except RetriableError as exc:
        log.warning("cycle interrupted, will retry: %s", exc)
    except RecordError as exc:
        log.error("cycle stopped on a record, will retry: %s", exc)
    else:
        if not report.idle:
            log.info(
                "cycle: %d polled, %d planned, %d dispatched, %d written",
                report.polled,
                report.planned,
                report.dispatched,
                report.written,
            )


def run_forever(ctx: Context, interval: float, stop: threading.Event) -> None:
    """Run cycles every ``interval`` seconds until ``stop`` is set.

    The wait is on the stop event, not a sleep, so a signal ends the wait at once; a cycle
    that is running finishes its current step (each commits on its own) before the loop
    sees the event.
    """
    scheduler = schedule.Scheduler()
    # schedule types the interval as int but takes any number of seconds (timedelta).
    scheduler.every(interval).seconds.do(safe_cycle, ctx)  # type: ignore[arg-type]
    safe_cycle(ctx)
    while not stop.is_set():
        scheduler.run_pending()
        idle = scheduler.idle_seconds
        stop.wait(timeout=min(max(idle if idle is not None else interval, 0.05), interval))
    log.info("stopped")
