"""Change Data Capture end to end: the emulator's real Pub/Sub server (gRPC over TLS), the
daemon's subscriber, the poll's ingest, a real SQLite store and the stub systems."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from daemon.channels.stream import EventStream
from daemon.cluster.wakeup import Wakeup
from daemon.commands.main import main
from daemon.context import Context
from daemon.cycle import events, poll
from daemon.cycle.run import run_cycle
from daemon.ops.demo import act_as_operator
from daemon.service import subscription
from daemon.service.loop import run_forever
from daemon.settings import load_settings
from daemon.store.models import EventReplay, Plan
from salesforce.emulator.seed import seed_demo_org
from salesforce.pubsub.subscriber import Change, Gap
from tests.integration.amend_world import no_duplicates
from tests.integration.test_invoices import add_invoice
from tests.integration.world import SETTLED, World

PRODUCT = "PLAT-PRO"


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _quiet_logging() -> Iterator[None]:
    yield  # `orderflow status` configured logging onto the captured stderr: undo it
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts window polls (the cadence's and a gap's)."""
    count = [0]
    real = poll.poll

    def counted(ctx: Context, since: Any = None) -> poll.PollReport:
        count[0] += 1
        return real(ctx, since)

    monkeypatch.setattr(poll, "poll", counted)
    return count


def streaming(world: World, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Context:
    ctx = world.context(monkeypatch, sf_events="cdc", **settings)
    stream = subscription.open_stream(ctx, load_settings())
    assert stream is not None
    wait_until(lambda: stream.healthy, "every topic subscribed")
    return ctx


@pytest.fixture
def closing() -> Iterator[list[Context]]:
    opened: list[Context] = []
    yield opened
    for ctx in opened:
        subscription.close_stream(ctx)


def cycled_stream(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> tuple[Context, EventStream]:
    """A streaming context (closed after the test) and its stream, its first cycle run."""
    ctx = streaming(world, monkeypatch)
    closing.append(ctx)
    assert ctx.events is not None
    run_cycle(ctx)
    return ctx, ctx.events


def settle(ctx: Context, world: World, orders: list[str], cycles: int = 40) -> None:
    """Cycles (an operator doing the manual steps) until ``orders`` settle; between cycles,
    what the stream delivers is waited for a moment."""
    for _ in range(cycles):
        run_cycle(ctx)
        act_as_operator(ctx.sessions, ctx.clock(), delay=timedelta())
        statuses = world.order_statuses()
        if all(statuses.get(o) in SETTLED for o in orders):
            return
        time.sleep(0.1)
    raise AssertionError(f"not settled: {world.order_statuses()}")


def plan_of(ctx: Context, order_id: str) -> Plan | None:
    with ctx.sessions() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == order_id)).one_or_none()
        if plan is not None:
            session.expunge(plan)
        return plan


def cycled_until_planned(ctx: Context, order_id: str) -> bool:
    run_cycle(ctx)
    return plan_of(ctx, order_id) is not None


def dispatched(ctx: Context, order_id: str) -> bool:
    with ctx.sessions() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == order_id)).one_or_none()
        return plan is not None and any(
            t.system is not None and t.started_at is not None for t in plan.tasks
        )


def test_an_order_activated_at_idle_is_dispatched_before_any_poll_is_due(
    world: World, monkeypatch: pytest.MonkeyPatch, polls: list[int], closing: list[Context]
) -> None:
    ctx = streaming(world, monkeypatch)
    closing.append(ctx)
    stop = threading.Event()
    wake = Wakeup(None)
    wake.start(stop)
    assert ctx.events is not None
    ctx.events.subscriber.notify = wake.event.set
    loop = threading.Thread(
        target=run_forever, args=(ctx, 0.5, stop), kwargs={"wakeup": wake}, daemon=True
    )
    loop.start()
    try:
        pacer = ctx.gateway.pacer
        wait_until(lambda: pacer.poll_interval == 600.0, "the safety poll's cadence")
        polled = polls[0]
        order = world.add_order(PRODUCT)  # a person activates it in Salesforce
        wait_until(lambda: dispatched(ctx, order), "the order's first dispatch")
        assert polls[0] == polled  # no poll ran: the event brought it
        assert pacer.next_poll_at is not None and pacer.next_poll_at > ctx.gateway.clock() + 60
    finally:
        stop.set()
        loop.join(timeout=10)
        wake.close()


def test_a_dropped_stream_and_a_gap_lose_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, polls: list[int], closing: list[Context]
) -> None:
    # The first poll, then the safety cadence.
    ctx, stream = cycled_stream(world, monkeypatch, closing)
    first = [world.add_order(PRODUCT) for _ in range(3)]
    world.emu.pause_events()  # committed while the stream is down: replayed or polled
    world.emu.drop_streams()
    late = [world.add_order(PRODUCT) for _ in range(2)]
    world.emu.resume_events()
    world.emu.send_gap("OrderChangeEvent", change_type="GAP_OVERFLOW")
    more = [world.add_order(PRODUCT) for _ in range(2)]
    before = polls[0]
    settle(ctx, world, first + late + more)
    assert polls[0] > before  # the gap and the drop were polled over
    assert all(world.order_statuses()[o] == "Completed" for o in first + late + more)
    assert no_duplicates(world)
    assert stream.gaps >= 1
    assert stream.subscriber.states["/data/OrderChangeEvent"].drops >= 1


def test_a_restart_resumes_after_the_stored_replay_id(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    ctx, _ = cycled_stream(world, monkeypatch, closing)
    taken = world.add_order(PRODUCT)
    wait_until(lambda: cycled_until_planned(ctx, taken), "the order planned from its event")
    with ctx.sessions() as session:
        stored = {r.topic: bytes(r.replay_id) for r in session.scalars(select(EventReplay))}
    assert "/data/OrderChangeEvent" in stored
    subscription.close_stream(ctx)  # the daemon stops
    missed = world.add_order(PRODUCT)  # activated while it is down
    ctx2 = streaming(world, monkeypatch)
    closing.append(ctx2)
    assert ctx2.events is not None
    queue = ctx2.events.subscriber.deliveries
    wait_until(lambda: queue.qsize() > 0, "replayed events")
    time.sleep(0.5)  # the rest of the replay
    replayed = [queue.get_nowait() for _ in range(queue.qsize())]
    changes = [c for c in replayed if isinstance(c, Change)]
    gaps = [g for g in replayed if isinstance(g, Gap)]
    # Only a topic with nothing stored (no event taken in yet) starts at LATEST, polled over.
    assert all(g.routine and g.topic not in stored for g in gaps)
    orders_seen = {i for c in changes if c.entity == "Order" for i in c.record_ids}
    assert missed in orders_seen  # nothing missed
    for change in changes:  # nothing at or before a stored replay id again
        last = stored.get(change.topic)
        assert last is None or int.from_bytes(change.replay_id) > int.from_bytes(last)
    old = [c.change_type for c in changes if taken in c.record_ids]
    assert "CREATE" not in old  # of the order taken before, at most its writeback's echoes
    ctx2.events.pending.extend(replayed)
    run_cycle(ctx2)
    assert plan_of(ctx2, missed) is not None


def test_a_first_subscription_is_polled_over_once(
    world: World, monkeypatch: pytest.MonkeyPatch, polls: list[int], closing: list[Context]
) -> None:
    before = world.add_order(PRODUCT)  # activated before the daemon first starts
    ctx = streaming(world, monkeypatch)  # nothing stored: every stream at LATEST
    closing.append(ctx)
    assert ctx.events is not None
    sub = ctx.events.subscriber
    wait_until(lambda: sub.deliveries.qsize() >= len(sub.topics), "the LATEST gaps")
    run_cycle(ctx)  # its poll reads past the moment the streams opened
    assert polls[0] == 1 and ctx.events.gaps == 0  # the gaps cost no second poll
    assert plan_of(ctx, before) is not None
    later = Gap("/data/OrderChangeEvent", "first subscription", True, ctx.clock())
    ctx.events.pending.append(later)  # a stream opened after the last poll (a new leader's)
    run_cycle(ctx)
    assert ctx.events.gaps == 1  # polled over


def test_what_committed_just_before_the_streams_opened_is_polled_once_it_settled(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    # A poll's window ends ORDERFLOW_SF_POLL_SETTLE before now: the gap poll of a first
    # subscription cannot read what committed in that span before the streams opened, and
    # no event names it (they start at LATEST). Seen on a daemon started as a burst of
    # orders came in: none taken until the safety poll, 10 minutes later.
    ctx = world.context(monkeypatch, sf_events="cdc", poll_interval="0.5", sf_poll_settle="4")
    ctx.clock = lambda: datetime.now(UTC)  # the daemon's own clock, not the world's ahead
    seed_demo_org(world.emu, orders=0)  # the catalogue: the order below is quick to add
    run_cycle(ctx)  # the first poll: nothing yet, the streams not open
    order = world.add_order(PRODUCT)  # committed a moment before the streams open
    stream = subscription.open_stream(ctx, load_settings())
    assert stream is not None
    closing.append(ctx)
    wait_until(lambda: stream.subscriber.healthy, "every topic subscribed")
    run_cycle(ctx)  # the gap poll: its window ends before the order
    assert plan_of(ctx, order) is None
    assert not stream.healthy  # the safety poll's cadence waits until a poll reached it
    wait_until(lambda: cycled_until_planned(ctx, order), "the order planned", timeout=15)
    wait_until(lambda: (run_cycle(ctx), stream.healthy)[1], "the stream healthy again")
    assert ctx.gateway.pacer.poll_interval == stream.safety_interval


def test_writeback_waits_while_a_burst_of_activations_is_still_being_taken_in(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    # The streams' first gaps taken in: nothing queued.
    ctx, stream = cycled_stream(world, monkeypatch, closing)
    now = datetime.now(UTC)
    ctx.clock = lambda: now
    topic, order = "/data/OrderChangeEvent", "801000000000001AAA"
    queued = Change(topic, "Order", (order,), "UPDATE", ("Status",), "005", now, b"\x01")
    stream.pending.append(queued)  # more of the burst, for the next take
    assert events.writeback_waits(ctx, planned=600)  # planning the burst comes first
    assert not events.writeback_waits(ctx, planned=0)  # echoes taken in: no wait
    assert events.writeback_waits(ctx, planned=600)
    now += events.WRITEBACK_WAIT
    assert not events.writeback_waits(ctx, planned=600)  # waited long enough: it runs
    assert events.writeback_waits(ctx, planned=600)  # and the next may wait again
    stream.pending.clear()
    assert not events.writeback_waits(ctx, planned=600)  # nothing queued


def test_a_new_leader_resumes_after_what_the_last_one_took_in(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    follower = world.context(monkeypatch, sf_events="cdc")
    follower.membership._leading = False  # started beside the leader, nothing stored yet
    assert subscription.open_stream(follower, load_settings()) is not None
    closing.append(follower)
    leader = streaming(world, monkeypatch)
    closing.append(leader)
    run_cycle(leader)
    taken = world.add_order(PRODUCT)
    wait_until(lambda: cycled_until_planned(leader, taken), "the order planned from its event")
    with leader.sessions() as session:
        stored = set(session.scalars(select(EventReplay.topic)))
    subscription.close_stream(leader)  # the leader dies
    missed = world.add_order(PRODUCT)  # activated before another instance leads
    follower.membership._leading = True
    assert follower.events is not None
    queue = follower.events.subscriber.deliveries
    seen: set[str] = set()

    def replayed() -> bool:
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, Gap):  # only a topic with nothing taken in starts at LATEST
                assert item.routine and item.topic not in stored, f"a gap to poll over: {item}"
                continue
            seen.update(item.record_ids)
        return missed in seen

    wait_until(replayed, "the missed order's events, replayed to the new leader")


def test_a_writeback_echo_costs_no_query(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    ctx, stream = cycled_stream(world, monkeypatch, closing)
    order = world.add_order(PRODUCT)
    settle(ctx, world, [order])  # its status written back: echoes on the stream
    deliveries = stream.subscriber.deliveries
    wait_until(lambda: not deliveries.empty(), "the writeback's echoes")
    time.sleep(0.5)
    calls = world.emu.api_calls
    skipped = stream.skipped
    events.take_events(ctx)
    assert stream.skipped > skipped
    assert world.emu.api_calls == calls  # read nothing, wrote nothing


def test_a_draft_and_its_lines_cost_no_query_until_activated(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    ctx, stream = cycled_stream(world, monkeypatch, closing)
    order = world.add_order(PRODUCT, status="Draft")  # created, a line added: not ours yet
    deliveries = stream.subscriber.deliveries
    wait_until(lambda: deliveries.qsize() >= 2, "the draft's events")
    time.sleep(0.3)
    calls = world.emu.api_calls
    events.take_events(ctx)
    assert world.emu.api_calls == calls
    assert stream.skipped >= 2
    world.emu.update("Order", order, {"Status": "Activated"})
    wait_until(lambda: cycled_until_planned(ctx, order), "the order planned once activated")


def test_a_drafts_line_event_taken_after_its_orders_activation_costs_no_query(
    world: World, monkeypatch: pytest.MonkeyPatch, closing: list[Context]
) -> None:
    # The topics stream side by side: a burst of orders made and activated at once can
    # bring an order's activation to a take before its line's create event.
    ctx, stream = cycled_stream(world, monkeypatch, closing)
    order = world.add_order(PRODUCT)  # a draft, its line, then activated
    deliveries = stream.subscriber.deliveries
    wait_until(lambda: deliveries.qsize() >= 3, "the order's and the line's events")
    time.sleep(0.3)
    taken = [deliveries.get_nowait() for _ in range(deliveries.qsize())]
    lines = [d for d in taken if isinstance(d, Change) and d.entity == "OrderItem"]
    assert lines and all(d.change_type == "CREATE" for d in lines)
    stream.pending.extend(d for d in taken if d not in lines)  # the activation first
    events.take_events(ctx)
    assert plan_of(ctx, order) is not None
    stream.pending.extend(lines)
    calls = world.emu.api_calls
    events.take_events(ctx)
    assert world.emu.api_calls == calls  # the line was read with its order
    assert stream.skipped >= len(lines)


def test_a_posted_invoice_comes_by_its_event(
    world: World, monkeypatch: pytest.MonkeyPatch, polls: list[int], closing: list[Context]
) -> None:
    ctx, _ = cycled_stream(world, monkeypatch, closing)
    order = world.add_order(PRODUCT)
    wait_until(lambda: cycled_until_planned(ctx, order), "the order planned from its event")
    polled = polls[0]
    invoice = add_invoice(world, order)

    def transferred() -> bool:
        run_cycle(ctx)
        return world.emu.get("Invoice", invoice).get("ERP_Sync_Status__c") == "Transferred"

    wait_until(transferred, "the invoice transferred to the ERP")
    assert polls[0] == polled  # its event brought it, no poll


def test_status_shows_the_event_stream(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closing: list[Context],
) -> None:
    ctx, _ = cycled_stream(world, monkeypatch, closing)
    order = world.add_order(PRODUCT)
    wait_until(lambda: cycled_until_planned(ctx, order), "the order planned from its event")
    assert main(["status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["events"]
    assert shown["mode"] == "cdc" and shown["connected"] is True
    topic = shown["topics"]["/data/OrderChangeEvent"]
    assert topic["connected"] is True and topic["replay_id"]
    assert shown["last_event_at"] is not None
    subscription.close_stream(ctx)  # restarted with ORDERFLOW_SF_EVENTS=off
    off = world.context(monkeypatch, sf_events="off")
    assert subscription.open_stream(off, load_settings()) is None
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] is None  # not the old stream's state


def test_auto_without_a_pubsub_server_polls(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = world.context(monkeypatch, sf_events="auto", sf_pubsub_endpoint="127.0.0.1:1")
    assert subscription.open_stream(ctx, load_settings()) is None
    assert ctx.events is None
    order = world.add_order(PRODUCT)
    run_cycle(ctx)
    assert plan_of(ctx, order) is not None
