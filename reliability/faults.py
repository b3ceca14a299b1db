"""The fault suite: about 10 % of calls failing on every link; every order still settles.

    python -m reliability.faults [--orders 500 --seed 1]

Salesforce (the emulator draws a fault for each API call): 503 SERVER_UNAVAILABLE 4 %,
UNABLE_TO_LOCK_ROW 3 %, REQUEST_LIMIT_EXCEEDED 1.5 %, an expired session 1.5 %, and one
of each forced among the first calls so that even a short run meets every kind.
Each downstream system: 5 % of submits answered 503, 5 % answered only after the client's
timeout (the effect is made, the answer is lost: a resend must not make a second one),
every answer slowed by up to 0.2 s, and provisioning offline (connections refused) for
8 s early in the run.

The cycle runs in this process (``daemon.service.loop.safe_cycle`` on the context ``orderflow
run`` builds from the same ORDERFLOW_* settings) so that time can be injected: after a
REQUEST_LIMIT_EXCEEDED ("TotalRequests") Orderflow makes no Salesforce call until its next
allowance probe (ORDERFLOW_SF_LIMIT_PROBE_INTERVAL), as it must (the org's allowance is
spent); the suite checks that it holds, then moves the gateway's clock to the probe instead
of waiting it out. An error that would stop the daemon (FatalError:
a session refused again right after a new login) is counted and the context rebuilt, as
systemd's restart would.

Provisioning's SLA is set short here (At Risk after 5 s, Late after 10 s), and the
jeopardy sweep (daemon.cycle.jeopardy) runs after every cycle. Checks: every order Completed, 0
duplicate effects and 0 payload doubles (the same payload under two keys), one effect per
expected step, no step lost; every provisioning step a sweep found open past its 5 s
(those the outage held) was flagged At Risk or Late by it,
and none that finished within 5 s was. (A step can go At Risk and finish within one
cycle's dispatch, between two sweeps: nothing could have flagged it, so it is not counted.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import (
    CALLOUT_RULES,
    LocalWorld,
    add_orders,
    audit_steps,
    load_ruleset,
    machine,
    polled_orders,
    say,
    table,
)
from daemon import app
from daemon.context import Context
from daemon.service.loop import safe_cycle
from daemon.settings import load_settings
from daemon.store import db
from daemon.store.models import Task, TaskEvent
from downstream.stubs import StubFaults
from orchestration.errors import FatalError
from orchestration.states import StepState
from salesforce.emulator import Emulator, Fault

LINES = 3
SF_FAULTS = {"rate_503": 0.04, "rate_lock": 0.03, "rate_limit_exceeded": 0.015,
             "rate_invalid_session": 0.015}  # fmt: skip
DOWNSTREAM_TIMEOUT = 1.0
OFFLINE_SECONDS = 12.0
#: Provisioning's SLA in this suite: At Risk after 5 s, Late after 10 s (the outage is
#: longer, so the steps it holds must be flagged; the others, done in a second or two, not).
SLA_LINE = "  callout/provisioning: {estimate: 10s, jeopardy: 5s}\n"
AT_RISK_AFTER = 5.0
#: A step is expected flagged when a sweep ran while it was open and this much past its At
#: Risk time (the store's times are the daemon's, the sweeps' this process's: one clock);
#: a flag is false when the step was open less than its At Risk offset by this much.
SLACK = 0.5
FLAGS = ("At Risk", "Late")


def stub_options(seed: int) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "latency": (0.0, 0.2),
            "faults": StubFaults(
                unavailable_share=0.05,
                slow_share=0.05,
                slow_seconds=DOWNSTREAM_TIMEOUT + 0.5,
                seed=seed + n,
            ),
        }
        for n, name in enumerate(("erp", "billing", "provisioning"))
    }


@dataclass
class FaultReport:
    orders: int
    seconds: float = 0.0
    cycles: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    sf_calls: int = 0
    sf_faults: dict[str, int] = field(default_factory=dict)
    limit_holds: int = 0
    calls_during_hold: int = 0
    restarts: int = 0
    downstream: dict[str, dict[str, int]] = field(default_factory=dict)
    expected_effects: dict[str, int] = field(default_factory=dict)
    lost_steps: int = 0
    jeopardy: JeopardyCheck | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(s["duplicates"] for s in self.downstream.values())

    @property
    def payload_doubles(self) -> int:
        return sum(s["payload_doubles"] for s in self.downstream.values())

    @property
    def ok(self) -> bool:
        effects = {name: s["effects"] for name, s in self.downstream.items()}
        return (
            self.statuses.get("Completed", 0) == self.orders
            and self.duplicates == 0
            and self.payload_doubles == 0
            and effects == self.expected_effects
            and self.lost_steps == 0
            and self.calls_during_hold == 0
            and (self.jeopardy is None or self.jeopardy.ok)
        )

    def render(self) -> str:
        rows: list[tuple[Any, ...]] = [
            ("orders Completed", self.statuses.get("Completed", 0), self.orders),
            ("duplicate effects at the stubs", self.duplicates, 0),
            ("payloads received under two keys", self.payload_doubles, 0),
            ("steps lost or unfinished", self.lost_steps, 0),
            ("Salesforce API calls", self.sf_calls, "-"),
            *((f"  injected {k}", v, "-") for k, v in sorted(self.sf_faults.items())),
            ("REQUEST_LIMIT_EXCEEDED holds (1 h each, clock moved)", self.limit_holds, "-"),
            ("Salesforce calls made during a hold", self.calls_during_hold, 0),
            ("daemon restarts after a fatal error", self.restarts, "-"),
        ]
        for name, s in sorted(self.downstream.items()):
            rows.append(
                (
                    f"{name}: effects / requests / replays",
                    f"{s['effects']} / {s['requests']} / {s['replays']}",
                    self.expected_effects.get(name, "-"),
                )
            )
        j = self.jeopardy
        if j is None:
            rows.append(("jeopardy", "not checked: no jeopardy sweep in this tree", "-"))
        else:
            rows += [
                ("provisioning steps a sweep found open past 5 s (should flag)", j.should, "-"),
                ("  of those flagged At Risk or Late", j.should - j.missed, j.should),
                ("steps flagged though open < 5 s - slack", j.false_alarms, 0),
                ("steps flagged At Risk / Late during the run", j.flagged, "-"),
                ("orders flagged during the run", j.orders_flagged, "-"),
            ]
        rows.append(("cycles", self.cycles, "-"))
        rows.append(("seconds", round(self.seconds, 1), "-"))
        lines = [
            f"Fault suite: {self.orders} orders x {LINES} lines; ~10 % of calls failing on "
            "every link; provisioning offline for "
            f"{OFFLINE_SECONDS:g} s",
            f"machine: {machine()}",
            "",
            table(("figure", "got", "expected"), rows),
            "",
            "result: " + ("PASS" if self.ok else "FAIL"),
        ]
        lines += [f"  {p}" for p in self.problems[:20]]
        return "\n".join(lines)


@dataclass
class JeopardyCheck:
    """Steps flagged during the run against how long each stayed open."""

    flagged: int = 0
    orders_flagged: int = 0
    should: int = 0
    missed: int = 0
    false_alarms: int = 0

    @property
    def ok(self) -> bool:
        return self.missed == 0 and self.false_alarms == 0


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """ORDERFLOW_* set for the duration only (the caller's environment restored)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ORDERFLOW_")}
    for name in saved:
        del os.environ[name]
    os.environ.update({k: v for k, v in values.items() if k.startswith("ORDERFLOW_")})
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith("ORDERFLOW_")]:
            del os.environ[name]
        os.environ.update(saved)


class Clock:
    """The gateway's monotonic clock, plus the hours the suite lets pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def build(clock: Clock) -> Context:
    ctx = app.context(load_settings())
    ctx.gateway.clock = clock
    return ctx


def run(orders: int, workdir: Path, *, seed: int = 1, timeout: float = 900) -> FaultReport:
    report = FaultReport(orders)
    started = time.monotonic()
    with LocalWorld(workdir, stub_options(seed)) as world:
        add_orders(world.emu, orders, lines=LINES, seed=seed)
        settings = {
            "downstream_timeout": str(DOWNSTREAM_TIMEOUT),
            "poll_interval": "0.2",
            "sf_poll_max_interval": "1",
            "provisioning_offline_after": "3",
            "jeopardy_interval": "1",
            "provisioning_probe_interval": "1",
            "http_enabled": "false",
        }
        clock = Clock()
        rules = workdir / "fault_rules.yaml"
        rules.write_text(CALLOUT_RULES.read_text().replace("sla:\n", "sla:\n" + SLA_LINE))
        sweep = _sweeper()
        seen: dict[int, int] = {}
        sweeps: list[datetime] = []  # when each sweep began
        with environment(world.env(rules, **settings)):
            ctx = build(clock)
            world.emu.set_faults(Fault(**SF_FAULTS, seed=seed))
            injected = count_faults(world.emu)
            outage = threading.Timer(2.0, world.stubs["provisioning"].go_offline, [OFFLINE_SECONDS])
            outage.start()
            deadline = time.monotonic() + timeout
            while world.settled() < orders and time.monotonic() < deadline:
                try:
                    safe_cycle(ctx)
                except FatalError as exc:
                    report.restarts += 1
                    report.problems.append(f"restart after: {exc}")
                    ctx = build(clock)
                report.cycles += 1
                if sweep is not None:
                    sweeps.append(datetime.now(UTC))
                    sweep(ctx)
                    _note_flags(ctx, seen)
                _wait_out_limit(ctx, clock, world.emu.api_calls, report)
                time.sleep(0.05)
            outage.cancel()
            world.emu.set_faults(Fault())
        report.seconds = time.monotonic() - started
        report.statuses = dict(world.statuses())
        report.sf_calls = world.emu.api_calls
        report.sf_faults = dict(injected)
        report.downstream = {
            name: {k: int(v) for k, v in stub.stats().items() if isinstance(v, int)}
            for name, stub in world.stubs.items()
        }
        lines = len(world.emu.records("OrderItem"))
        report.expected_effects = {"erp": orders, "billing": lines, "provisioning": lines}
        audit = audit_steps(world.database, polled_orders(world.emu), load_ruleset())
        report.lost_steps = audit.lost
        report.problems += audit.problems
        if sweep is not None:
            report.jeopardy = _judge(world.database, seen, sweeps)
    return report


def _wait_out_limit(ctx: Context, clock: Clock, calls_before: int, report: FaultReport) -> None:
    """After REQUEST_LIMIT_EXCEEDED: a cycle run during the hold makes no Salesforce call;
    then the clock moves on to the allowance probe."""
    pacer = ctx.gateway.pacer
    if pacer.blocked_until is None or pacer.blocked_until <= clock():
        return
    report.limit_holds += 1
    before = ctx.gateway.calls
    safe_cycle(ctx)  # downstream work goes on; Salesforce is left alone
    report.calls_during_hold += ctx.gateway.calls - before
    clock.offset += pacer.blocked_until - clock() + 0.01


#: One of each Salesforce fault early in the run, whatever the dice say later.
FORCED = {3: "lock", 6: "503", 9: "limit", 12: "invalid_session"}


def count_faults(emu: Emulator) -> Counter[str]:
    """Count the faults the emulator injects (its dice say which, one draw per call), and
    force one of each kind early (FORCED: by call number)."""
    drawn: Counter[str] = Counter()
    dice = emu._dice
    draw = dice.draw
    calls = [0]

    def counting() -> Any:
        calls[0] += 1
        kind = FORCED.get(calls[0]) or draw()
        if kind is not None:
            drawn[kind] += 1
        return kind

    setattr(dice, "draw", counting)  # noqa: B010 - wraps one instance's method
    return drawn


def _sweeper() -> Callable[[Context], object] | None:
    """daemon.cycle.jeopardy's sweep, when this tree has it."""
    try:
        from daemon.cycle.run import safe_sweep
    except ImportError:
        return None
    return safe_sweep


def _note_flags(ctx: Context, seen: dict[int, int]) -> None:
    """Remember every step flagged now (task id -> its plan id)."""
    column = getattr(Task, "jeopardy")  # noqa: B009 - present with the sweep
    with ctx.sessions() as session:
        for task_id, plan_id in session.execute(
            select(Task.id, Task.plan_id).where(column.in_(FLAGS))
        ):
            seen[task_id] = plan_id


def _judge(database: Path, seen: dict[int, int], sweeps: list[datetime]) -> JeopardyCheck:
    """Each provisioning step's open time (first Ready/On Hold/In Progress to Completed)
    against the flags seen: a step a sweep found open past its At Risk time must have been
    flagged; one open for less than that, not."""
    check = JeopardyCheck(flagged=len(seen), orders_flagged=len(set(seen.values())))
    opening = {StepState.READY.value, StepState.ON_HOLD.value, StepState.IN_PROGRESS.value}
    engine = db.make_engine(f"sqlite:///{database}")
    with db.sessions(engine)() as session:
        spans: dict[int, list[datetime]] = {}
        rows = session.execute(
            select(TaskEvent.task_id, TaskEvent.to_state, TaskEvent.at)
            .join(Task, Task.id == TaskEvent.task_id)
            .where(Task.system == "provisioning")
            .order_by(TaskEvent.id)
        )
        for task_id, state, at in rows:
            span = spans.setdefault(task_id, [])
            if (state in opening and not span) or (
                state == StepState.COMPLETED.value and len(span) == 1
            ):
                span.append(at)
    engine.dispose()
    slack = timedelta(seconds=SLACK)
    at_risk = timedelta(seconds=AT_RISK_AFTER)
    for task_id, span in spans.items():
        if len(span) != 2:
            continue
        opened, closed = span
        if any(opened + at_risk + slack <= s <= closed - slack for s in sweeps):
            check.should += 1
            check.missed += task_id not in seen
        elif closed - opened < at_risk - slack and task_id in seen:
            check.false_alarms += 1
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    say(f"faults: {args.orders} orders")
    with tempfile.TemporaryDirectory(prefix="orderflow-faults-") as folder:
        report = run(args.orders, Path(folder), seed=args.seed)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
