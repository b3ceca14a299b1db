"""`orderflow` as a process: no database made unasked, quiet on a closed pipe, colour only
on a terminal, empty lists that say so, --version."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ORDERFLOW = [sys.executable, "-m", "daemon"]
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env.pop("NO_COLOR", None)
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


def orderflow(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORDERFLOW, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


@pytest.fixture
def empty_store(tmp_path: Path) -> dict[str, str]:
    env = _env(tmp_path, ORDERFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}")
    assert orderflow("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    return env


@pytest.mark.parametrize("args", [["status"], ["task", "list"], ["jeopardy"], ["status", "X"]])
def test_reading_commands_make_no_database(args, tmp_path):
    result = orderflow(*args, cwd=tmp_path, env=_env(tmp_path))
    assert result.returncode == 2
    expected = f"orderflow: no database at {tmp_path / 'orderflow.db'} (set ORDERFLOW_DATABASE_URL)"
    assert result.stderr.strip() == expected
    assert list(tmp_path.iterdir()) == []


def test_version(tmp_path):
    result = orderflow("--version", cwd=tmp_path, env=_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.strip() == f"orderflow {version('orderflow')}"


def test_empty_lists_say_so(empty_store, tmp_path):
    tasks = orderflow("task", "list", cwd=tmp_path, env=empty_store)
    assert tasks.stdout.strip() == "nothing waiting for a person"
    status = orderflow("status", cwd=tmp_path, env=empty_store)
    assert "orders by status:\n  none\n" in status.stdout
    assert "tasks by system and state:\n  none\n" in status.stdout
    jeopardy = orderflow("jeopardy", cwd=tmp_path, env=empty_store)
    assert "no step is at risk or late" in jeopardy.stdout


def test_a_closed_pipe_ends_quietly(empty_store, tmp_path):
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line, as `| head -0` would
    process = subprocess.run(
        [*ORDERFLOW, "status"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=empty_store,
    )
    os.close(write)
    assert process.stderr == ""
    assert process.returncode == 0


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What ``orderflow ARGS`` writes when its stdout is a terminal (a pseudo-terminal)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*ORDERFLOW, *args], stdout=follower, stderr=subprocess.DEVNULL, cwd=cwd, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode()


def test_pass_and_fail_are_coloured_on_a_terminal_only(tmp_path):
    # No settings at all: doctor's settings check fails and the others are skipped.
    env = _env(tmp_path, ORDERFLOW_SF_INSTANCE_URL="not a url")
    coloured = _on_a_terminal(["doctor"], tmp_path, env)
    assert "\033[31mFAIL\033[0m" in coloured
    assert "\033[33mSKIP\033[0m" in coloured
    plain = _on_a_terminal(["doctor"], tmp_path, {**env, "NO_COLOR": "1"})
    assert "FAIL" in plain
    assert "\033[" not in plain
    piped = orderflow("doctor", cwd=tmp_path, env=env)
    assert "FAIL" in piped.stdout
    assert "\033[" not in piped.stdout
