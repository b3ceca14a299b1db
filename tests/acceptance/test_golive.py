"""Go-live as a process (the short run of reliability.golive, which does 2,000 orders): an
org with history and orders after the cut-over; `orderflow run` killed during adoption,
started again, and only what follows the cut-over sent."""

from __future__ import annotations

from pathlib import Path

from reliability import golive


def test_a_first_start_adopts_history_survives_a_kill_and_sends_only_what_follows(
    tmp_path: Path,
):
    report = golive.run(tmp_path / "golive", historic=200, live=20, timeout=240)

    assert report.killed_during_adoption
    assert report.sent_before_restart == 0, "adoption sends nothing"
    assert report.adopted == report.historic == 204, "every historic order and change order"
    assert report.adopted_live == 0
    assert report.live_completed == report.live == 20
    assert report.effects == report.steps_sent, "one effect per step sent"
    assert report.effects == {"erp": 20, "billing": 40, "provisioning": 40}
    assert report.erp_orders_not_live == 0
    assert report.history_in_payloads == 0
    assert report.duplicates == 0
    assert report.history_statuses_written == 0
    assert report.ok
