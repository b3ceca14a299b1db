"""The bare client: what the stubs answer to nothing but a keep-alive HTTP client.

The ceiling Orderflow's dispatch is measured against (bench.throughput): the same stubs,
the same calls per system and the same concurrency (threads per system, each with its own
``requests.Session``, so connections are kept alive), no store, no plan, no dependency
between calls. It runs in a process of its own, as the daemon does, so the stubs (in the
benchmark's process) do not share an interpreter lock with it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import requests


@dataclass(frozen=True)
class Target:
    """``calls`` POSTs to ``url``/``action`` with ``token``."""

    url: str
    token: str
    action: str
    calls: int


def measure(targets: list[Target], concurrency: int) -> float:
    """Seconds the bare client takes to make every target's calls, in a process of its own."""
    job = json.dumps({"concurrency": concurrency, "targets": [asdict(t) for t in targets]})
    done = subprocess.run(
        [sys.executable, "-m", "bench.bare_client"],
        input=job,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],  # where bench is, whatever the caller's folder
    )
    return float(done.stdout)


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(_run([Target(**t) for t in job["targets"]], int(job["concurrency"])))


def _run(targets: list[Target], concurrency: int) -> float:
    threads = [
        threading.Thread(target=_worker, args=(target, tickets))
        for target in targets
        for tickets in [itertools.count()]
        for _ in range(concurrency)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def _worker(target: Target, tickets: itertools.count[int]) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {target.token}"}
    while (n := next(tickets)) < target.calls:  # next() on a count is atomic under the GIL
        key = uuid.uuid4().hex
        answer = session.post(
            f"{target.url}/{target.action}",
            json={"n": n, "quantity": 5, "product_code": "PLAT-PRO"},
            headers={**headers, "Idempotency-Key": key, "X-Orderflow-Step": f"bare/{key}"},
            timeout=30,
        )
        answer.raise_for_status()
    session.close()


if __name__ == "__main__":
    main()
