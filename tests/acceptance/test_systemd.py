"""`orderflow run` as systemd runs it: the notify protocol on a real datagram socket."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from daemon.ops.demo import demo_environment
from tests.integration.world import World

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "daemon" / "systemd" / "orderflow.service"


class NotifySocket:
    """What systemd does: bind a datagram socket and read what the service sends."""

    def __init__(self) -> None:
        self.name = f"orderflow-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.messages: list[str] = []

    @property
    def address(self) -> str:
        return "@" + self.name

    def wait_for(self, wanted: str, timeout: float = 60) -> str:
        """The first datagram, read before or now, with a line that starts with ``wanted``."""
        for message in self.messages:
            if any(line.startswith(wanted) for line in message.splitlines()):
                return message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(message)
            if any(line.startswith(wanted) for line in message.splitlines()):
                return message
        raise AssertionError(f"no {wanted!r} in {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


def test_run_speaks_the_notify_protocol_and_stops_cleanly(world: World, tmp_path, notify_socket):
    world.add_order("PLAT-PRO")
    env = demo_environment(world.emu, world.stubs, tmp_path)
    env.pop("JOURNAL_STREAM", None)
    env.update(
        {
            "NOTIFY_SOCKET": notify_socket.address,
            "WATCHDOG_USEC": "400000",
            "INVOCATION_ID": "0123456789abcdef",  # as under systemd: JSON log lines
        }
    )
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"], env=env, stdout=log_file, stderr=log_file
        )
    try:
        listening = notify_socket.wait_for("STATUS=HTTP listener on ")
        url = listening.split("HTTP listener on ", 1)[1].strip()
        ready = notify_socket.wait_for("READY=1")
        assert "STATUS=first cycle" in ready
        notify_socket.wait_for("WATCHDOG=1")
        notify_socket.wait_for("STATUS=cycle 1:")
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        # The order may be read a cycle later (poll windows end at whole seconds); the
        # default rules hold it In Progress at a manual step, so look for it planned.
        deadline = time.monotonic() + 60
        metrics = requests.get(f"{url}/metrics", timeout=10)
        while time.monotonic() < deadline and "orderflow_orders{" not in metrics.text:
            time.sleep(0.2)
            metrics = requests.get(f"{url}/metrics", timeout=10)
        assert 'orderflow_orders{status="In Progress"} 1.0' in metrics.text
        daemon.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1")
        daemon.wait(timeout=60)
    finally:
        daemon.kill()
        daemon.wait()
    errors = log_path.read_text()
    assert daemon.returncode == 0, errors
    lines = [json.loads(line) for line in errors.splitlines()]
    assert any(
        line["message"] == "SIGTERM received, stopping after the current step" for line in lines
    )
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    # The listener is gone with the process.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=5)


def test_the_unit_is_hardened_and_notify_typed():
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    one = {k: v[-1] for k, v in directives.items()}
    assert one["Type"] == "notify"
    assert one["ExecStart"].endswith("/orderflow run")
    assert int(one["WatchdogSec"]) > 0
    assert int(one["TimeoutStopSec"]) > 0
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "2"
    # A restart loop stops within minutes: the burst fits in the interval at RestartSec.
    burst, within = int(one["StartLimitBurst"]), int(one["StartLimitIntervalSec"])
    assert 0 < burst * int(one["RestartSec"]) < within <= 900
    assert one["DynamicUser"] == "yes"
    assert one["StateDirectory"] == "orderflow"
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes"
    assert one["PrivateTmp"] == "yes"
    assert one["EnvironmentFile"] == "/etc/orderflow/orderflow.env"
    database = next(v for v in directives["Environment"] if v.startswith("ORDERFLOW_DATABASE_URL"))
    assert database.endswith("/var/lib/orderflow/orderflow.db")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    unit = tmp_path / "orderflow.service"
    unit.write_text(
        UNIT.read_text().replace(
            "/opt/orderflow/.venv/bin/orderflow", str(Path(sys.executable).with_name("orderflow"))
        )
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
