"""Fixtures shared by every tier."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_orderflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ORDERFLOW_* variable or .env of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ORDERFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A CLI command run in-process configures the root logger on the test's captured stream;
    the next test must not log into that closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
