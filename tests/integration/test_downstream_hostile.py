"""The HTTP connector against hostile answers from a stub over real HTTP: none escapes as an
unexpected exception, none is taken for success, none makes a second effect."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.http import make_session
from downstream.http import HttpJsonConnector, retry_after
from downstream.protocol import Outcome, TaskRequest, Unreachable
from downstream.stub_hostile import REDIRECT_TO, Hostile
from downstream.stubs import StubSystem
from orchestration.errors import RetriableError


@pytest.fixture
def hostile():
    stubs: list[StubSystem] = []

    def start(kind: str) -> StubSystem:
        stub = StubSystem(
            "billing",
            token="billing-token",
            hostile=Hostile(kinds=(kind,), every=1, storm=2, stall_seconds=3, huge_bytes=3 * 2**20),
        )
        stub.start()
        stubs.append(stub)
        return stub

    yield start
    for stub in stubs:
        stub.stop()


def submit(stub: StubSystem, key: str = "k1"):
    connector = HttpJsonConnector(
        "billing", stub.url, make_session(), token="billing-token", timeout=1.0
    )
    request = TaskRequest(
        system="billing",
        action="charges",
        idempotency_key=key,
        step_ref="801A/bill/r1",
        payload={"order_item_id": "802A"},
    )
    return connector.submit(request)


@pytest.mark.parametrize(
    ("kind", "message", "effects"),
    [
        ("truncated", "billing: answer cut off", 1),
        ("reset", "billing: answer cut off", 1),
        ("invalid_json", "billing: answered invalid JSON", 1),
        ("html", "billing: answered text/html, not JSON", 0),
        ("huge", "billing: answer larger than 1 MB", 1),
    ],
)
def test_a_spoiled_answer_is_retriable_with_its_reason_and_a_resend_makes_no_second_effect(
    hostile, kind, message, effects
):
    stub = hostile(kind)
    for _ in range(2):  # the resend gets the same treatment, and is a replay
        with pytest.raises(RetriableError) as info:
            submit(stub)
        assert str(info.value).startswith(message)
        assert not isinstance(info.value, Unreachable), "the system answered: not offline"
    stats = stub.stats()
    assert (stats["effects"], stats["duplicates"], stats["payload_doubles"]) == (effects, 0, 0)


def test_a_redirect_is_not_followed_and_fails_naming_its_location(hostile):
    stub = hostile("redirect")
    result = submit(stub)
    assert (result.outcome, result.code) == (Outcome.FAILED, "redirect")
    assert result.message == f"billing: answered 302 to {REDIRECT_TO}, not followed"
    assert stub.stats()["effects"] == 0


def test_a_204_without_a_body_is_success(hostile):
    stub = hostile("no_content")
    assert submit(stub).outcome is Outcome.COMPLETED
    assert stub.stats()["effects"] == 1


def test_a_stall_longer_than_the_timeout_is_unreachable(hostile):
    stub = hostile("stall")
    with pytest.raises(Unreachable, match="no answer within 1 s"):
        submit(stub)


@pytest.mark.parametrize("kind", ["retry_nan", "retry_negative", "retry_far"])
def test_a_retry_after_that_is_not_a_sane_delay_is_ignored(hostile, kind):
    with pytest.raises(RetriableError) as info:
        submit(hostile(kind))
    assert (str(info.value), info.value.retry_after) == ("billing: HTTP 503", None)


def test_a_retry_after_http_date_and_a_429_storm_keep_their_delay(hostile):
    with pytest.raises(RetriableError) as info:
        submit(hostile("retry_date"))
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 4

    storm = hostile("storm")
    for key in ("k1", "k2"):
        with pytest.raises(RetriableError, match="HTTP 429") as info:
            submit(storm, key)
        assert info.value.retry_after == 1.0
    assert storm.stats()["effects"] == 0


def test_retry_after_values_read_as_delays():
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert retry_after("Tue, 01 Dec 2026 09:00:30 GMT", now) == 30.0
    assert retry_after("Tue, 01 Dec 2026 08:00:00 GMT", now) == 0.0  # past: at once
    assert retry_after("soon", now) is None
    for value in ("nan", "inf", "-1", "1e12", "Tue, 01 Dec 2099 09:00:00 GMT"):
        assert RetriableError("x", retry_after=retry_after(value, now)).retry_after is None
