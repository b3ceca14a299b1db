"""Run many ``orderflow`` command lines in one process, as the ``orderflow`` script would.

    python -m reliability.bad_inputs.cli_batch SPEC.json

SPEC is a list of ``{"name", "args", "env", "cwd"}``. Each runs ``daemon.commands.main.main(args)``
(what the installed ``orderflow`` script calls) with exactly ``env``'s ORDERFLOW_*
variables, in ``cwd`` (where a ``.env`` is read), stdout and stderr captured; an
exception that escapes ``main`` is printed as the traceback the user would see. One Python
start-up for the lot instead of one per case. Prints a JSON list of
``{"name", "code", "stdout", "stderr"}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    from daemon.commands.main import main

    for name in [k for k in os.environ if k.startswith("ORDERFLOW_")]:
        del os.environ[name]
    os.environ.update({k: v for k, v in spec["env"].items() if k.startswith("ORDERFLOW_")})
    os.chdir(spec["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(spec["args"])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc()
            code = 1
    return {"name": spec["name"], "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> int:
    specs = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps([run_one(spec) for spec in specs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
