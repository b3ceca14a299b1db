"""Jeopardy per step against its SLA, at exactly the right times (pure, the clock moved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestration.jeopardy import Jeopardy, SlaStep, assess, sentence, worst
from orchestration.rules import Sla
from orchestration.states import StepState
from salesforce.fields import WRITTEN_FIELDS, StatusFields

S = StepState
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SLA = Sla(estimate="8h", jeopardy="2h")
US = timedelta(microseconds=1)


def at(step: SlaStep, hours: float, extra: timedelta = timedelta()) -> Jeopardy | None:
    return assess(step, T0 + timedelta(hours=hours) + extra).jeopardy


def test_a_started_step_goes_on_track_at_risk_late_at_exactly_the_right_times():
    step = SlaStep(state=S.IN_PROGRESS, sla=SLA, started_at=T0)
    assert at(step, 0) is Jeopardy.ON_TRACK
    assert at(step, 6, -US) is Jeopardy.ON_TRACK
    assert at(step, 6) is Jeopardy.AT_RISK  # start + estimate - threshold
    assert at(step, 8, -US) is Jeopardy.AT_RISK
    assert at(step, 8) is Jeopardy.LATE  # start + estimate
    found = assess(step, T0)
    assert (found.due_at, found.at_risk_at) == (T0 + timedelta(hours=8), T0 + timedelta(hours=6))


@pytest.mark.parametrize("state", [S.IN_PROGRESS, S.FAILED, S.ON_HOLD, S.FATALLY_FAILED])
def test_waiting_for_an_answer_a_retry_or_a_silent_system_is_not_fine(state):
    step = SlaStep(state=state, sla=SLA, started_at=T0)
    assert at(step, 6) is Jeopardy.AT_RISK
    assert at(step, 8) is Jeopardy.LATE


@pytest.mark.parametrize("state", [S.READY, S.ON_HOLD])
def test_a_step_that_could_start_but_has_not_counts_from_when_it_could(state):
    step = SlaStep(state=state, sla=SLA, waiting_since=T0)
    assert assess(step, T0).due_at == T0 + timedelta(hours=8)
    assert at(step, 8) is Jeopardy.LATE


def test_a_scheduled_step_counts_from_its_planned_start():
    planned = T0 + timedelta(days=3)
    step = SlaStep(state=S.SCHEDULED, sla=SLA, planned_start=planned, waiting_since=T0)
    assert assess(step, T0).due_at == planned + timedelta(hours=8)
    assert at(step, 72 + 6, -US) is Jeopardy.ON_TRACK
    assert at(step, 72 + 6) is Jeopardy.AT_RISK
    assert at(step, 72 + 8) is Jeopardy.LATE


def test_a_due_time_once_known_is_kept():
    # Due from when it went On Hold; starting two days later does not reset the clock.
    step = SlaStep(
        state=S.IN_PROGRESS,
        sla=SLA,
        started_at=T0 + timedelta(days=2),
        due_at=T0 + timedelta(hours=8),
    )
    assert at(step, 9) is Jeopardy.LATE


def test_a_finished_step_has_no_jeopardy_and_keeps_its_due_time():
    due = T0 + timedelta(hours=8)
    for state in (S.COMPLETED, S.SKIPPED, S.CANCELED, S.DISCARDED, S.AMENDED):
        found = assess(SlaStep(state=state, sla=SLA, started_at=T0, due_at=due), T0)
        assert (found.jeopardy, found.due_at) == (None, due)


def test_a_pending_step_is_on_track_with_no_due_time_and_no_sla_means_no_jeopardy():
    assert assess(SlaStep(state=S.PENDING, sla=SLA), T0).due_at is None
    assert at(SlaStep(state=S.PENDING, sla=SLA), 100) is Jeopardy.ON_TRACK
    assert at(SlaStep(state=S.IN_PROGRESS, started_at=T0), 100) is None


def test_the_worst_level_wins():
    assert worst([Jeopardy.ON_TRACK, None, "Late", Jeopardy.AT_RISK]) is Jeopardy.LATE
    assert worst(["On Track", "At Risk"]) is Jeopardy.AT_RISK
    assert worst([None, None]) is None


def test_a_threshold_not_below_the_estimate_is_refused():
    with pytest.raises(ValueError, match="smaller than the estimate"):
        Sla(estimate="1h", jeopardy="1h")


def test_the_sentence_says_which_step_how_late_and_when_it_was_due():
    title = "Provisioning: activate 25 seats"
    due = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    late = sentence(title, Jeopardy.LATE, due, due + timedelta(hours=2, minutes=5))
    assert late == "Provisioning: activate 25 seats is 2 h late (due 14:00 UTC)"
    assert sentence(title, Jeopardy.LATE, due, due + timedelta(seconds=20)).endswith(
        "is late (due 14:00 UTC)"
    )
    assert sentence(title, Jeopardy.LATE, due, due + timedelta(minutes=7)).endswith(
        "is 7 min late (due 14:00 UTC)"
    )
    risk = sentence(title, Jeopardy.AT_RISK, due, due - timedelta(hours=1))
    assert risk == "Provisioning: activate 25 seats is at risk (due 14:00 UTC)"
    other_day = sentence(title, Jeopardy.LATE, due, due + timedelta(days=3))
    assert other_day.endswith("is 3 d late (due 27 Nov 14:00 UTC)")
    assert len(sentence("x" * 400, Jeopardy.LATE, due, due)) == 255


def test_written_field_names_can_be_renamed_and_unknown_ones_are_refused():
    fields = StatusFields.renamed(
        {"Order.Jeopardy_Status__c": "Risk__c", "Fulfillment_Task__c": "ns__Step__c"}
    )
    assert fields.order_jeopardy == "Risk__c" and fields.line_jeopardy == "Jeopardy_Status__c"
    assert "Risk__c" in fields.by_object()["Order"]
    assert set(fields.by_object()) == {"Order", "OrderItem", "ns__Step__c"}
    with pytest.raises(ValueError, match=r"unknown field 'Order\.Nope__c'"):
        StatusFields.renamed({"Order.Nope__c": "X__c"})
    assert "Jeopardy__c" in WRITTEN_FIELDS["Fulfillment_Task__c"]
    assert "Order__c" not in WRITTEN_FIELDS["Fulfillment_Task__c"]  # set on create only


def test_bad_jeopardy_settings_get_one_clear_message_without_the_secret():
    from daemon.settings import load_settings
    from orchestration.errors import ConfigError

    with pytest.raises(ConfigError) as bad_url:
        load_settings(notify_webhook_url="ftp://hooks.example.com/T0/s3cr3t-token")
    assert str(bad_url.value) == "setting ORDERFLOW_NOTIFY_WEBHOOK_URL: must be an http(s) URL"
    with pytest.raises(ConfigError, match="ORDERFLOW_SF_WRITEBACK_FIELDS: unknown field"):
        load_settings(sf_writeback_fields={"Order.Nope__c": "X__c"})
    with pytest.raises(ConfigError, match="ORDERFLOW_JEOPARDY_INTERVAL"):
        load_settings(jeopardy_interval=0)
    settings = load_settings(notify_webhook_url="https://hooks.example.com/T0/s3cr3t-token")
    assert "s3cr3t" not in repr(settings)
    assert settings.jeopardy_interval == 30.0
