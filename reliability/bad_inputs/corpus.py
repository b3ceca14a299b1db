"""The bad-input corpus: load ``cases.yaml``, run every case, compare with its answer.

Kinds of case, and the answer each must give:

- ``record``: a hostile Order (reliability.bad_inputs.records) → its
  ``Fulfillment_Status__c`` and ``Fulfillment_Message__c``, e.g. ``Fallout: no
  decomposition rule``; the good orders of the same run must be Completed;
- ``rules`` (``orderflow rules check FILE``), ``crosswalk`` (``orderflow remap import
  FILE``), ``settings`` (``orderflow run`` with FILE as its ``.env``) and ``cli`` (FILE
  holds the arguments, one a line) → ``exit 2: message``, no traceback, one line on stderr
  (a rules file: one line per problem);
- ``callback`` (reliability.bad_inputs.callbacks) → ``HTTP 401: message``.

An expected answer matches when the part before ``:`` is equal and the text after it is
contained in what came back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.ops.demo import DEMO_CUTOVER
from reliability.bad_inputs.callbacks import CallbackCase, run_callbacks
from reliability.bad_inputs.records import run_records
from salesforce.emulator.seed import DEMO_CPQ_PREFIXES

HERE = Path(__file__).parent
MANIFEST = HERE / "cases.yaml"
INPUTS = HERE / "inputs"
ORDERFLOW = [sys.executable, "-m", "daemon"]
COMMAND_KINDS = ("rules", "crosswalk", "settings", "cli")
KINDS = ("record", *COMMAND_KINDS, "callback")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    file: Path
    expect: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    case: Case
    got: str
    ok: bool


def load(manifest: Path = MANIFEST) -> list[Case]:
    cases = []
    for entry in yaml.safe_load(manifest.read_text(encoding="utf-8")):
        kind = entry["kind"]
        if kind not in KINDS:
            raise ValueError(f"{manifest}: case {entry['name']}: unknown kind {kind!r}")
        spec = {k: v for k, v in entry.items() if k not in ("name", "kind", "file", "expect")}
        path = INPUTS / entry["file"]
        if not path.is_file():
            raise ValueError(f"{manifest}: case {entry['name']}: no file {path}")
        cases.append(Case(entry["name"], kind, path, str(entry["expect"]), spec))
    return cases


def matches(expect: str, got: str) -> bool:
    head, _, text = expect.partition(": ")
    got_head, _, got_text = got.partition(": ")
    return head == got_head and text in got_text


def run(cases: list[Case], workdir: Path) -> tuple[list[Outcome], list[Outcome]]:
    """(each case's outcome, the good orders' outcomes)."""
    outcomes: dict[str, Outcome] = {}
    records = [c for c in cases if c.kind == "record"]
    good: list[Outcome] = []
    if records:
        answers, good_answers = run_records({c.name: c.file for c in records}, workdir / "records")
        for case in records:
            answer = answers[case.name]
            got = f"{answer.status}: {answer.message}" if answer.message else answer.status
            outcomes[case.name] = Outcome(case, got, matches(case.expect, got))
        for name, answer in good_answers.items():
            good_case = Case(name, "record", Path(), "Completed", {})
            good.append(Outcome(good_case, answer.status, answer.status == "Completed"))
    commands = [c for c in cases if c.kind in COMMAND_KINDS]
    for outcome in _commands(commands, workdir / "commands"):
        outcomes[outcome.case.name] = outcome
    callbacks = [c for c in cases if c.kind == "callback"]
    if callbacks:
        answers_cb = run_callbacks(
            {
                c.name: CallbackCase(
                    c.name, c.file.read_bytes(), c.spec.get("system", "provisioning"),
                    c.spec.get("sign", "good"),
                )
                for c in callbacks
            },
            workdir / "callbacks",
        )  # fmt: skip
        for case in callbacks:
            status, text = answers_cb[case.name]
            got = f"HTTP {status}: {text}"
            outcomes[case.name] = Outcome(case, got, matches(case.expect, got))
    return [outcomes[c.name] for c in cases], good


def _command_spec(case: Case, root: Path) -> dict[str, Any]:
    folder = root / case.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {
        "ORDERFLOW_DATABASE_URL": f"sqlite:///{folder / 'orderflow.db'}",
        "ORDERFLOW_HTTP_PORT": "0",
        "ORDERFLOW_CUTOVER_AT": DEMO_CUTOVER,
        "ORDERFLOW_REMAP_PREFIXES": json.dumps(DEMO_CPQ_PREFIXES),
    }
    if case.kind == "rules":
        args = ["rules", "check", str(case.file)]
    elif case.kind == "crosswalk":
        args = ["remap", "import", str(case.file)]
    elif case.kind == "settings":
        shutil.copy(case.file, folder / ".env")
        # A complete configuration around the bad setting (nothing listens on port 9);
        # what the .env file sets is left to it (the environment would win over it).
        for name in ("erp", "billing", "provisioning"):
            env[f"ORDERFLOW_{name.upper()}_URL"] = "http://127.0.0.1:9"
        env.update(
            {
                "ORDERFLOW_SF_LOGIN_URL": "https://127.0.0.1:9",
                "ORDERFLOW_SF_CLIENT_ID": "corpus",
                "ORDERFLOW_SF_CLIENT_SECRET": "corpus-secret",
            }
        )
        for line in case.file.read_text(encoding="utf-8").splitlines():
            env.pop(line.partition("=")[0].strip(), None)
        args = ["run"]
    else:
        args = case.file.read_text(encoding="utf-8").splitlines()
    return {"name": case.name, "args": args, "env": env, "cwd": str(folder)}


def _commands(cases: list[Case], root: Path, timeout: float = 300) -> list[Outcome]:
    """Run the command cases in one helper process (reliability.bad_inputs.cli_batch)."""
    if not cases:
        return []
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "spec.json"
    spec.write_text(json.dumps([_command_spec(c, root) for c in cases]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env["PYTHONPATH"] = str(HERE.parent.parent)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reliability.bad_inputs.cli_batch", str(spec)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        results = {r["name"]: r for r in json.loads(done.stdout)}
    except (subprocess.TimeoutExpired, ValueError) as exc:
        return [Outcome(c, f"the batch failed: {type(exc).__name__}", False) for c in cases]
    return [_judge(c, results[c.name]) for c in cases]


def _judge(case: Case, result: dict[str, Any]) -> Outcome:
    stderr = str(result["stderr"])
    errors = [line for line in stderr.splitlines() if line.strip()]
    first = errors[0].removeprefix("orderflow: ") if errors else str(result["stdout"])[:200]
    first = first.replace(str(case.file), case.file.name)  # the message, not the path
    got = f"exit {result['code']}: {first}"
    one_line = len(errors) == 1 or (case.kind == "rules" and len(errors) >= 1)
    clean = "Traceback" not in stderr
    if not (one_line and clean):
        got += f" [{len(errors)} stderr lines{'' if clean else ', a traceback'}]"
    return Outcome(case, got, matches(case.expect, got) and one_line and clean)


def render(outcomes: list[Outcome], good: list[Outcome], width: int = 70) -> str:
    from bench.common import table

    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    rows = [(o.case.name, o.case.kind, cut(o.case.expect), cut(o.got), "ok" if o.ok else "FAIL")
            for o in outcomes]  # fmt: skip
    passed = sum(o.ok for o in outcomes)
    flowing = sum(o.ok for o in good)
    return "\n".join(
        [
            f"Bad-input corpus: {len(outcomes)} cases ({HERE.relative_to(HERE.parent.parent)})",
            "",
            table(("case", "kind", "expected", "got", "ok"), rows),
            "",
            f"cases answered as expected: {passed}/{len(outcomes)}",
            f"good orders in the same run Completed: {flowing}/{len(good)}",
            "result: " + ("PASS" if passed == len(outcomes) and flowing == len(good) else "FAIL"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run the bad-input corpus; print a table.")
    parser.add_argument("--kind", choices=KINDS, help="only the cases of this kind")
    args = parser.parse_args(argv)
    cases = [c for c in load() if args.kind is None or c.kind == args.kind]
    with tempfile.TemporaryDirectory(prefix="orderflow-bad-inputs-") as folder:
        outcomes, good = run(cases, Path(folder))
    print(render(outcomes, good))
    return 0 if all(o.ok for o in [*outcomes, *good]) else 1
