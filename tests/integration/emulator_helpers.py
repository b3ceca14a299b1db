"""Helpers for tests that talk to the Salesforce emulator over HTTPS."""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.api import Salesforce

from daemon.http import PinnedSession
from salesforce.emulator import Emulator

TIMEOUT = 10


def pinned_session(emu: Emulator) -> PinnedSession:
    """A session that trusts only the emulator's certificate."""
    session = PinnedSession()
    session.verify = str(emu.ca_file)
    return session


def connect(emu: Emulator, session: requests.Session | None = None) -> Salesforce:
    """A simple-salesforce client on a fresh emulator session."""
    return Salesforce(
        instance_url=emu.url,
        session_id=emu.issue_session(),
        session=session or pinned_session(emu),
        version=emu.api_version,
    )


def data_url(emu: Emulator, path: str) -> str:
    """The absolute URL of a REST resource."""
    return f"{emu.url}/services/data/v{emu.api_version}/{path}"


def sf_errors(exc: BaseException) -> list[dict[str, Any]]:
    """The ``[{message, errorCode}]`` body of a simple-salesforce exception."""
    content: Any = getattr(exc, "content", None)
    assert isinstance(content, list), content
    return [dict(item) for item in content]
