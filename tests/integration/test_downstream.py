"""The HTTP connector against the stub systems over real HTTP; rare error paths with responses."""

from __future__ import annotations

from datetime import date

import pytest
import requests
import responses

from daemon.http import make_session
from downstream.auth import ApiKeyAuth, BasicAuth, OAuthClientCredentials
from downstream.guard import GuardedSystem
from downstream.http import HttpJsonConnector
from downstream.protocol import Outcome, SystemOffline, TaskRequest, Unreachable
from downstream.stubs import StubFaults, StubSystem
from orchestration.errors import RecordError, RetriableError

ACTIVATION = {
    "order_item_id": "8025g0000000001AAA",
    "tenant": "0015g0000000001AAA",
    "license_sku": "LIC-PLATFORM-PRO",
    "seats": 5,
    "start_date": "2026-12-01",
}


@pytest.fixture
def started():
    stubs: list[StubSystem] = []

    def start(name: str = "erp", **options) -> StubSystem:
        stub = StubSystem(name, **options)
        stub.start()
        stubs.append(stub)
        return stub

    yield start
    for stub in stubs:
        stub.stop()


@pytest.fixture
def erp(started):
    return started("erp", token="erp-token")


def request(key="k1", step="801A/erp_order.sales_order/r1", action="sales-orders", **payload):
    return TaskRequest(
        system="erp",
        action=action,
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
    stats = erp.stats()
    assert (stats["requests"], stats["effects"], stats["distinct_keys"]) == (2, 1, 1)
    assert (stats["replays"], stats["duplicates"]) == (1, 0)
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
    assert erp.stats()["effects"] == 0


def test_basic_and_api_key_auth(started):
    basic = started("billing", basic=("orderflow", "s3cret-pass"))
    keyed = started("provisioning", api_key=("X-Api-Token", "k-123456789"))
    by_basic = HttpJsonConnector(
        "billing", basic.url, make_session(), auth=BasicAuth("orderflow", "s3cret-pass")
    )
    by_key = HttpJsonConnector(
        "provisioning", keyed.url, make_session(), auth=ApiKeyAuth("k-123456789", "X-Api-Token")
    )
    wrong = HttpJsonConnector(
        "billing", basic.url, make_session(), auth=BasicAuth("orderflow", "nope")
    )
    assert by_basic.submit(request()).outcome is Outcome.COMPLETED
    assert by_key.submit(request()).outcome is Outcome.COMPLETED
    assert wrong.submit(request(key="k2")).outcome is Outcome.FAILED
    assert "s3cret" not in repr(by_basic.__dict__)


def test_oauth_token_is_fetched_once_cached_and_renewed_when_refused(started):
    stub = started("erp", oauth=("orderflow-client", "client-secret-1"))
    session = make_session()
    auth = OAuthClientCredentials(
        "erp", session, f"{stub.url}/oauth/token", "orderflow-client", "client-secret-1"
    )
    connector = HttpJsonConnector("erp", stub.url, session, auth=auth)
    for n in range(3):
        assert connector.submit(request(key=f"k{n}", step=f"s{n}")).outcome is Outcome.COMPLETED
    assert stub.token_requests == 1

    stub.revoke_tokens()  # the system forgot every token: 401, a new token, the call again
    assert connector.submit(request(key="k9", step="s9")).outcome is Outcome.COMPLETED
    assert stub.token_requests == 2
    assert stub.stats()["effects"] == 4


def test_oauth_token_expiry_is_honoured(started):
    stub = started("erp", oauth=("c", "s"), token_lifetime=60)
    now = [0.0]
    session = make_session()
    auth = OAuthClientCredentials(
        "erp", session, f"{stub.url}/oauth/token", "c", "s", clock=lambda: now[0]
    )
    connector = HttpJsonConnector("erp", stub.url, session, auth=auth)
    connector.submit(request(key="a", step="a"))
    now[0] = 20.0  # within lifetime minus the margin
    connector.submit(request(key="b", step="b"))
    assert stub.token_requests == 1
    now[0] = 31.0  # past 60 - 30 s of margin: renewed before use
    connector.submit(request(key="c", step="c"))
    assert stub.token_requests == 2


def test_refused_oauth_credentials_are_a_step_error(started):
    stub = started("erp", oauth=("c", "s"))
    auth = OAuthClientCredentials("erp", make_session(), f"{stub.url}/oauth/token", "c", "bad")
    connector = HttpJsonConnector("erp", stub.url, make_session(), auth=auth)
    with pytest.raises(RecordError, match="OAuth token refused"):
        connector.submit(request())


def test_paths_per_action_and_status_and_cancel(started):
    stub = started("provisioning", completion="status", complete_after=None)
    connector = HttpJsonConnector(
        "provisioning",
        "http://unused.invalid",
        make_session(),
        paths={
            "activations": f"{stub.url}/activations",
            "status": f"{stub.url}/status/{{ref}}",
            "cancel": f"{stub.url}/cancel/{{ref}}",
        },
    )
    accepted = connector.submit(request(action="activations", **ACTIVATION))
    assert (accepted.outcome, accepted.external_ref) == (Outcome.ACCEPTED, "PRV-000001")
    assert connector.status("PRV-000001").outcome is Outcome.ACCEPTED
    unknown = connector.status("PRV-999999")
    assert (unknown.outcome, unknown.code) == (Outcome.FAILED, "not_found")
    assert connector.cancel("PRV-000001").outcome is Outcome.COMPLETED
    assert stub.effects[0].state == "canceled"


def test_status_completion_after_the_configured_delay(started):
    stub = started("provisioning", completion="status", complete_after=0.0)
    connector = HttpJsonConnector("provisioning", stub.url, make_session())
    accepted = connector.submit(request(action="activations", **ACTIVATION))
    assert accepted.outcome is Outcome.ACCEPTED
    done = connector.status(str(accepted.external_ref))
    assert (done.outcome, done.external_ref) == (Outcome.COMPLETED, "PRV-000001")


def test_a_rejected_sku_is_permanent_with_the_systems_message(started):
    stub = started("provisioning", faults=StubFaults(reject_skus=frozenset({"LIC-PLATFORM-PRO"})))
    connector = HttpJsonConnector("provisioning", stub.url, make_session())
    result = connector.submit(request(action="activations", **ACTIVATION))
    assert (result.outcome, result.code) == (Outcome.FAILED, "UNKNOWN_SKU")
    assert result.message == "provisioning: unknown SKU LIC-PLATFORM-PRO"


def test_a_share_of_503s_is_retriable_and_the_retry_makes_one_effect(started):
    stub = started("billing", faults=StubFaults(unavailable_share=0.5, seed=3))
    connector = HttpJsonConnector("billing", stub.url, make_session())
    outcomes: list[Outcome | None] = []
    for _ in range(20):
        try:
            outcomes.append(connector.submit(request(key="same")).outcome)
            break
        except RetriableError as exc:
            assert exc.retry_after == 1.0
            outcomes.append(None)
    assert outcomes[-1] is Outcome.COMPLETED and None in outcomes
    assert stub.stats()["effects"] == 1


def test_a_slow_answer_is_unreachable_and_the_resend_is_a_replay(started):
    stub = started("erp", faults=StubFaults(slow_share=1.0, slow_seconds=0.5))
    connector = HttpJsonConnector("erp", stub.url, make_session(), timeout=0.1)
    with pytest.raises(Unreachable, match="no answer within"):
        connector.submit(request())
    again = connector.submit(request())  # the effect was made: the same key replays it
    assert again.outcome is Outcome.COMPLETED
    assert (stub.stats()["effects"], stub.stats()["replays"]) == (1, 1)


def test_an_unreachable_system_trips_offline_after_n_failures_and_comes_back(started):
    stub = started("erp")
    guarded = GuardedSystem(
        HttpJsonConnector("erp", stub.url, make_session(), timeout=2), offline_after=2
    )
    stub.go_offline()
    for _ in range(2):
        with pytest.raises(Unreachable, match="cannot connect"):
            guarded.submit(request())
    assert guarded.offline and guarded.take_trip() and not guarded.take_trip()
    with pytest.raises(SystemOffline):
        guarded.submit(request())  # not even tried
    assert not guarded.probe()
    stub.come_online()
    assert guarded.probe()
    guarded.set_offline(False)
    assert guarded.submit(request()).outcome is Outcome.COMPLETED
    assert stub.stats()["requests"] == 1


def test_the_erp_lists_its_invoice_documents(started):
    stub = started("erp")
    connector = HttpJsonConnector("erp", stub.url, make_session())
    invoice = {
        "invoice_id": "3tt5g0000000001AAA",
        "invoice_number": "INV-0000001",
        "invoice_date": "2026-12-01",
        "total_amount": 250.0,
        "lines": [{"line_id": "3tu1", "product": "01tA", "quantity": 2, "amount": 250.0}],
    }
    result = connector.submit(request(action="invoices", **invoice))
    assert (result.outcome, result.external_ref) == (Outcome.COMPLETED, "DOC-000001")
    (doc,) = connector.documents(date(2026, 12, 1), date(2026, 12, 31))
    assert (doc.number, doc.source_id, doc.amount) == ("DOC-000001", "3tt5g0000000001AAA", 250.0)
    assert doc.quantities == {"01tA": 2.0}
    assert connector.documents(date(2027, 1, 1), date(2027, 1, 31)) == []


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
def test_other_4xx_are_permanent_trimmed_without_secrets_and_an_explicit_status_wins():
    responses.post(
        "https://erp.test/sales-orders",
        status=422,
        json={"message": "token tok-SECRET-123 lacks scope " + "x" * 400, "code": "SKU"},
    )
    connector = HttpJsonConnector(
        "erp", "https://erp.test", requests.Session(), token="tok-SECRET-123"
    )
    failed = connector.submit(request())
    assert (failed.outcome, failed.code, len(failed.message)) == (Outcome.FAILED, "SKU", 255)
    assert "tok-SECRET-123" not in failed.message and "****" in failed.message

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
    responses.replace(responses.POST, "https://erp.test/sales-orders", status=201, body="")
    assert connector.submit(request()).outcome is Outcome.COMPLETED  # no status field: 2xx
