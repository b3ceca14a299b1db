"""Short runs of the reliability suites (the full ones: `make reliability`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import crash, faults, hostile_downstream
from reliability.hostile_downstream import REASONS

pytestmark = pytest.mark.slow


def test_a_daemon_killed_five_times_loses_and_doubles_nothing(tmp_path: Path):
    report = crash.run(100, 5, tmp_path / "crash", seed=3)

    assert report.kills == 5
    assert report.statuses == {"Completed": 100}, report.problems
    assert (report.duplicates, report.payload_doubles) == (0, 0)
    expected = {"erp": 100, "billing": 300, "provisioning": 300}
    assert report.effects == report.expected_effects == expected
    assert (report.missing_plans, report.missing_steps, report.unfinished_steps) == (0, 0, 0)
    assert report.ok


def test_ten_percent_of_calls_failing_on_every_link_still_settles_every_order(tmp_path: Path):
    report = faults.run(50, tmp_path / "faults", seed=2)

    assert report.statuses == {"Completed": 50}, report.problems
    assert (report.duplicates, report.payload_doubles) == (0, 0)
    assert {k: v["effects"] for k, v in report.downstream.items()} == report.expected_effects
    assert report.lost_steps == 0
    # Every kind of Salesforce fault was met, and the limit was waited out without a call.
    assert set(report.sf_faults) >= {"503", "lock", "limit", "invalid_session"}
    assert report.limit_holds >= 1
    assert report.calls_during_hold == 0
    # Resends after timeouts and 503s were answered from the stubs' ledgers, not redone.
    assert sum(s["replays"] for s in report.downstream.values()) > 0
    # The outage held provisioning steps past their SLA: each was flagged, none wrongly.
    assert report.jeopardy is not None, "daemon.cycle.jeopardy is part of the tree"
    assert report.jeopardy.should > 0
    assert (report.jeopardy.missed, report.jeopardy.false_alarms) == (0, 0)
    assert report.ok


def test_every_hostile_downstream_answer_is_survived_while_good_orders_complete(tmp_path: Path):
    report = hostile_downstream.run(20, tmp_path / "hostile", hostile_orders=12, storm=4, seed=4)

    assert set(report.hostile_answers) == {*REASONS, "no_content"}, "every kind was met"
    assert report.good_completed == report.good_orders == 20, report.statuses
    assert report.unaccounted == []
    assert (report.duplicates, report.payload_doubles) == (0, 0)
    assert report.exited is None, "the daemon never exits"
    assert report.health_checks > 0 and report.health_failures == 0
    assert report.ok
