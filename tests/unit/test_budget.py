"""The API budget's pace (pure: times are plain numbers)."""

from __future__ import annotations

from salesforce.budget import PacePolicy, Pacer
from salesforce.transport import ApiUsage, parse_limit_info

POLICY = PacePolicy(interval=5, max_idle=60, reserve=0.10, reserve_interval=900)


def test_idle_polls_back_off_up_to_the_maximum_and_snap_back_on_work():
    pacer = Pacer(POLICY)
    now = 0.0
    intervals = []
    for _ in range(6):
        pacer.polled(now, found=False, calls=1)
        intervals.append(pacer.poll_interval)
    assert intervals == [10, 20, 40, 60, 60, 60]
    pacer.polled(now, found=True, calls=1)
    assert pacer.poll_interval == 5


def test_the_loop_waits_for_the_next_poll_when_idle_and_the_base_interval_when_busy():
    pacer = Pacer(POLICY)
    for _ in range(4):
        pacer.polled(100.0, found=False, calls=1)
    assert pacer.next_wait(100.0, busy=False) == 60
    assert pacer.next_wait(130.0, busy=False) == 30
    # Steps waiting on downstream answers: cycles at once, but no poll before it is due.
    assert pacer.next_wait(130.0, busy=True) == 5
    assert not pacer.poll_due(130.0) and pacer.poll_due(160.0)


def test_projected_calls_per_day_follow_the_pace():
    pacer = Pacer(POLICY)
    pacer.polled(0, found=True, calls=1)
    assert pacer.projected_calls_per_day() == 17_280  # the 5-second poll
    for _ in range(5):
        pacer.polled(0, found=False, calls=1)
    assert pacer.projected_calls_per_day() == 1_440


def test_under_the_reserve_one_poll_per_reserve_interval_and_nothing_else():
    pacer = Pacer(POLICY)
    pacer.observe(ApiUsage(used=95_000, limit=100_000))
    assert pacer.under_reserve and pacer.reserve_calls == 10_000
    assert pacer.allow(0.0) is None  # the probe
    assert pacer.allow(1.0) is None and pacer.allow(2.0) is None  # its pages
    refusal = pacer.allow(3.0)
    assert refusal is not None and "under the reserve" in refusal
    pacer.polled(3.0, found=True, calls=3)
    assert pacer.poll_interval == 900
    assert pacer.allow(903.0) is None
    pacer.observe(ApiUsage(used=50_000, limit=100_000))  # the rolling window freed calls
    pacer.polled(904.0, found=True, calls=1)
    assert pacer.poll_interval == 5 and pacer.allow(905.0) is None


def test_a_spent_allowance_holds_calls_and_probes_every_probe_interval():
    pacer = Pacer(PacePolicy(interval=5, reserve=0.10, probe_interval=300))
    pacer.spent(10.0)
    assert not pacer.probe_due(11.0)
    refusal = pacer.allow(11.0)
    assert refusal is not None and "next probe in 299 s" in refusal
    assert pacer.next_wait(11.0, busy=False) == 299
    assert pacer.probe_due(310.0)
    # Still spent: held, the next probe one interval on.
    assert not pacer.probed(310.0, ApiUsage(used=15_001, limit=15_000))
    assert pacer.allow(311.0) is not None and pacer.probe_due(610.0)
    # Freed, but not above the reserve (1,500 of 15,000): still held.
    assert not pacer.probed(610.0, ApiUsage(used=13_500, limit=15_000))
    # Above the reserve: calls resume at once.
    assert pacer.probed(910.0, ApiUsage(used=13_499, limit=15_000))
    assert pacer.allow(910.0) is None and not pacer.probe_due(10_000.0)


def test_a_longer_delay_asked_by_salesforce_is_kept_and_no_answer_keeps_the_hold():
    pacer = Pacer(PacePolicy(probe_interval=300))
    pacer.spent(0.0, retry_after=1200)
    assert not pacer.probe_due(1199.0) and pacer.probe_due(1200.0)
    assert not pacer.probed(1200.0, None)
    assert pacer.allow(1201.0) is not None and pacer.probe_due(1500.0)


def test_limit_info_header():
    assert parse_limit_info("api-usage=25/15000") == ApiUsage(25, 15000)
    assert parse_limit_info("api-usage=25/15000; per-app-api-usage=17/250(appName=x)") == (
        ApiUsage(25, 15000)
    )
    assert parse_limit_info(None) is None
