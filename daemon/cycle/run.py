"""One cycle of the daemon: poll, plan, advance, dispatch, write back; and the jeopardy sweep
between cycles.

Each phase commits what it learned before the next begins, so a crash at any line leaves a
state from which the next cycle finishes the work (ARCHITECTURE.md, rule 1).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError, OperationalError

from daemon.context import Context
from daemon.cycle.advance import advance_plans
from daemon.cycle.amend import cancel_in_flight
from daemon.cycle.dispatch import dispatch
from daemon.cycle.events import take_events, writeback_waits
from daemon.cycle.held import release_held
from daemon.cycle.invoices import plan_invoices
from daemon.cycle.jeopardy import flagged_steps
from daemon.cycle.notifications import notify_changes
from daemon.cycle.poll import poll_orders
from daemon.cycle.status_poll import poll_statuses
from daemon.cycle.systems import check_systems
from daemon.cycle.writeback import write_back
from orchestration.errors import RecordError, RetriableError

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    polled: int = 0
    planned: int = 0
    dispatched: int = 0
    written: int = 0
    #: Seconds spent in each phase (the cycle's log line shows where a slow cycle went).
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return not (self.planned or self.dispatched or self.written)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

    def timings(self) -> str:
        """E.g. "poll 1.20 s, advance 0.31 s, dispatch 2.05 s" (phases over 10 ms)."""
        spent = [f"{name} {s:.2f} s" for name, s in self.seconds.items() if s >= 0.01]
        return ", ".join(spent) or "under 10 ms a phase"


def run_cycle(
    ctx: Context,
    dispatcher: Callable[[Context], int] = dispatch,
    ingesting: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> CycleReport:
    """One cycle. Every instance advances plans and dispatches, each taking other plans and
    tasks; only the leader (daemon.cluster.instances: always, on SQLite) polls Salesforce, plans,
    polls statuses and writes back, so those never run twice at once against one org.

    ``dispatcher`` sends the callouts due: :func:`daemon.cycle.dispatch.dispatch` in the cycle
    (``sync --once``, the tests), or, under ``orderflow run``, the pipeline's wake-up
    (daemon.cycle.pipeline: its workers send continuously beside the cycle), which returns what
    they sent since the last cycle. The leader's poll and what plans its findings run
    inside ``ingesting`` (the pipeline's :meth:`~daemon.cycle.pipeline.Pipeline.quiet`)."""
    report = CycleReport()
    phase = report.phase
    if ctx.membership.leading:
        with ingesting():
            with phase("poll"):
                report.polled, report.planned = poll_orders(ctx)
            with phase("events"):
                _add_events(report, take_events(ctx))  # records change events name
            with phase("amend"):
                cancel_in_flight(ctx)  # running steps a change made unnecessary
                release_held(ctx)  # held orders the crosswalk or new rules now let plan
            with phase("invoices"):
                plan_invoices(ctx)  # posted Invoices become ERP transfer plans
        with phase("systems"):
            check_systems(ctx)  # systems offline or back (daemon.cycle.systems)
    with phase("advance"):
        advance_plans(ctx)
    with phase("dispatch"):
        report.dispatched = dispatcher(ctx)
    if ctx.membership.leading:  # asked again: it may have stepped down meanwhile
        with phase("status poll"):
            poll_statuses(ctx)  # accepted tasks finished at their system
    with phase("advance"):
        advance_plans(ctx)
    if ctx.membership.leading and not writeback_waits(ctx, report.planned):  # a burst: ingest
        with phase("writeback"):
            report.written = write_back(ctx)  # Orders, lines, tasks and Invoices, one batch
    return report


def _add_events(report: CycleReport, taken: tuple[int, int]) -> None:
    report.polled += taken[0]
    report.planned += taken[1]


@dataclass
class SweepReport:
    plans: int = 0
    changed: int = 0
    written: int = 0
    notified: int = 0
    steps: Counter[str] = field(default_factory=Counter)


def sweep(ctx: Context) -> SweepReport:
    """One sweep at ``ctx.clock()``: assess the plans due, write back, notify (the leader
    only: it alone writes to Salesforce).

    The assessing is :func:`advance_plans`, which every cycle runs too: each plan wakes at
    its next SLA threshold, so the sweep looks at the plans whose time came, not at
    everything in flight. The sweep's own cadence keeps Late orders' messages and
    the webhook current while cycles are far apart (the poll backing off when idle).
    """
    report = SweepReport()
    if not ctx.membership.leading:
        return report
    started = time.monotonic()
    advanced = advance_plans(ctx)
    report.plans, report.changed = advanced.plans, advanced.jeopardy_changed
    report.written = write_back(ctx, late=True)  # how late a Late order is, refreshed
    report.notified = notify_changes(ctx)
    seconds = time.monotonic() - started
    if report.changed or report.notified or report.written or seconds >= 1:
        with ctx.sessions() as session:  # counted for the log line only
            report.steps.update({str(k): n for k, n in session.execute(flagged_steps())})
        log.info(
            "jeopardy sweep: %d plans changed, %d records written, %d notified (%.2f s)",
            report.changed,
            report.written,
            report.notified,
            seconds,
            extra={"at_risk": report.steps["At Risk"], "late": report.steps["Late"]},
        )
    return report


def safe_sweep(ctx: Context) -> SweepReport | None:
    """A sweep whose passing failures (database, Salesforce) are logged and left to the next."""
    try:
        return sweep(ctx)
    except (RetriableError, RecordError) as exc:
        log.warning("jeopardy sweep interrupted, will retry: %s", exc)
    except (OperationalError, IntegrityError) as exc:
        log.warning("jeopardy sweep interrupted by the database, will retry: %s", exc.orig)
    return None
