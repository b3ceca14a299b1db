"""The demo's work folder and, with ``orderflow demo --keep``, the world left running in it.

- **Its own folder only:** :func:`prepare` empties and reuses a folder the demo made before
  (it holds :data:`MARK`) or an empty one; any other folder is refused (ConfigError), never
  deleted.
- **Settings where commands find them:** :func:`write_env` writes the daemon's
  ``ORDERFLOW_*`` settings to the folder's ``.env``, which ``orderflow`` reads from the
  current folder, so ``status``, ``remap check``, ``reconcile``... run there see the demo's
  world. Single-quoted values: literal for python-dotenv and for ``set -a; . ./.env``.
- **A playground:** :func:`hold` prints the lines to paste and waits, the emulator, the
  stubs and the daemon still running, until Ctrl-C (or the daemon ends); then stops the
  daemon. The caller stops the rest.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from orchestration.errors import ConfigError

MARK = ".orderflow-demo"


def prepare(workdir: Path) -> Path:
    """``workdir`` (absolute) emptied and marked as the demo's, or ConfigError."""
    workdir = workdir.absolute()
    ours = (workdir / MARK).is_file()
    if workdir.exists() and not ours and (not workdir.is_dir() or any(workdir.iterdir())):
        raise ConfigError(
            f"--workdir {workdir}: not empty and not made by 'orderflow demo' "
            "(give a new or empty folder)"
        )
    if ours:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARK).write_text("made by 'orderflow demo', which empties it at each run\n")
    return workdir


def write_env(workdir: Path, env: Mapping[str, str]) -> Path:
    """The ``ORDERFLOW_*`` entries of ``env`` as ``workdir/.env``."""
    path = workdir / ".env"
    lines = ["# The settings 'orderflow demo' ran the daemon with (demo secrets only)."]
    lines += [f"{k}='{v}'" for k, v in sorted(env.items()) if k.startswith("ORDERFLOW_")]
    path.touch(mode=0o600)  # it holds the demo's (throw-away) secrets: the owner's alone
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for the daemon's listener, so the canvas URL can be printed."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def hold(workdir: Path, canvas_url: str, daemon: subprocess.Popen[bytes]) -> None:
    """Say how to use the running world, then wait for Ctrl-C and stop the daemon."""
    say = sys.stderr.write
    say(
        "\nThe demo keeps running (Ctrl-C stops it). In another terminal, paste:\n"
        f"  cd {workdir}\n"
        "  set -a; . ./.env; set +a\n"
        f"then try 'orderflow status', 'orderflow task list', 'orderflow reconcile ...'; "
        f"the canvas: {canvas_url}\n"
    )
    sys.stderr.flush()
    try:
        while daemon.poll() is None:
            time.sleep(0.5)
        say(f"the daemon exited with code {daemon.returncode}\n")
    except KeyboardInterrupt:
        say("stopping the demo\n")
    stop(daemon)


def stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then a kill if it has not ended within 30 seconds."""
    if daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
