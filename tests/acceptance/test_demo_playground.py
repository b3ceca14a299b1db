"""`orderflow demo` as a playground: --keep leaves the world running for the README's
commands, its work folder's .env carries the settings, --workdir never deletes a stranger's
folder, and the smallest demo settles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ORDERFLOW = [sys.executable, "-m", "daemon"]
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    return {**env, "PYTHONPATH": str(ROOT)}


def orderflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORDERFLOW, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=_env()
    )


def test_workdir_refuses_a_folder_it_did_not_make(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = orderflow("demo", "--orders", "1", "--workdir", str(precious), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "not empty and not made by 'orderflow demo'" in result.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_keep_leaves_a_playground_until_ctrl_c(tmp_path):
    workdir = tmp_path / "demo"
    with subprocess.Popen(
        [*ORDERFLOW, "demo", "--orders", "1", "--keep", "--json", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    ) as demo:
        _play(demo, workdir)
    after = orderflow("status", cwd=workdir)  # the store stays; the world is gone
    assert after.returncode == 0
    assert orderflow("doctor", cwd=workdir).returncode == 1


def _play(demo: subprocess.Popen[str], workdir: Path) -> None:
    try:
        assert demo.stdout is not None and demo.stderr is not None
        summary = json.loads(demo.stdout.readline())  # the summary: every order settled
        assert summary["orders_by_status"].get("Completed", 0) >= 1
        notice = []
        for line in demo.stderr:
            notice.append(line)
            if "the canvas: " in line:
                break
        text = "".join(notice)
        assert f"  cd {workdir}\n" in text
        assert "  set -a; . ./.env; set +a\n" in text
        canvas = text.rsplit("the canvas: ", 1)[1].strip()

        # Commands run in the folder see the demo's world through its .env alone.
        status = orderflow("status", "--json", cwd=workdir)
        assert status.returncode == 0, status.stderr
        assert sum(json.loads(status.stdout)["orders_by_status"].values()) >= 1
        assert orderflow("remap", "check", cwd=workdir).returncode in (0, 1)
        assert orderflow("doctor", cwd=workdir).returncode == 0
        page = requests.get(canvas, timeout=30)
        assert page.status_code == 200
        assert "<html" in page.text.lower()
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=120) == 0


@pytest.mark.parametrize("orders", [3])
def test_a_small_demo_settles_and_writes_its_settings(orders, tmp_path):
    workdir = tmp_path / "demo"
    result = orderflow(
        "demo", "--orders", str(orders), "--json", "--workdir", str(workdir), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["duplicate_effects"] == 0
    assert (workdir / ".env").stat().st_mode & 0o777 == 0o600  # demo secrets: owner only
    env = (workdir / ".env").read_text()
    assert "ORDERFLOW_REMAP_PREFIXES='{" in env
    assert f"ORDERFLOW_DATABASE_URL='sqlite:///{workdir}/orderflow.db'" in env
    # Run again on its own folder: emptied and reused.
    again = orderflow("demo", "--orders", "1", "--json", "--workdir", str(workdir), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
