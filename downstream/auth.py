"""How a connector proves who it is: bearer token, basic, API-key header, OAuth client credentials.

Each is a ``requests`` auth object, so the connector's calls stay the same whatever the
system wants. Secrets live only inside these objects; their ``repr`` never shows them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from orchestration.errors import RecordError, RetriableError

log = logging.getLogger(__name__)

#: A cached OAuth token is renewed this many seconds before the server says it expires.
EXPIRY_MARGIN = 30.0


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(****)"


class ApiKeyAuth(AuthBase):
    """The key in a header of the system's choosing (``X-API-Key`` by default)."""

    def __init__(self, key: str, header: str = "X-API-Key") -> None:
        self._key, self.header = key, header

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers[self.header] = self._key
        return r

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header={self.header!r})"


class BasicAuth(HTTPBasicAuth):
    def __repr__(self) -> str:
        return "BasicAuth(****)"


class OAuthClientCredentials(AuthBase):
    """OAuth 2.0 client credentials: a token fetched once, cached until shortly before it
    expires, and fetched again when the system answers 401 (then the request is resent once).
    """

    def __init__(
        self,
        system: str,
        session: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self._session = session
        self._token_url = token_url
        self._client = (client_id, client_secret)
        self._scope = scope
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"OAuthClientCredentials(token_url={self._token_url!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        r.register_hook("response", self._renew_on_401)  # type: ignore[no-untyped-call]
        return r

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or self._clock() >= self._expires_at:
                self._token, lifetime = self._fetch()
                self._expires_at = self._clock() + max(lifetime - EXPIRY_MARGIN, 0.0)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        data = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        self.fetches += 1
        try:
            answer = self._session.post(
                self._token_url, data=data, auth=self._client, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise RetriableError(f"{self.system}: cannot reach the OAuth token URL") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise RetriableError(f"{self.system}: OAuth token URL answered {answer.status_code}")
        try:
            body = answer.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise RecordError(
                f"{self.system}: OAuth token refused (HTTP {answer.status_code}); "
                "check its client id and secret"
            ) from None
        lifetime = float(body.get("expires_in") or 3600)
        log.info("%s: OAuth token obtained, valid %g s", self.system, lifetime)
        return token, lifetime

    def _renew_on_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401 or getattr(r.request, "_orderflow_renewed", False):
            return r
        log.info("%s: token refused, fetching a new one", self.system)
        r.content  # noqa: B018 - read the body so the connection can be reused
        r.close()
        retry = r.request.copy()
        retry.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
        retry._orderflow_renewed = True  # type: ignore[attr-defined]
        answer: requests.Response = r.connection.send(retry, **kwargs)
        answer.history.append(r)
        answer.request = retry
        return answer
