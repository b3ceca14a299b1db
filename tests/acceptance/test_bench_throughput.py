"""A short run of the throughput benchmark: its figures come from a real settled run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import throughput

pytestmark = pytest.mark.slow


def test_every_order_has_a_first_dispatch_after_its_activation(tmp_path: Path):
    run = throughput.measure(20, tmp_path, timeout=300)

    assert run.settled
    assert run.tasks == 20 * 7  # the callouts-only rules: 1 ERP order + 2 steps a line
    assert len(run.latencies) == 20
    assert all(seconds >= 0 for seconds in run.latencies)
    assert run.raw_rows == run.tasks
    assert "orders/s" in throughput.report([run])
