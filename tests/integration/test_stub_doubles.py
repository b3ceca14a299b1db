"""The stubs see every double: the same payload under another key, and cut-short bodies."""

from __future__ import annotations

import json
import socket

import pytest

from daemon.http import make_session
from downstream.http import HttpJsonConnector
from downstream.protocol import TaskRequest
from downstream.stubs import StubSystem


@pytest.fixture
def billing():
    stub = StubSystem("billing", token="billing-token")
    stub.start()
    yield stub
    stub.stop()


def send(stub: StubSystem, key: str, step: str, payload: dict, action: str = "charges") -> None:
    connector = HttpJsonConnector("billing", stub.url, make_session(), token="billing-token")
    request = TaskRequest(
        system="billing", action=action, idempotency_key=key, step_ref=step, payload=payload
    )
    connector.submit(request)


def test_the_same_payload_under_a_new_key_and_revision_is_a_payload_double(billing):
    charge = {"order_item_id": "802A", "quantity": 2, "lines": [{"a": 1, "b": 2}]}
    send(billing, "k1", "801A/bill/r1", charge)
    # the same work again: a new revision, a new key, fields in another order
    send(billing, "k2", "801A/bill/r2", {"lines": [{"b": 2, "a": 1}], "quantity": 2,
                                         "order_item_id": "802A"})  # fmt: skip

    stats = billing.stats()
    assert (stats["effects"], stats["duplicates"], stats["payload_doubles"]) == (2, 0, 1)
    (double,) = billing.doubles()
    assert (double["action"], double["keys"]) == ("charges", ["k1", "k2"])


def test_volatile_fields_do_not_hide_a_double_and_other_work_is_not_one(billing):
    send(billing, "k1", "801A/bill/r1", {"order_item_id": "802A", "sent_at": "10:00"})
    send(billing, "k2", "801B/bill/r1", {"order_item_id": "802A", "sent_at": "10:05"})
    send(billing, "k3", "801C/bill/r1", {"order_item_id": "802C", "sent_at": "10:05"})
    send(billing, "k4", "801D/bill/r1", {"order_item_id": "802C"}, action="charge-refunds")
    send(billing, "k1", "801A/bill/r1", {"order_item_id": "802A", "sent_at": "10:00"})  # replay

    assert billing.stats()["payload_doubles"] == 1
    assert [d["keys"] for d in billing.doubles()] == [["k1", "k2"]]


def test_a_body_shorter_than_its_content_length_makes_no_effect(billing):
    body = json.dumps({"order_item_id": "802A"}).encode()
    head = (
        "POST /charges HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer billing-token\r\n"
        f"Idempotency-Key: cut-1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 40}\r\n\r\n"
    ).encode()
    port = int(billing.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)  # the client gives up mid-body
        answer = conn.recv(4096).decode()

    assert answer.startswith("HTTP/1.1 400")
    assert billing.stats()["effects"] == 0
