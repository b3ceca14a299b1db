"""HTTP sessions for the adapters, with TLS trust the environment cannot override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class PinnedSession(requests.Session):
    """A Session whose ``verify`` wins over ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``.

    requests lets those variables replace ``Session.verify`` on every request (a
    long-standing behaviour), which would silently swap a private CA for the system's, or
    the other way round. Here the session's own setting is final.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        # A pinned CA bundle (a path) is never replaced by the environment's; with plain
        # True, the environment's bundle (the system's) is the right trust store.
        if verify is None or verify is True:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def make_session(ca_bundle: Path | None = None, *, pool: int = 16) -> PinnedSession:
    """TLS verified always; against ``ca_bundle`` when given, else the system's CAs."""
    session = PinnedSession()
    session.verify = str(ca_bundle) if ca_bundle else True
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
