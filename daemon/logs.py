"""Logging set-up: human lines on a terminal, secrets never in a message."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    # Third-party chatter that is noise at INFO.
    for noisy in ("urllib3", "alembic", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
