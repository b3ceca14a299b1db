"""`orderflow` started as a process, as an operator or systemd would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.ops.demo import DEMO_CUTOVER, demo_environment
from tests.integration.world import World

ORDERFLOW = [sys.executable, "-m", "daemon"]


def orderflow(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [*ORDERFLOW, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")},
        cwd=Path(__file__).resolve().parents[2],
    )


def test_demo_settles_every_order_with_no_duplicate_effect(tmp_path):
    result = orderflow("demo", "--orders", "10", "--json", "--workdir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # Ten orders, and three change orders made while they are in flight (issue 8): two add
    # seats, one removes a product; their originals show Superseded. A fourth order is
    # cancelled (Cancelled; Completed with the refusal flagged if it was past its PONR).
    assert summary["orders_total"] == 13
    by_status = summary["orders_by_status"]
    assert (by_status["Superseded"], by_status["Fallout"]) == (3, 1)
    assert by_status["Completed"] + by_status.get("Cancelled", 0) == 9
    # Three orders are migrated from CPQ; one amends a subscription left out of the crosswalk
    # on purpose, and is held in Fallout before anything is sent (remap, issue 6).
    assert summary["expected_fallout"] == 1
    assert summary["remap"]["unresolved"] == 1
    assert summary["duplicate_effects"] == 0
    # The ERP gets one sales order per settled order and one transfer per posted invoice.
    transferred = summary["invoices_by_erp_status"]["Transferred"]
    assert transferred > 0 and set(summary["invoices_by_erp_status"]) == {"Transferred"}
    # (and the amendments' changes and cancellations)
    assert summary["downstream_effects"]["erp"] >= 9 + transferred
    assert summary["salesforce_api_calls"] > 0
    assert set(summary) >= {
        "orders_total",
        "orders_by_status",
        "tasks_by_state",
        "salesforce_api_calls",
        "downstream_effects",
        "duplicate_effects",
        "elapsed_seconds",
    }
    assert summary["tasks_by_state"]["Fatally Failed"] == 1
    changed = {"Amended", "Canceled", "Discarded", "Skipped"}  # by the amendments
    assert set(summary["tasks_by_state"]) <= {"Completed", "Fatally Failed", *changed}


def test_run_stops_cleanly_on_sigterm(world: World, tmp_path):
    world.add_order("PLAT-PRO")
    env = demo_environment(world.emu, world.stubs, tmp_path)
    daemon = subprocess.Popen(
        [*ORDERFLOW, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and world.order_statuses() != {
            next(iter(world.order_statuses())): "Completed"
        }:
            time.sleep(0.2)
        assert list(world.order_statuses().values()) == ["Completed"]
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=15)
    finally:
        daemon.kill()
    assert daemon.returncode == 0
    assert "SIGTERM received" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ORDERFLOW_POLL_INTERVAL": "soon"}, "setting ORDERFLOW_POLL_INTERVAL:"),
        ({"ORDERFLOW_SF_CA_BUNDLE": "/nonexistent.pem"}, "no such file: /nonexistent.pem"),
        ({"ORDERFLOW_ERP_URL": "not a url"}, "setting ORDERFLOW_ERP_URL:"),
        ({}, "setting ORDERFLOW_ERP_URL: the rules send tasks to 'erp'; set its URL"),
        (
            {
                f"ORDERFLOW_{s}_URL": "http://127.0.0.1:9"
                for s in ("ERP", "BILLING", "PROVISIONING")
            },
            "setting ORDERFLOW_SF_SESSION_ID: no Salesforce credentials",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(variables, expected, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env["ORDERFLOW_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    env["ORDERFLOW_CUTOVER_AT"] = DEMO_CUTOVER
    env.update(variables)
    result = orderflow("sync", "--once", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("sync",), ("demo", "--orders", "-3"), ("demo", "--orders", "many"), ("frobnicate",)],
)
def test_bad_arguments_exit_2_with_one_line(args):
    result = orderflow(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("orderflow: ")
    assert result.stderr.count("\n") == 1, result.stderr


def test_rules_check_lists_problems_and_exits_2(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: '1'\nsystems: [erp]\nrules:\n  - name: r\n    steps:\n"
        "      - {key: a, kind: callout, system: crm, action: x, depends_on: [a]}\n"
    )
    result = orderflow("rules", "check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert any("rules.yaml:6:" in line and "unknown system 'crm'" in line for line in lines)
    assert any("unknown step 'a'" in line for line in lines)
    good = orderflow("rules", "check", "daemon/default_rules.yaml")
    assert good.returncode == 0
    assert "ok, version" in good.stdout
