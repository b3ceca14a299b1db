"""One instance per SQLite file: a second `orderflow run` on it is refused in one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon.ops.demo import demo_environment
from tests.integration.world import World

ORDERFLOW = [sys.executable, "-m", "daemon"]


def test_a_second_instance_on_the_same_sqlite_file_is_refused_in_one_line(
    world: World, tmp_path: Path
):
    env = demo_environment(world.emu, world.stubs, tmp_path)
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([*ORDERFLOW, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    lock = tmp_path / "orderflow.db.instance.lock"
    try:
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().startswith("pid")):
            assert first.poll() is None, "the first instance exited"
            assert time.monotonic() < deadline, "the first instance never started"
            time.sleep(0.05)
        for command in ("run", "sync"):
            args = [*ORDERFLOW, command] + (["--once"] if command == "sync" else [])
            second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
            assert second.returncode == 1
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert "is in use by another orderflow instance" in lines[0]
            assert f"pid {first.pid}" in lines[0]
            assert "PostgreSQL" in lines[0]
        assert first.poll() is None, "the first instance runs on"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        log.close()
    # The lock went with its holder: the file is free for the next start.
    third = subprocess.run(
        [*ORDERFLOW, "sync", "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    assert third.returncode == 0, third.stderr
