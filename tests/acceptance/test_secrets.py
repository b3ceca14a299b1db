"""No configured secret ever reaches a log line: a full daemon run, grepped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from daemon.ops.demo import demo_environment
from tests.integration.world import World


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_daemon_run_at_debug_logs_no_secret(world: World, tmp_path, log_format):
    world.add_order("PLAT-PRO", "ADD-SSO")
    world.add_order("PLAT-STD")
    env = demo_environment(world.emu, world.stubs, tmp_path)
    session = world.emu.issue_session()
    env.update(
        {
            # Log in with a session id: the token itself is then a configured secret.
            "ORDERFLOW_SF_INSTANCE_URL": world.emu.url,
            "ORDERFLOW_SF_SESSION_ID": session,
            "ORDERFLOW_LOG_LEVEL": "DEBUG",
            "ORDERFLOW_LOG_FORMAT": log_format,
        }
    )
    secrets = {
        "ORDERFLOW_SF_SESSION_ID": session,
        "ORDERFLOW_SF_CLIENT_SECRET": env["ORDERFLOW_SF_CLIENT_SECRET"],
        **{f"ORDERFLOW_{n.upper()}_TOKEN": stub.token for n, stub in world.stubs.items()},
    }
    assert all(secrets.values())
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"], env=env, stdout=log_file, stderr=log_file
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            all(world.order_statuses().values()) and world.stubs["billing"].effects
        ):
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    finally:
        daemon.kill()
        daemon.wait()
    output = log_path.read_text()
    assert daemon.returncode == 0, output
    assert world.stubs["erp"].effects, output  # the run did real work, with the tokens
    assert all(world.order_statuses().values())
    assert output.count("\n") > 20  # DEBUG: plenty to leak into
    for name, value in secrets.items():
        assert value not in output, f"{name} leaked into the log"
