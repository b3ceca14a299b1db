"""The Pub/Sub subscriber against a small in-process gRPC servicer (no TLS, no emulator):
decoding, schema cache, flow control, a dropped stream, a refused replay id, renewal.
The emulator's real server is exercised in tests/integration/test_events.py."""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import fastavro
import grpc
import pytest

from salesforce.pubsub import changed_fields
from salesforce.pubsub import pubsub_api_pb2 as pb
from salesforce.pubsub.pubsub_api_pb2_grpc import PubSubServicer, add_PubSubServicer_to_server
from salesforce.pubsub.subscriber import Auth, Change, Gap, SubscribeError, Subscriber

TOPIC = "/data/OrderChangeEvent"
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "OrderChangeEvent",
    "namespace": "com.sforce.eventbus",
    "fields": [
        {
            "name": "ChangeEventHeader",
            "type": {
                "type": "record",
                "name": "ChangeEventHeader",
                "fields": [
                    {"name": "entityName", "type": "string"},
                    {"name": "recordIds", "type": {"type": "array", "items": "string"}},
                    {"name": "changeType", "type": "string"},
                    {"name": "changedFields", "type": {"type": "array", "items": "string"}},
                    {"name": "commitTimestamp", "type": "long"},
                    {"name": "commitUser", "type": "string"},
                ],
            },
        },
        {"name": "Status", "type": ["null", "string"], "default": None},
        {"name": "Fulfillment_Status__c", "type": ["null", "string"], "default": None},
        {"name": "LastModifiedDate", "type": ["null", "long"], "default": None},
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)


def payload(record_id: str, changed: list[str], status: str | None = None) -> bytes:
    out = io.BytesIO()
    header = {
        "entityName": "Order",
        "recordIds": [record_id],
        "changeType": "UPDATE",
        "changedFields": changed_fields.encode(changed, SCHEMA),
        "commitTimestamp": 1_765_000_000_000,
        "commitUser": "005000000000001AAA",
    }
    fastavro.schemaless_writer(
        out, PARSED, {"ChangeEventHeader": header, "Status": status, "LastModifiedDate": 1}
    )
    return out.getvalue()


class Bus(PubSubServicer):
    """Events 1..n on one topic; replays after an id; refuses, drops or expires on demand."""

    def __init__(self) -> None:
        self.events = [
            (str(n).encode(), payload(f"801{n:015d}", ["Status", "LastModifiedDate"], "Activated"))
            for n in range(1, 8)
        ]
        self.schema_calls = 0
        self.firsts: list[pb.FetchRequest] = []
        self.requested: list[int] = []
        self.drop_after: int | None = None
        self.tokens = {"good"}
        self.forget_before = 0

    def _auth(self, context: Any) -> None:
        meta = dict(context.invocation_metadata())
        if meta.get("accesstoken") not in self.tokens or meta.get("tenantid") != "00D":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad session")

    def GetTopic(self, request: Any, context: Any) -> pb.TopicInfo:  # noqa: N802
        self._auth(context)
        if request.topic_name != TOPIC:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such topic")
        return pb.TopicInfo(topic_name=TOPIC, schema_id="s1", can_subscribe=True)

    def GetSchema(self, request: Any, context: Any) -> pb.SchemaInfo:  # noqa: N802
        self._auth(context)
        self.schema_calls += 1
        return pb.SchemaInfo(schema_id="s1", schema_json=json.dumps(SCHEMA))

    def Subscribe(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:  # noqa: N802
        self._auth(context)
        first = next(requests)
        self.firsts.append(first)
        start = 0
        if first.replay_preset == pb.ReplayPreset.CUSTOM:
            known = [r for r, _ in self.events]
            if first.replay_id not in known or int(first.replay_id) < self.forget_before:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "replay id validation failed")
            start = known.index(first.replay_id) + 1
        elif first.replay_preset == pb.ReplayPreset.LATEST:
            start = len(self.events)
        credit = first.num_requested
        self.requested.append(credit)
        sent = 0
        position = start
        while context.is_active():
            if credit == 0 or position >= len(self.events):
                more = next(requests, None)
                if more is None:
                    return
                self.requested.append(more.num_requested)
                credit += more.num_requested
                continue
            if self.drop_after is not None and sent >= self.drop_after:
                self.drop_after = None
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
            replay, data = self.events[position]
            event = pb.ProducerEvent(id=str(position), schema_id="s1", payload=data)
            yield pb.FetchResponse(
                events=[pb.ConsumerEvent(event=event, replay_id=replay)], latest_replay_id=replay
            )
            position, sent, credit = position + 1, sent + 1, credit - 1


@pytest.fixture
def bus() -> Iterator[tuple[Bus, grpc.Channel]]:
    servicer = Bus()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add_PubSubServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    chan = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield servicer, chan
    server.stop(grace=None)


class Session:
    def __init__(self) -> None:
        self.token = "good"
        self.renewals = 0

    def auth(self) -> Auth:
        return Auth(self.token, "https://org.example", "00D")

    def renew(self) -> None:
        self.renewals += 1
        self.token = "good"


def take(sub: Subscriber, count: int) -> list[Change | Gap]:
    return [sub.deliveries.get(timeout=10) for _ in range(count)]


def subscriber(
    chan: grpc.Channel, session: Session, batch: int = 3, backlog: int | None = None
) -> Subscriber:
    wake = threading.Event()
    return Subscriber(
        chan,
        [TOPIC],
        auth=session.auth,
        renew=session.renew,
        notify=wake.set,
        batch=batch,
        backlog=0 if backlog is None else backlog,  # 0: asks only for what is consumed
    )


def wait_connected(sub: Subscriber, connected: bool) -> None:
    deadline = time.monotonic() + 10
    while sub.states[TOPIC].connected is not connected:
        assert time.monotonic() < deadline, f"the stream never became connected={connected}"
        time.sleep(0.05)


def test_events_are_decoded_with_one_schema_call_and_flow_control(bus: Any) -> None:
    servicer, chan = bus
    sub = subscriber(chan, Session(), batch=3)
    try:
        sub.start(lambda: {TOPIC: b"1"})  # resume after the first event: 2..7 remain
        first = take(sub, 3)
        with pytest.raises(queue.Empty):
            sub.deliveries.get(timeout=0.5)  # three asked for, three sent
        sub.consumed(TOPIC, 3)
        rest = take(sub, 3)
    finally:
        sub.close()
    changes = [c for c in first + rest if isinstance(c, Change)]
    assert [c.replay_id for c in changes] == [b"2", b"3", b"4", b"5", b"6", b"7"]
    assert changes[0].entity == "Order"
    assert changes[0].record_ids == ("801000000000000002",)
    assert changes[0].changed_fields == ("Status", "LastModifiedDate")
    assert changes[0].commit_user == "005000000000001AAA"
    assert changes[0].values["Status"] == "Activated"
    assert servicer.schema_calls == 1
    assert servicer.firsts[0].replay_preset == pb.ReplayPreset.CUSTOM
    assert servicer.requested[:2] == [3, 3]


def test_a_busy_daemon_keeps_the_stream_asking_up_to_the_backlog(bus: Any) -> None:
    """A server ends a stream with nothing requested: while the daemon is busy (nothing
    consumed) the stream asks again for what arrives, until the backlog is full."""
    servicer, chan = bus
    sub = subscriber(chan, Session(), batch=3, backlog=5)
    try:
        sub.start(lambda: {TOPIC: b"1"})  # 2..7: six events, more than the first three asked for
        deadline = time.monotonic() + 10
        while sub.deliveries.qsize() < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.deliveries.qsize() == 6  # none consumed, all six came
        # Asked on arrival for each of the first four (the queue under five), then owed.
        assert sum(servicer.requested) == 3 + 4
        sub.consumed(TOPIC, 6)  # the daemon took them in: the owed two are asked for
        deadline = time.monotonic() + 10
        while sum(servicer.requested) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(servicer.requested) == 9
    finally:
        sub.close()


def test_a_dropped_stream_is_a_gap_and_resumes_after_the_last_event(bus: Any) -> None:
    servicer, chan = bus
    servicer.drop_after = 2
    sub = subscriber(chan, Session(), batch=10)
    try:
        sub.start(lambda: {TOPIC: b"1"})
        got = take(sub, 3)
        assert [type(g) for g in got] == [Change, Change, Gap]
        after = take(sub, 4)
    finally:
        sub.close()
    assert [c.replay_id for c in after if isinstance(c, Change)] == [b"4", b"5", b"6", b"7"]
    assert servicer.firsts[1].replay_id == b"3"
    assert sub.states[TOPIC].drops == 1


def test_a_refused_replay_id_is_a_gap_then_latest(bus: Any) -> None:
    servicer, chan = bus
    servicer.forget_before = 5
    sub = subscriber(chan, Session())
    try:
        sub.start(lambda: {TOPIC: b"2"})
        gap = take(sub, 1)[0]
        subscribed = len(servicer.firsts)  # when the gap came
    finally:
        sub.close()
    assert isinstance(gap, Gap) and "replay id refused" in gap.reason and not gap.routine
    assert subscribed == 2  # the gap comes once the LATEST stream is open: nothing between
    assert servicer.firsts[0].replay_preset == pb.ReplayPreset.CUSTOM
    assert servicer.firsts[1].replay_preset == pb.ReplayPreset.LATEST


def test_an_expired_session_is_renewed_through_the_login(bus: Any) -> None:
    _servicer, chan = bus
    session = Session()
    session.token = "expired"
    sub = subscriber(chan, session)
    try:
        assert sub.check() == {TOPIC: "s1"}
        assert session.renewals == 1
    finally:
        sub.close()


def test_check_names_a_topic_that_does_not_exist(bus: Any) -> None:
    _servicer, chan = bus
    sub = Subscriber(chan, ["/data/NopeChangeEvent"], auth=Session().auth, renew=lambda: None)
    try:
        with pytest.raises(SubscribeError, match="NopeChangeEvent: NOT_FOUND"):
            sub.check()
    finally:
        sub.close()


def test_a_first_subscription_at_latest_is_a_routine_gap_once_open(bus: Any) -> None:
    servicer, chan = bus
    sub = subscriber(chan, Session())
    try:
        sub.start(dict)  # nothing stored: LATEST
        gap = take(sub, 1)[0]
    finally:
        sub.close()
    assert servicer.firsts[0].replay_preset == pb.ReplayPreset.LATEST
    assert isinstance(gap, Gap) and gap.routine  # what came before is polled, after it


def test_a_new_lead_resumes_from_what_is_stored_then(bus: Any) -> None:
    servicer, chan = bus
    leading = threading.Event()
    stored: dict[str, bytes | None] = {TOPIC: b"1"}
    session = Session()
    sub = Subscriber(
        chan, [TOPIC], auth=session.auth, renew=session.renew, leading=leading.is_set, batch=1
    )
    try:
        sub.start(lambda: dict(stored))
        leading.set()
        assert isinstance(take(sub, 1)[0], Change)
        wait_connected(sub, True)
        leading.clear()  # another instance leads, and takes events in up to the fifth
        wait_connected(sub, False)
        while not sub.deliveries.empty():
            sub.deliveries.get_nowait()  # what the old stream brought, up to the seventh
        stored[TOPIC] = b"5"
        leading.set()  # this one leads again
        again = take(sub, 1)
    finally:
        sub.close()
    assert [f.replay_id for f in servicer.firsts] == [b"1", b"5"]
    assert [getattr(c, "replay_id", None) for c in again] == [b"6"]


def test_only_the_leader_subscribes(bus: Any) -> None:
    servicer, chan = bus
    leading = threading.Event()
    session = Session()
    sub = Subscriber(chan, [TOPIC], auth=session.auth, renew=session.renew, leading=leading.is_set)
    try:
        sub.start(lambda: {TOPIC: b"1"})
        time.sleep(1.0)
        assert servicer.firsts == []  # another instance leads: no stream
        leading.set()
        assert isinstance(take(sub, 1)[0], Change)
        leading.clear()  # stepped down: the stream is cancelled, quietly
        wait_connected(sub, False)
    finally:
        sub.close()
    assert sub.states[TOPIC].drops == 0
    assert all(not isinstance(d, Gap) for d in list(sub.deliveries.queue))
