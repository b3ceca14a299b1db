"""A short run of the API economy benchmark (the full one: `make bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import api_economy

pytestmark = pytest.mark.slow


def test_orderflow_spends_fewer_salesforce_calls_than_point_to_point(tmp_path: Path):
    baseline, orderflow = api_economy.compare(50, interval=0.5, workdir=tmp_path, timeout=300)

    assert baseline.settled and orderflow.settled
    # The baseline writes its statuses one record a call: three integrations, every line.
    assert baseline.calls_by_kind.get("sobject", 0) >= 50 * (2 + 2 + 2) + 2 * 50 * 3
    assert orderflow.calls < baseline.calls / 10
    table = api_economy.report(baseline, orderflow, 0.5)
    assert "per 1,000 orders" in table and "ratio" in table
