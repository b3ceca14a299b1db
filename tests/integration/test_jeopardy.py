"""Jeopardy with a moved clock, end to end: the real cycle and sweep against the emulated org
over HTTPS and a provisioning stub that does not answer until told to."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from daemon.context import Context
from daemon.cycle.run import run_cycle, sweep
from daemon.logs import redact
from daemon.store.models import Plan, Task
from tests.integration.downstream_world import swap_stub
from tests.integration.world import World

HOURS = timedelta(hours=1)


class Hook:
    """A Slack-compatible incoming webhook: keeps what it is sent, answers ``status``; while
    ``release`` is clear it holds each request unanswered (a stalled webhook)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.status = 200
        self.requests = 0
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.requests += 1
                hook.arrived.set()
                hook.release.wait(60)
                if hook.status == 200:
                    hook.texts.append(body["text"])
                self.send_response(hook.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/s3cr3t-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()
    yield found
    found.release.set()
    found.server.shutdown()
    found.server.server_close()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def slow_provisioning(world: World, monkeypatch, **settings: Any) -> tuple[Context, Clock]:
    """Provisioning accepts and stays silent until ``complete_after`` is set to 0."""
    swap_stub(world, "provisioning", completion="status", complete_after=None)
    ctx = world.context(monkeypatch, provisioning_status_poll_interval=0.001, **settings)
    # 01:00 UTC tomorrow, whatever the hour the suite runs at: the tests go up to 11 hours on
    # and a message names the due time's date only when it is not today's. (Ahead of the
    # emulator's records, so polls still see them.)
    tomorrow = ctx.clock() + timedelta(days=1)
    clock = Clock(tomorrow.replace(hour=1, minute=0, second=0, microsecond=0))
    ctx.clock = clock
    return ctx, clock


def provisioning_task(ctx: Context) -> Task:
    with ctx.sessions() as session:
        (task,) = session.query(Task).filter(Task.system == "provisioning").all()
        return task


def started(ctx: Context, world: World, clock: Clock) -> Task:
    for _ in range(4):
        run_cycle(ctx)
    task = provisioning_task(ctx)
    assert task.state == "In Progress" and task.started_at == clock.now
    return task


def shown(world: World, order: str) -> tuple[str | None, str | None, str | None]:
    (line,) = [r for r in world.emu.records("OrderItem") if r["OrderId"] == order]
    (task,) = [
        r for r in world.emu.records("Fulfillment_Task__c") if r["System__c"] == "provisioning"
    ]
    return (
        world.emu.get("Order", order)["Jeopardy_Status__c"],
        line["Jeopardy_Status__c"],
        task["Jeopardy__c"],
    )


def test_a_silent_step_goes_at_risk_then_late_on_every_record_and_clears_when_done(
    world: World, monkeypatch
):
    order = world.add_order("PLAT-PRO")
    ctx, clock = slow_provisioning(world, monkeypatch)
    start = started(ctx, world, clock).started_at
    assert start is not None
    # The default rules: callout/provisioning {estimate: 8h, jeopardy: 2h}.
    clock.now = start + 6 * HOURS - timedelta(seconds=1)
    sweep(ctx)
    assert shown(world, order) == ("On Track", "On Track", "On Track")
    task = provisioning_task(ctx)
    assert (task.jeopardy, task.due_at) == ("On Track", start + 8 * HOURS)

    clock.now = start + 6 * HOURS
    sweep(ctx)
    assert shown(world, order) == ("At Risk", "At Risk", "At Risk")
    due = (start + 8 * HOURS).strftime("%H:%M UTC")
    message = world.emu.get("Order", order)["Fulfillment_Message__c"]
    title = provisioning_task(ctx).title
    assert title.startswith("Provisioning: activate licenses")
    assert message == f"{title} is at risk (due {due})"

    clock.now = start + 8 * HOURS
    sweep(ctx)
    assert shown(world, order) == ("Late", "Late", "Late")
    with ctx.sessions() as session:
        assert session.query(Plan).one().jeopardy == "Late"

    clock.now = start + 10 * HOURS + timedelta(minutes=5)
    sweep(ctx)
    message = world.emu.get("Order", order)["Fulfillment_Message__c"]
    assert message == f"{title} is 2 h late (due {due})"
    (record,) = [
        r for r in world.emu.records("Fulfillment_Task__c") if r["System__c"] == "provisioning"
    ]
    assert record["Order__c"] == order and record["State__c"] == "In Progress"
    assert record["Due__c"].startswith((start + 8 * HOURS).strftime("%Y-%m-%dT%H:%M:%S"))
    assert record["Actual_Start__c"] is not None and record["Actual_End__c"] is None
    assert record["Attempts__c"] == 1 and record["External_Reference__c"] == "PRV-000001"

    # The system answers: the cycle that learns it clears the flags, no sweep needed.
    world.stubs["provisioning"].complete_after = 0.0
    run_cycle(ctx)
    assert provisioning_task(ctx).state == "Completed"
    order_flag, line_flag, task_flag = shown(world, order)
    assert (order_flag, task_flag) == ("On Track", None)
    assert line_flag in ("On Track", None)
    assert world.emu.get("Order", order)["Fulfillment_Message__c"] is None


def test_writeback_sends_only_what_changed(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx, clock = slow_provisioning(world, monkeypatch)
    start = started(ctx, world, clock).started_at
    assert start is not None
    clock.now = start + HOURS
    sweep(ctx)
    calls = world.emu.api_calls
    clock.now = start + 2 * HOURS
    assert sweep(ctx).written == 0, "nothing crossed a threshold"
    assert world.emu.api_calls == calls
    clock.now = start + 6 * HOURS
    # The Order, its line and the provisioning step change; nothing else is sent.
    assert sweep(ctx).written == 3
    assert world.emu.api_calls == calls + 1


def test_the_webhook_is_told_once_per_change_and_its_url_is_never_logged(
    world: World, monkeypatch, hook: Hook, caplog
):
    caplog.set_level(logging.DEBUG)
    order = world.add_order("PLAT-PRO")
    ctx, clock = slow_provisioning(world, monkeypatch, notify_webhook_url=hook.url)
    start = started(ctx, world, clock).started_at
    assert start is not None
    number = world.emu.get("Order", order)["OrderNumber"]
    clock.now = start + 6 * HOURS
    webhook = ctx.webhook
    assert webhook is not None
    assert sweep(ctx).notified == 1  # queued; the webhook's thread sends it (here: deliver)
    assert webhook.deliver() == 1
    clock.now += timedelta(minutes=30)
    assert sweep(ctx).notified == 0, "still At Risk: nothing new to tell"
    title = provisioning_task(ctx).title
    due = f"{(start + 8 * HOURS):%H:%M} UTC"
    assert hook.texts == [f"Order {number} is At Risk: {title} is at risk (due {due})"]

    hook.status = 500  # the webhook fails: the queue tries again after a back-off
    clock.now = start + 8 * HOURS
    assert sweep(ctx).notified == 1
    assert webhook.deliver() == 0 and webhook.pending == 1
    hook.status = 200
    assert sweep(ctx).notified == 0, "queued already: not queued twice"
    assert webhook.deliver() == 0, "not due again yet"
    clock.now += timedelta(minutes=1)
    assert webhook.deliver() == 1 and webhook.pending == 0
    assert hook.texts[-1].startswith(f"Order {number} is Late: ")
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    assert not any("s3cr3t-hook" in line for line in ours)
    # What HTTP libraries log at DEBUG (the path holds the token) is masked when shown.
    assert "s3cr3t-hook" not in redact(caplog.text)
    assert "HTTP 500" in caplog.text


def test_orderflow_jeopardy_lists_what_is_late_now_worst_first(world: World, monkeypatch, capsys):
    from daemon.commands.main import main

    world.add_order("PLAT-PRO")
    world.add_order("PLAT-STD")
    ctx, _ = slow_provisioning(world, monkeypatch)
    for _ in range(4):
        run_cycle(ctx)
    # As if started nine and seven hours ago by the real clock: one Late, one At Risk now.
    nine_hours_ago = datetime.now(UTC) - 9 * HOURS
    with ctx.sessions.begin() as session:
        first, second = session.query(Task).filter(Task.system == "provisioning").all()
        first.started_at, second.started_at = nine_hours_ago, nine_hours_ago + 2 * HOURS
        first.due_at = second.due_at = None
    assert main(["jeopardy", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["counts"] == {"At Risk": 1, "Late": 1}
    assert [s["jeopardy"] for s in listed["steps"]] == ["Late", "At Risk"]
    assert listed["steps"][0]["due_at"] == (nine_hours_ago + 8 * HOURS).isoformat()
    assert listed["steps"][0]["seconds_late"] >= 3600
    assert main(["jeopardy"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "1 late, 1 at risk"
    assert text[1].startswith("Late") and "Provisioning: activate licenses" in text[1]


def test_fallout_is_told_with_its_reason(world: World, monkeypatch, hook: Hook):
    from downstream.stubs import StubFaults

    swap_stub(world, "provisioning", faults=StubFaults(reject_skus=frozenset({"LIC-PLATFORM-PRO"})))
    order = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch, notify_webhook_url=hook.url)
    for _ in range(4):
        run_cycle(ctx)
    assert world.order_statuses() == {order: "Fallout"}
    assert sweep(ctx).notified == 1
    assert sweep(ctx).notified == 0
    assert ctx.webhook is not None and ctx.webhook.deliver() == 1
    (text,) = hook.texts
    number = world.emu.get("Order", order)["OrderNumber"]
    assert text.startswith(f"Order {number} is Fallout: Provisioning: activate licenses")
    assert text.endswith("provisioning: unknown SKU LIC-PLATFORM-PRO")
    shown_message = world.emu.get("Order", order)["Fulfillment_Message__c"]
    assert shown_message.endswith("failed: provisioning: unknown SKU LIC-PLATFORM-PRO")


def test_a_late_order_says_why_on_the_canvas(world: World, monkeypatch):
    from daemon.web.canvas.orders import orders_page

    world.add_order("PLAT-PRO")
    ctx, clock = slow_provisioning(world, monkeypatch)
    start = started(ctx, world, clock).started_at
    assert start is not None
    clock.now = start + 10 * HOURS
    sweep(ctx)
    with ctx.sessions() as session:
        (row,) = orders_page(session, "late", "", 1, clock.now).rows
    title = provisioning_task(ctx).title
    due = (start + 8 * HOURS).strftime("%H:%M UTC")
    assert row.jeopardy == "Late"
    assert row.attention == f"{title} on provisioning is 2 h late (due {due})"


def test_a_fallout_order_shows_fallout_not_on_track_in_salesforce_and_the_canvas(
    world: World, monkeypatch
):
    from daemon.web.canvas.orders import orders_page
    from tests.integration.test_engine_operator import reject_sso
    from tests.integration.world import run_until_settled

    reject_sso(world)
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    shown = world.emu.get("Order", order)
    assert (shown["Fulfillment_Status__c"], shown["Jeopardy_Status__c"]) == ("Fallout", "Fallout")
    with ctx.sessions() as session:
        (row,) = orders_page(session, "fallout", "", 1, ctx.clock()).rows
    assert row.jeopardy == "Fallout"
