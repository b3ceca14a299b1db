"""The error-translation table, through the real gateway and simple-salesforce, with
``responses`` standing in for the hard-to-provoke answers."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import responses
from simple_salesforce.api import Salesforce

from orchestration.errors import BudgetExhausted, FatalError, RecordError, RetriableError
from salesforce.budget import PacePolicy, Pacer
from salesforce.gateway import SalesforceGateway

INSTANCE = "https://acme.my.salesforce.com"
QUERY = f"{INSTANCE}/services/data/v62.0/query/"


def _client(token: str = "token-1") -> Salesforce:  # noqa: S107 - a fake session
    return Salesforce(
        instance_url=INSTANCE, session_id=token, session=requests.Session(), version="62.0"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _gateway(clock: Clock, **kwargs: Any) -> SalesforceGateway:
    return SalesforceGateway(
        _client(), timeout=7, attempts=3, clock=clock, sleep=clock.sleep, **kwargs
    )


def _error(code: str, message: str = "no") -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


OK = {"totalSize": 0, "done": True, "records": []}


def _query(gateway: SalesforceGateway) -> list[Any]:
    return [r for page in gateway.query_pages("SELECT Id FROM Order") for r in page]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "MALFORMED_QUERY", RecordError),
        (400, "INVALID_FIELD", RecordError),
        (404, "NOT_FOUND", RecordError),
        (403, "INSUFFICIENT_ACCESS", FatalError),
        (403, "API_DISABLED_FOR_ORG", FatalError),
    ],
)
@responses.activate
def test_errors_that_no_retry_cures_are_not_retried(status, code, error):
    responses.get(QUERY, json=_error(code), status=status)
    clock = Clock()
    with pytest.raises(error, match=code):
        _query(_gateway(clock))
    assert len(responses.calls) == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SERVER_UNAVAILABLE"),
        (500, "UNKNOWN_EXCEPTION"),
        (502, ""),
        (429, ""),
        (400, "UNABLE_TO_LOCK_ROW"),
    ],
)
@responses.activate
def test_passing_failures_are_retried_with_back_off(status, code):
    responses.get(QUERY, json=_error(code) if code else {}, status=status)
    responses.get(QUERY, json=OK)
    clock = Clock()
    assert _query(_gateway(clock)) == []
    assert len(responses.calls) == 2
    assert len(clock.slept) == 1


@responses.activate
def test_retry_after_is_honoured():
    responses.get(
        QUERY, json=_error("SERVER_UNAVAILABLE"), status=503, headers={"Retry-After": "42"}
    )
    responses.get(QUERY, json=OK)
    clock = Clock()
    _query(_gateway(clock))
    assert clock.slept[0] >= 42


@responses.activate
def test_retries_end_with_a_retriable_error():
    responses.get(QUERY, json=_error("SERVER_UNAVAILABLE"), status=503)
    clock = Clock()
    with pytest.raises(RetriableError, match="SERVER_UNAVAILABLE"):
        _query(_gateway(clock))
    assert len(responses.calls) == 3


@pytest.mark.parametrize(
    "message", ["ConcurrentPerOrgLongTxn Limit exceeded", "ConcurrentRequests Limit exceeded"]
)
@responses.activate
def test_a_concurrent_request_refusal_is_retried_after_seconds_without_a_hold(message):
    responses.get(QUERY, json=_error("REQUEST_LIMIT_EXCEEDED", message), status=403)
    responses.get(QUERY, json=OK)
    clock = Clock()
    gateway = _gateway(clock)
    assert _query(gateway) == []
    assert len(responses.calls) == 2
    (waited,) = clock.slept
    assert 2 <= waited <= 120
    assert gateway.pacer.blocked_until is None


@responses.activate
def test_a_spent_allowance_is_not_hammered():
    responses.get(
        QUERY,
        json=_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        status=403,
        headers={"Sforce-Limit-Info": "api-usage=15001/15000"},
    )
    clock = Clock()
    gateway = _gateway(clock)
    with pytest.raises(BudgetExhausted):
        _query(gateway)
    assert len(responses.calls) == 1 and clock.slept == []
    # No call at all until the next probe: the rolling window must free calls.
    with pytest.raises(BudgetExhausted, match="not sent"):
        _query(gateway)
    assert len(responses.calls) == 1
    assert gateway.api_usage is not None and gateway.api_usage.used == 15001
    assert gateway.pacer.blocked_until == clock.now + 300


@responses.activate
def test_an_expired_session_is_renewed_once_then_fatal():
    responses.get(QUERY, json=_error("INVALID_SESSION_ID"), status=401)
    logins: list[str] = []

    def relogin() -> Salesforce:
        logins.append("again")
        return _client(f"token-{len(logins) + 1}")

    clock = Clock()
    with pytest.raises(FatalError, match="INVALID_SESSION_ID"):
        _query(_gateway(clock, relogin=relogin))
    # Each of the 3 attempts logs in once and repeats the call; then it is fatal.
    assert len(logins) == 3
    assert len(responses.calls) == 6
    assert responses.calls[1].request.headers["Authorization"] == "Bearer token-2"


@responses.activate
def test_an_expired_session_renewed_once_goes_on():
    responses.get(QUERY, json=_error("INVALID_SESSION_ID"), status=401)
    responses.get(QUERY, json=OK)
    logins: list[str] = []

    def relogin() -> Salesforce:
        logins.append("again")
        return _client("token-2")

    clock = Clock()
    assert _query(_gateway(clock, relogin=relogin)) == []
    assert logins == ["again"] and clock.slept == []


@responses.activate
def test_an_expired_session_without_a_login_is_fatal():
    responses.get(QUERY, json=_error("INVALID_SESSION_ID"), status=401)
    with pytest.raises(FatalError, match="cannot be renewed"):
        _query(_gateway(Clock()))


@pytest.mark.parametrize(
    ("raised", "error", "text"),
    [
        (requests.exceptions.SSLError("bad cert"), FatalError, "TLS certificate"),
        (requests.ConnectionError("refused"), RetriableError, "cannot connect"),
        (requests.Timeout("slow"), RetriableError, "no answer in time"),
    ],
)
@responses.activate
def test_transport_failures(raised, error, text):
    responses.get(QUERY, body=raised)
    with pytest.raises(error, match=text):
        _query(_gateway(Clock()))


@responses.activate
def test_every_call_carries_a_timeout():
    responses.get(QUERY, json=OK)
    _query(_gateway(Clock()))
    sent: Any = responses.calls[0].request
    assert sent.req_kwargs["timeout"] == 7


@responses.activate
def test_a_limit_info_header_on_every_answer_feeds_the_budget():
    responses.get(QUERY, json=OK, headers={"Sforce-Limit-Info": "api-usage=91000/100000"})
    pacer = Pacer(PacePolicy(reserve=0.10, reserve_interval=900))
    clock = Clock()
    gateway = _gateway(clock, pacer=pacer)
    _query(gateway)
    assert pacer.usage is not None and pacer.usage.left == 9000
    assert pacer.under_reserve
    # Under the reserve one probe (a poll: a few calls) per reserve interval goes out.
    clock.now += 1000
    sent = len(responses.calls)
    with pytest.raises(BudgetExhausted, match="under the reserve"):
        for _ in range(10):
            _query(gateway)
    assert len(responses.calls) - sent == 3


@responses.activate
def test_a_composite_subrequest_error_is_translated_like_a_call():
    responses.post(
        f"{INSTANCE}/services/data/v62.0/composite",
        json={
            "compositeResponse": [
                {
                    "body": _error("INVALID_FIELD", "No such column 'Nope__c'"),
                    "httpHeaders": {},
                    "httpStatusCode": 400,
                    "referenceId": "q0",
                }
            ]
        },
    )
    with pytest.raises(RecordError, match="INVALID_FIELD"):
        _gateway(Clock()).query_many([("SELECT Nope__c FROM Order", False)])
