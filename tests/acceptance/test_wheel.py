"""Installed from the wheel, Orderflow is whole: the built wheel in a fresh virtualenv runs
`orderflow demo` and carries what the README's install steps use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_wheel_installed_in_a_fresh_venv_runs_the_demo(tmp_path):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
        "-q", "-w", wheels, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("orderflow-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel,
        cwd=tmp_path)  # fmt: skip
    # The dependencies from this environment (no network); its editable Orderflow is not
    # seen: .pth files in a directory a .pth adds are not run.
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path).strip())  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env.pop("PYTHONPATH", None)

    where = run(python, "-c", "import daemon; print(daemon.__file__)", cwd=tmp_path, env=env)
    assert where.startswith(str(site))
    installed = site / "salesforce" / "metadata"
    assert (installed / "sfdx-project.json").is_file()
    assert (site / "daemon" / "systemd" / "orderflow.service").is_file()
    example = run(venv / "bin" / "orderflow", "config", "example", cwd=tmp_path, env=env)
    assert example == (ROOT / ".env.example").read_text()

    out = run(venv / "bin" / "orderflow", "demo", "--orders", "5", "--json",
              "--workdir", tmp_path / "demo", cwd=tmp_path, env=env)  # fmt: skip
    summary = json.loads(out)
    assert summary["duplicate_effects"] == 0
    assert sum(summary["orders_by_status"].values()) >= 5
