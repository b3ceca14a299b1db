"""Logging in to Salesforce: the OAuth 2.0 token endpoint, or a session handed to us."""

from __future__ import annotations

import logging
from typing import NamedTuple

import requests

from orchestration.errors import FatalError, RetriableError

log = logging.getLogger(__name__)

TLS_HINT = "its TLS certificate is not trusted (a private CA goes in ORDERFLOW_SF_CA_BUNDLE)"


class Session(NamedTuple):
    access_token: str
    instance_url: str


def client_credentials(
    http: requests.Session,
    login_url: str,
    client_id: str,
    client_secret: str,
    *,
    timeout: float,
) -> Session:
    """OAuth 2.0 client credentials flow against ``{login_url}/services/oauth2/token``."""
    url = f"{login_url.rstrip('/')}/services/oauth2/token"
    form = {"grant_type": "client_credentials", "client_id": client_id}
    form["client_secret"] = client_secret
    try:
        response = http.post(url, data=form, timeout=timeout)
    except requests.exceptions.SSLError as exc:
        raise FatalError(f"Salesforce login: {url}: {TLS_HINT}") from exc
    except requests.RequestException as exc:
        raise RetriableError(f"Salesforce login: cannot reach {url}") from exc
    if response.status_code >= 500:
        raise RetriableError(f"Salesforce login: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not response.ok or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.reason
        raise FatalError(f"Salesforce login refused by {url}: {reason}")
    log.info("logged in to Salesforce at %s", body.get("instance_url"))
    return Session(access_token=body["access_token"], instance_url=body["instance_url"])
