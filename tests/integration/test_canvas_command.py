"""`orderflow canvas`: the canvas from the database alone, no Salesforce settings at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from daemon.commands.main import main
from tests.integration.world import World, run_until_settled


def test_orderflow_canvas_serves_a_store_a_run_filled(world: World, monkeypatch, tmp_path):
    order_id = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env["ORDERFLOW_DATABASE_URL"] = f"sqlite:///{world.workdir / 'orderflow.db'}"
    env["ORDERFLOW_OPERATOR_TOKEN"] = "t0ken"
    canvas = subprocess.Popen(
        [sys.executable, "-m", "daemon", "canvas", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert canvas.stdout is not None
        url = canvas.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/canvas/")
        rows = requests.get(f"{url}api/orders", timeout=10).json()["rows"]
        assert [(r["order_id"], r["status"]) for r in rows] == [(order_id, "Completed")]
        assert "Order" in requests.get(url, timeout=10).text
        off = requests.post(
            f"{url}api/systems/billing/offline", headers={"Authorization": "Bearer t0ken"}
        )
        assert off.json()["changed"] is True
    finally:
        canvas.send_signal(signal.SIGTERM)
        assert canvas.wait(timeout=30) == 0
        if canvas.stdout is not None:
            canvas.stdout.close()


def test_a_bad_port_is_one_line_and_exit_2(capsys):
    assert excinfo_code(lambda: main(["canvas", "--port", "99999"])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a port" in err


def excinfo_code(call) -> int:
    try:
        return int(call())
    except SystemExit as exc:
        return int(exc.code or 0)
