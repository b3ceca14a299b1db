"""OAuth token endpoint (client credentials, password, JWT bearer) and session tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

DEMO_PASSWORD = "demo-password"  # noqa: S105 - the emulator's documented demo login
_ORG_ID = "00D5g000000OrgFAKE"
_USER_ID = "0055g000000UserFAK"
#: The org's Id (as the identity URL and the Pub/Sub ``tenantid`` give it).
ORG_ID = _ORG_ID
#: The integration user: every REST API write is theirs.
API_USER_ID = _USER_ID
#: An administrator working in the org's UI or loading data: the emulator's own writes.
ADMIN_USER_ID = "0055g000000AdminUI"


class OAuthError(Exception):
    """A refused token request: ``error`` and ``error_description`` as Salesforce sends."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.body = {"error": error, "error_description": description}


def _jwt_claims(assertion: str) -> dict[str, Any]:
    """Decode a JWT's claims without checking its signature (the emulator trusts it)."""
    try:
        payload = assertion.split(".")[1]
        padded = payload + "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise OAuthError("invalid_grant", "invalid assertion") from exc
    if not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "invalid assertion")
    return claims


class Sessions:
    """Issued access tokens; thread-safe."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new valid access token."""
        token = _ORG_ID[:15] + "!" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens.add(token)
        return token

    def valid(self, token: str) -> bool:
        """Whether ``token`` was issued and not revoked."""
        with self._lock:
            return token in self._tokens

    def revoke(self, token: str) -> None:
        """Forget a token (the client must log in again)."""
        with self._lock:
            self._tokens.discard(token)

    def grant(self, form_body: bytes, instance_url: str) -> dict[str, Any]:
        """Answer a ``POST /services/oauth2/token``; raises :class:`OAuthError`."""
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        grant_type = form.get("grant_type", "")
        if grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            if _jwt_claims(form.get("assertion", "")).get("iss") != self.client_id:
                raise OAuthError("invalid_client_id", "client identifier invalid")
        elif grant_type in ("client_credentials", "password"):
            if not (
                hmac.compare_digest(form.get("client_id", ""), self.client_id)
                and hmac.compare_digest(form.get("client_secret", ""), self.client_secret)
            ):
                raise OAuthError("invalid_client", "invalid client credentials")
            if grant_type == "password" and form.get("password") != DEMO_PASSWORD:
                raise OAuthError("invalid_grant", "authentication failure")
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        issued_at = str(int(time.time() * 1000))
        identity = f"{instance_url}/id/{_ORG_ID}/{_USER_ID}"
        digest = hmac.new(
            self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        return {
            "access_token": self.issue(),
            "instance_url": instance_url,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "id": identity,
            "signature": base64.b64encode(digest).decode(),
        }
