"""The HTTP connector against the stub systems over real HTTP; error paths with responses."""

from __future__ import annotations

import pytest
import requests
import responses

from daemon.http import make_session
from downstream.http import HttpJsonConnector
from downstream.protocol import Outcome, TaskRequest
from downstream.stubs import StubSystem
from orchestration.errors import RetriableError


@pytest.fixture
def erp():
    stub = StubSystem("erp", token="erp-token")
    stub.start()
    yield stub
    stub.stop()


def request(key="k1", step="801A/erp_order.sales_order/r1", **payload):
    return TaskRequest(
        system="erp",
        action="sales-orders",
        idempotency_key=key,
        step_ref=step,
        payload=payload or {"order_number": "00000100"},
    )


def test_submit_reaches_the_stub_once_per_key(erp):
    connector = HttpJsonConnector("erp", erp.url, make_session(), token="erp-token")
    first = connector.submit(request())
    again = connector.submit(request())
    assert first.outcome is Outcome.COMPLETED
    assert first.external_ref == again.external_ref == "SO-000001"
    assert erp.stats() == {
        "name": "erp",
        "requests": 2,
        "effects": 1,
        "replays": 1,
        "duplicates": 0,
    }
    (effect,) = erp.effects
    assert (effect.action, effect.payload) == ("sales-orders", {"order_number": "00000100"})


def test_the_stub_counts_a_step_sent_under_a_new_key_as_a_duplicate(erp):
    connector = HttpJsonConnector("erp", erp.url, make_session(), token="erp-token")
    connector.submit(request(key="k1"))
    connector.submit(request(key="k2"))
    assert erp.stats()["duplicates"] == 1


def test_a_wrong_token_is_a_permanent_failure_with_the_systems_message(erp):
    connector = HttpJsonConnector("erp", erp.url, make_session(), token="wrong")
    result = connector.submit(request())
    assert result.outcome is Outcome.FAILED
    assert result.message == "erp: bad or missing token"
    assert "wrong" not in result.message
    assert erp.stats()["effects"] == 0


def test_an_unreachable_system_is_retriable():
    connector = HttpJsonConnector("erp", "http://127.0.0.1:9", make_session(), timeout=2)
    with pytest.raises(RetriableError, match="cannot connect"):
        connector.submit(request())


@responses.activate
@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retriable_and_keep_retry_after(status):
    responses.post(
        "https://erp.test/sales-orders",
        status=status,
        json={"message": "busy"},
        headers={"Retry-After": "7"},
    )
    connector = HttpJsonConnector("erp", "https://erp.test", requests.Session())
    with pytest.raises(RetriableError) as info:
        connector.submit(request())
    assert info.value.retry_after == 7.0


@responses.activate
def test_other_4xx_are_permanent_and_an_explicit_status_wins_over_2xx():
    responses.post(
        "https://erp.test/sales-orders", status=422, json={"message": "x" * 400, "code": "SKU"}
    )
    connector = HttpJsonConnector("erp", "https://erp.test", requests.Session())
    failed = connector.submit(request())
    assert (failed.outcome, failed.code, len(failed.message)) == (Outcome.FAILED, "SKU", 255)

    responses.replace(
        responses.POST,
        "https://erp.test/sales-orders",
        status=200,
        json={"status": "rejected", "message": "credit hold"},
    )
    refused = connector.submit(request())
    assert (refused.outcome, refused.message) == (Outcome.FAILED, "erp: credit hold")
    responses.replace(
        responses.POST, "https://erp.test/sales-orders", status=202, json={"status": "accepted"}
    )
    assert connector.submit(request()).outcome is Outcome.ACCEPTED
