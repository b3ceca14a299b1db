"""The emulator's Pub/Sub API: real gRPC over TLS, the generated stub as a raw client."""

from __future__ import annotations

import io
import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import grpc
import pytest

from salesforce.emulator import Emulator
from salesforce.emulator.auth import ADMIN_USER_ID, API_USER_ID
from salesforce.emulator.events import OVERFLOW_ID
from salesforce.emulator.metadata import load
from salesforce.pubsub import changed_fields
from salesforce.pubsub import pubsub_api_pb2 as pb
from salesforce.pubsub import pubsub_api_pb2_grpc as pb_grpc
from tests.integration.emulator_helpers import TIMEOUT, connect, data_url, pinned_session

ORDERS = "/data/OrderChangeEvent"
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(
        tmp_path / "org", admin_api=True, pubsub_keepalive=0.2, pubsub_idle_timeout=1.0
    )
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def stub(emu: Emulator) -> Iterator[pb_grpc.PubSubStub]:
    credentials = grpc.ssl_channel_credentials(emu.ca_file.read_bytes())
    with grpc.secure_channel(emu.pubsub_endpoint, credentials) as channel:
        yield pb_grpc.PubSubStub(channel)


def _org_id(emu: Emulator, token: str) -> str:
    """The org id as the REST side reports it (OpenID Connect userinfo)."""
    with pinned_session(emu) as session:
        answer = session.get(
            f"{emu.url}/services/oauth2/userinfo",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
    answer.raise_for_status()
    return str(answer.json()["organization_id"])


@pytest.fixture
def auth(emu: Emulator) -> Metadata:
    token = emu.issue_session()
    return (("accesstoken", token), ("instanceurl", emu.url), ("tenantid", _org_id(emu, token)))


class Requests:
    """The client side of a Subscribe stream: FetchRequests sent when the test says."""

    def __init__(self, first: pb.FetchRequest) -> None:
        self._queue: queue.Queue[pb.FetchRequest] = queue.Queue()
        self._queue.put(first)

    def more(self, n: int, topic: str = "") -> None:
        self._queue.put(pb.FetchRequest(topic_name=topic, num_requested=n))

    def __iter__(self) -> Iterator[pb.FetchRequest]:
        while True:
            yield self._queue.get()


def _subscribe(
    stub: pb_grpc.PubSubStub,
    auth: Metadata,
    n: int,
    preset: Any = pb.ReplayPreset.EARLIEST,
    replay_id: bytes = b"",
    topic: str = ORDERS,
) -> tuple[Requests, Any]:
    first = pb.FetchRequest(
        topic_name=topic, replay_preset=preset, replay_id=replay_id, num_requested=n
    )
    requests_ = Requests(first)
    return requests_, stub.Subscribe(iter(requests_), metadata=auth, timeout=TIMEOUT)


def _schema(stub: pb_grpc.PubSubStub, auth: Metadata, schema_id: str) -> dict[str, Any]:
    info = stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=auth)
    schema: dict[str, Any] = json.loads(info.schema_json)
    return schema


def _decode(stub: pb_grpc.PubSubStub, auth: Metadata, event: Any) -> dict[str, Any]:
    schema = _schema(stub, auth, event.event.schema_id)
    record: Any = fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema)
    header = record["ChangeEventHeader"]
    header["changed"] = set(changed_fields.decode(header["changedFields"], schema))
    header["nulled"] = set(changed_fields.decode(header["nulledFields"], schema))
    return record


def _events(call: Any, n: int) -> list[Any]:
    """The next ``n`` events of a stream (keepalives skipped)."""
    found: list[Any] = []
    while len(found) < n:
        found.extend(next(call).events)
    return found


def _order(emu: Emulator) -> str:
    account = emu.insert("Account", {"Name": "Acme"})
    fields = {"AccountId": account, "Status": "Draft", "EffectiveDate": "2026-01-01"}
    return emu.insert("Order", fields)


def _refused(
    stub: pb_grpc.PubSubStub, metadata: Metadata, topic: str = ORDERS
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=metadata)
    error: Any = raised.value
    return error.code(), error.details()


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        while True:
            next(call)
    error: Any = raised.value
    return error.code(), error.details()


# -- topics, schemas, auth --------------------------------------------------------------------


def test_topics_and_schema(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    topics = {}
    for entity in ("OrderChangeEvent", "OrderItemChangeEvent", "InvoiceChangeEvent"):
        info = stub.GetTopic(pb.TopicRequest(topic_name=f"/data/{entity}"), metadata=auth)
        assert info.can_subscribe is True
        topics[entity] = info.schema_id
    schema = _schema(stub, auth, topics["OrderChangeEvent"])
    assert (schema["name"], schema["namespace"]) == ("OrderChangeEvent", "com.sforce.eventbus")
    header = schema["fields"][0]
    assert header["name"] == "ChangeEventHeader"
    header_fields = {f["name"]: f["type"] for f in header["type"]["fields"]}
    assert {"GAP_UPDATE", "GAP_OVERFLOW", "CREATE"} <= set(header_fields["changeType"]["symbols"])
    assert header_fields["recordIds"] == {"type": "array", "items": "string"}
    assert header_fields["commitTimestamp"] == "long"
    names = [f["name"] for f in schema["fields"][1:]]
    expected = [f.name for f in emu.schema.obj("Order").fields.values()]
    assert names == [n for n in expected if n not in ("Id", "IsDeleted", "SystemModstamp")]
    assert all(f["type"][0] == "null" and f["default"] is None for f in schema["fields"][1:])
    assert _schema(stub, auth, topics["OrderChangeEvent"]) == schema  # a stable id
    assert topics["OrderChangeEvent"] != topics["OrderItemChangeEvent"]

    code, message = _refused(stub, auth, "/data/AccountChangeEvent")
    assert code == grpc.StatusCode.NOT_FOUND
    assert "Topic not found: /data/AccountChangeEvent" in message
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetSchema(pb.SchemaRequest(schema_id="nope"), metadata=auth)
    error: Any = unknown.value
    assert error.code() == grpc.StatusCode.NOT_FOUND

    emu.select_cdc(["OrderChangeEvent"])
    code, _ = _refused(stub, auth, "/data/OrderItemChangeEvent")
    assert code == grpc.StatusCode.NOT_FOUND


def test_selected_entities_come_from_the_metadata(tmp_path: Path) -> None:
    assert sorted(load().cdc_entities) == [
        "InvoiceChangeEvent",
        "OrderChangeEvent",
        "OrderItemChangeEvent",
    ]
    with Emulator(tmp_path / "org", invoices=False) as emu:
        token = emu.issue_session()
        auth = (("accesstoken", token), ("instanceurl", emu.url), ("tenantid", _org_id(emu, token)))
        credentials = grpc.ssl_channel_credentials(emu.ca_file.read_bytes())
        with grpc.secure_channel(emu.pubsub_endpoint, credentials) as channel:
            stub = pb_grpc.PubSubStub(channel)
            stub.GetTopic(pb.TopicRequest(topic_name=ORDERS), metadata=auth)
            code, _ = _refused(stub, auth, "/data/InvoiceChangeEvent")
    assert code == grpc.StatusCode.NOT_FOUND


def test_an_org_without_pubsub(tmp_path: Path) -> None:
    with Emulator(tmp_path / "org", pubsub=False) as emu:
        with pytest.raises(RuntimeError):
            _ = emu.pubsub_endpoint
        assert connect(emu).query("SELECT Id FROM Order")["totalSize"] == 0


def test_auth(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    token, url, tenant = (value for _, value in auth)
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    assert _refused(stub, (("instanceurl", url), ("tenantid", tenant)))[0] == unauthenticated
    bad = (("accesstoken", "00D!nope"), ("instanceurl", url), ("tenantid", tenant))
    assert _refused(stub, bad)[0] == unauthenticated
    other_org = (("accesstoken", token), ("instanceurl", url), ("tenantid", "00D000000000001AAA"))
    assert _refused(stub, other_org)[0] == grpc.StatusCode.PERMISSION_DENIED

    # The session expires on the REST side: the Pub/Sub API refuses it as well.
    emu.refuse_next("invalid_session")
    with pinned_session(emu) as session:
        answer = session.get(
            data_url(emu, "limits"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
    assert answer.status_code == 401
    assert _refused(stub, auth)[0] == unauthenticated
    _, call = _subscribe(stub, auth, 1)
    assert _code(call)[0] == unauthenticated


# -- events -----------------------------------------------------------------------------------


def test_a_rest_update_arrives_as_an_update(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    order = _order(emu)
    _, call = _subscribe(stub, auth, 10, pb.ReplayPreset.LATEST)
    keepalive = next(call)  # the subscription stands: what follows is live
    assert list(keepalive.events) == []
    assert keepalive.latest_replay_id
    sf: Any = connect(emu)
    assert sf.Order.update(order, {"Description": "rush", "EndDate": "2026-12-31"}) == 204
    (event,) = _events(call, 1)
    record = _decode(stub, auth, event)
    header = record["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert header["recordIds"] == [order]
    assert header["entityName"] == "Order"
    assert header["changed"] == {"Description", "EndDate", "LastModifiedDate"}
    assert header["nulled"] == set()
    assert header["commitUser"] == API_USER_ID
    assert (record["Description"], record["Status"]) == ("rush", None)  # only changes are set
    assert record["EndDate"].isoformat() == "2026-12-31"

    # Nulling a field: marked in nulledFields; an admin's edit in the UI is theirs.
    emu.update("Order", order, {"Description": None})
    (event,) = _events(call, 1)
    header = _decode(stub, auth, event)["ChangeEventHeader"]
    assert header["nulled"] == {"Description"}
    assert header["commitUser"] == ADMIN_USER_ID
    assert int.from_bytes(event.replay_id, "big") > int.from_bytes(
        keepalive.latest_replay_id, "big"
    )


def test_creates_and_deletes_and_rollbacks(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    account = emu.insert("Account", {"Name": "Acme"})
    sf: Any = connect(emu)
    fields = {"AccountId": account, "Status": "Draft", "EffectiveDate": "2026-02-01"}
    order = sf.Order.create(fields)["id"]
    # All or none: one bad record rolls the other back, and nothing is published.
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Order"}, "id": order, "Description": "kept?"},
            {"attributes": {"type": "Order"}, "id": "801000000000000AAA", "Description": "x"},
        ],
    }
    sf.restful("composite/sobjects", method="PATCH", json=body)
    assert sf.Order.delete(order) == 204
    _, call = _subscribe(stub, auth, 10)
    records = [_decode(stub, auth, event) for event in _events(call, 2)]
    create, delete = (r["ChangeEventHeader"] for r in records)
    assert (create["changeType"], delete["changeType"]) == ("CREATE", "DELETE")
    assert create["recordIds"] == delete["recordIds"] == [order]
    assert records[0]["EffectiveDate"].isoformat() == "2026-02-01"
    assert records[0]["Status"] == "Draft"
    assert emu.events_published == {ORDERS: 2}


def test_flow_control(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    order = _order(emu)
    for n in range(3):
        emu.update("Order", order, {"Description": f"v{n}"})
    more, call = _subscribe(stub, auth, 1)
    first = next(call)  # four events wait; one was asked for
    assert (len(first.events), first.pending_num_requested) == (1, 0)
    more.more(2)
    events = _events(call, 2)
    assert [_decode(stub, auth, e)["Description"] for e in events] == ["v0", "v1"]
    more.more(5)
    response = next(call)
    assert [_decode(stub, auth, e)["Description"] for e in response.events] == ["v2"]
    assert response.pending_num_requested == 4
    # Events asked for and none to send: keepalives, naming where the stream stands.
    idle = next(call)
    assert (list(idle.events), idle.pending_num_requested) == ([], 4)
    assert idle.latest_replay_id == response.events[0].replay_id
    more.more(500)  # at most 100 outstanding, as on a real org
    assert next(call).pending_num_requested == 100


def test_a_stream_nobody_asks_more_of_ends(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    _order(emu)
    _, call = _subscribe(stub, auth, 1)
    assert len(next(call).events) == 1
    with pytest.raises(StopIteration):  # no FetchRequest within the idle timeout
        next(call)
    assert call.code() == grpc.StatusCode.OK


def test_replay_presets_and_replay_ids(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    order = _order(emu)
    emu.update("Order", order, {"Description": "one"})
    emu.update("Order", order, {"Description": "two"})
    _, earliest = _subscribe(stub, auth, 10)
    events = _events(earliest, 3)
    ids = [e.replay_id for e in events]
    assert ids == sorted(ids) and all(len(i) == 8 for i in ids)

    _, latest = _subscribe(stub, auth, 10, pb.ReplayPreset.LATEST)
    assert list(next(latest).events) == []  # LATEST: only what comes next
    _, custom = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, ids[1])
    (after,) = _events(custom, 1)
    assert after.replay_id == ids[2]
    assert _decode(stub, auth, after)["Description"] == "two"

    emu.forget_events(before=ids[1])
    _, forgotten = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, ids[0])
    code, message = _code(forgotten)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert ids[0].hex() in message
    _, still = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, ids[1])
    assert _events(still, 1)[0].replay_id == ids[2]
    _, garbage = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, b"\x01\x02")
    assert _code(garbage)[0] == grpc.StatusCode.INVALID_ARGUMENT
    emu.forget_events()
    _, everything = _subscribe(stub, auth, 10, pb.ReplayPreset.EARLIEST)
    assert list(next(everything).events) == []


def test_drop_gap_and_pause(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    order = _order(emu)
    _, call = _subscribe(stub, auth, 10, pb.ReplayPreset.LATEST)
    next(call)
    emu.send_gap("OrderChangeEvent", [order], "GAP_UPDATE")
    emu.send_gap("OrderChangeEvent", change_type="GAP_OVERFLOW")
    gap, overflow = (_decode(stub, auth, e) for e in _events(call, 2))
    assert gap["ChangeEventHeader"]["changeType"] == "GAP_UPDATE"
    assert gap["ChangeEventHeader"]["recordIds"] == [order]
    assert gap["ChangeEventHeader"]["changed"] == set()
    assert gap["Status"] is None  # a gap says which records, never what changed
    assert overflow["ChangeEventHeader"]["changeType"] == "GAP_OVERFLOW"
    assert overflow["ChangeEventHeader"]["recordIds"] == [OVERFLOW_ID]

    emu.pause_events()
    published = emu.events_published[ORDERS]
    emu.update("Order", order, {"Description": "held"})
    assert emu.events_published[ORDERS] == published
    assert list(next(call).events) == []
    emu.resume_events()
    (held,) = _events(call, 1)
    assert _decode(stub, auth, held)["Description"] == "held"

    emu.drop_streams()
    assert _code(call)[0] == grpc.StatusCode.UNAVAILABLE
    _, again = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, held.replay_id)
    assert list(next(again).events) == []  # a new stream after the drop works


def test_userinfo_needs_a_session(emu: Emulator) -> None:
    with pinned_session(emu) as session:
        answer = session.get(
            f"{emu.url}/services/oauth2/userinfo",
            headers={"Authorization": "Bearer nope"},
            timeout=TIMEOUT,
        )
    assert answer.status_code == 403


def test_events_carry_only_fields_the_subscriber_may_read(tmp_path: Path) -> None:
    with Emulator(tmp_path / "org", pubsub_keepalive=0.2) as emu:  # the integration user
        token = emu.issue_session()
        auth = (("accesstoken", token), ("instanceurl", emu.url), ("tenantid", _org_id(emu, token)))
        order = _order(emu)
        emu.access.revoke("Order.Description")
        # A Salesforce user activates the order in the UI.
        emu.update("Order", order, {"Status": "Activated", "Description": "secret"})
        credentials = grpc.ssl_channel_credentials(emu.ca_file.read_bytes())
        with grpc.secure_channel(emu.pubsub_endpoint, credentials) as channel:
            stub = pb_grpc.PubSubStub(channel)
            _, call = _subscribe(stub, auth, 10)
            create, update = (_decode(stub, auth, e) for e in _events(call, 2))
    header = update["ChangeEventHeader"]
    # StatusCode: no read grant; ActivatedDate: stamped by the activation. LastModifiedDate
    # is there unless the create and the update fell in the same millisecond (the emulator
    # marks the fields whose value changed).
    assert header["changed"] - {"LastModifiedDate"} == {"Status", "ActivatedDate"}
    assert (update["Status"], update["Description"], update["StatusCode"]) == (
        "Activated",
        None,
        None,
    )
    assert header["commitUser"] == ADMIN_USER_ID
    assert create["ChangeEventHeader"]["changeType"] == "CREATE"
    assert create["AccountId"] is not None and create["StatusCode"] is None


def test_events_are_kept_72_hours(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    order = _order(emu)
    emu.update("Order", order, {"Description": "later"})
    _, call = _subscribe(stub, auth, 10)
    first, second = _events(call, 2)
    published = time.time()
    emu.events.clock = lambda: published + 71 * 3600
    _, kept = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, first.replay_id)
    assert _events(kept, 1)[0].replay_id == second.replay_id
    emu.events.clock = lambda: published + 73 * 3600
    _, expired = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, first.replay_id)
    assert _code(expired)[0] == grpc.StatusCode.INVALID_ARGUMENT
    _, earliest = _subscribe(stub, auth, 10)
    assert list(next(earliest).events) == []


def test_the_same_change_to_several_records_is_one_event(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    emu.events.group_records = True
    account = emu.insert("Account", {"Name": "Acme"})
    fields = {"AccountId": account, "Status": "Draft", "EffectiveDate": "2026-01-01"}
    orders = emu.insert_many("Order", [fields] * 3)
    sf: Any = connect(emu)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Order"}, "id": order, "Description": text}
            for order, text in zip(orders, ["same", "same", "other"], strict=True)
        ],
    }
    sf.restful("composite/sobjects", method="PATCH", json=body)
    _, call = _subscribe(stub, auth, 10, pb.ReplayPreset.EARLIEST)
    records = [_decode(stub, auth, e) for e in _events(call, 5)]
    creates = [r["ChangeEventHeader"]["recordIds"] for r in records[:3]]
    assert creates == [[order] for order in orders]  # creates are never grouped
    same, other = (r["ChangeEventHeader"] for r in records[3:])
    assert (same["recordIds"], other["recordIds"]) == (orders[:2], orders[2:])
    assert (same["sequenceNumber"], other["sequenceNumber"]) == (1, 2)
    assert same["transactionKey"] == other["transactionKey"]
    assert (records[3]["Description"], records[4]["Description"]) == ("same", "other")


def test_a_stream_checks_each_request(
    stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator
) -> None:
    more, call = _subscribe(stub, auth, 1, pb.ReplayPreset.LATEST)
    next(call)
    more.more(1, "/data/OrderItemChangeEvent")
    code, message = _code(call)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "/data/OrderItemChangeEvent" in message

    # The session expires on the REST side while a stream is open: its next request fails.
    more, call = _subscribe(stub, auth, 1, pb.ReplayPreset.LATEST)
    next(call)
    emu.refuse_next("invalid_session")
    token = auth[0][1]
    with pinned_session(emu) as session:
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            session.get(data_url(emu, "limits"), headers=headers, timeout=TIMEOUT).status_code
            == 401
        )
    more.more(1)
    assert _code(call)[0] == grpc.StatusCode.UNAUTHENTICATED


def test_http_controls(stub: pb_grpc.PubSubStub, auth: Metadata, emu: Emulator) -> None:
    order = _order(emu)
    base = f"{emu.url}/_emulator/pubsub"
    _, call = _subscribe(stub, auth, 10)
    (created,) = _events(call, 1)
    with pinned_session(emu) as session:
        stats = session.get(f"{base}/stats", timeout=TIMEOUT).json()
        assert stats == {"published": {ORDERS: 1}}
        gap = {"entity": "OrderChangeEvent", "recordIds": [order], "changeType": "GAP_DELETE"}
        assert session.post(f"{base}/gap", json=gap, timeout=TIMEOUT).status_code == 200
        (event,) = _events(call, 1)
        assert _decode(stub, auth, event)["ChangeEventHeader"]["changeType"] == "GAP_DELETE"
        bad = session.post(f"{base}/gap", json={"entity": "AccountChangeEvent"}, timeout=TIMEOUT)
        assert bad.status_code == 400
        assert "AccountChangeEvent is not selected" in bad.json()["error"]
        forget = {"before": event.replay_id.hex()}
        assert session.post(f"{base}/forget", json=forget, timeout=TIMEOUT).status_code == 200
        assert session.post(f"{base}/drop", timeout=TIMEOUT).status_code == 200
        assert session.post(f"{base}/nope", timeout=TIMEOUT).status_code == 404
    assert _code(call)[0] == grpc.StatusCode.UNAVAILABLE
    _, replay = _subscribe(stub, auth, 10, pb.ReplayPreset.CUSTOM, created.replay_id)
    assert _code(replay)[0] == grpc.StatusCode.INVALID_ARGUMENT
