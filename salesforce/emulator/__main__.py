"""``python -m salesforce.emulator --workdir DIR --port N [--seed-orders N] [--no-pubsub]``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from salesforce.emulator.emulator import Emulator
from salesforce.emulator.seed import seed_demo_org


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, seed it, print its coordinates as one JSON line, serve."""
    parser = argparse.ArgumentParser(prog="python -m salesforce.emulator")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed-orders", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--daily-limit", type=int, default=1_000_000)
    parser.add_argument("--no-pubsub", action="store_true", help="serve no Pub/Sub API (CDC)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    emu = Emulator(
        args.workdir, port=args.port, daily_limit=args.daily_limit, pubsub=not args.no_pubsub
    )
    if args.seed_orders and not emu.records("Order"):
        seed_demo_org(emu, orders=args.seed_orders, seed=args.seed)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emu.start()
    info = {"url": emu.url, "ca_file": str(emu.ca_file), "token_url": emu.token_url}
    if not args.no_pubsub:
        info["pubsub_endpoint"] = emu.pubsub_endpoint
    print(json.dumps(info), flush=True)
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
