"""Logging in to Salesforce, in each of the ways an org may allow.

============================  ===========================================================
mode (``ORDERFLOW_SF_AUTH``)  what it needs
============================  ===========================================================
``jwt``                       consumer key, private key file, username (OAuth JWT bearer)
``client_credentials``        consumer key and secret (OAuth client credentials)
``password``                  username, password, security token; with a consumer key and
                              secret the OAuth password grant, without one the SOAP login
``session``                   a session id and the instance URL (cannot renew itself)
============================  ===========================================================

Every OAuth flow posts to ``{login URL}/services/oauth2/token``: production
(``https://login.salesforce.com``), sandbox (``https://test.salesforce.com``) or a My
Domain. A refused login is a :class:`FatalError`; an unreachable endpoint is retriable.
Secrets are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import jwt
import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from orchestration.errors import ConfigError, FatalError, RetriableError

log = logging.getLogger(__name__)

TLS_HINT = "its TLS certificate is not trusted (a private CA goes in ORDERFLOW_SF_CA_BUNDLE)"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AuthMode = Literal["auto", "jwt", "client_credentials", "password", "session"]


class Session(NamedTuple):
    access_token: str
    instance_url: str
    #: The OAuth answer's ``id``: ``{login}/id/{org id}/{user id}`` ('' when not given).
    identity: str = ""


@dataclass(frozen=True)
class Credentials:
    """What the settings hold for logging in; secrets as plain strings, never logged."""

    mode: AuthMode = "auto"
    login_url: str = "https://login.salesforce.com"
    consumer_key: str | None = None
    consumer_secret: str | None = None
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    private_key_file: Path | None = None
    session_id: str | None = None
    instance_url: str | None = None
    api_version: str = "62.0"

    def resolved_mode(self) -> AuthMode:
        """The mode asked for, or in ``auto`` the first whose settings are all given."""
        if self.mode != "auto":
            return self.mode
        if self.session_id:
            return "session"
        if self.consumer_key and self.private_key_file and self.username:
            return "jwt"
        if self.username and self.password:
            return "password"
        if self.consumer_key and self.consumer_secret:
            return "client_credentials"
        raise ConfigError(
            "setting ORDERFLOW_SF_SESSION_ID: no Salesforce credentials (give a session id and "
            "instance URL, a consumer key with a private key file and username, a username "
            "and password, or a consumer key and secret)"
        )


_NEEDS = {
    "jwt": (("consumer_key", "CLIENT_ID"), ("private_key_file", "PRIVATE_KEY_FILE"),
            ("username", "USERNAME")),
    "client_credentials": (("consumer_key", "CLIENT_ID"), ("consumer_secret", "CLIENT_SECRET")),
    "password": (("username", "USERNAME"), ("password", "PASSWORD")),
    "session": (("session_id", "SESSION_ID"), ("instance_url", "INSTANCE_URL")),
}  # fmt: skip


def login_function(
    creds: Credentials, http: requests.Session, *, timeout: float
) -> Callable[[], Session]:
    """A function that logs in as ``creds`` say; checked now, called at each (re)login."""
    mode = creds.resolved_mode()
    for attr, name in _NEEDS[mode]:
        if not getattr(creds, attr):
            raise ConfigError(f"setting ORDERFLOW_SF_{name}: needed for the {mode} login")
    if mode == "session":
        given = Session(str(creds.session_id), str(creds.instance_url).rstrip("/"))
        return lambda: given
    if mode == "jwt":
        key = _read_key(creds.private_key_file)
        return lambda: jwt_bearer(http, creds, key, timeout=timeout)
    if mode == "client_credentials":
        form = {
            "grant_type": "client_credentials",
            "client_id": str(creds.consumer_key),
            "client_secret": str(creds.consumer_secret),
        }
        return lambda: token_request(http, creds.login_url, form, timeout=timeout)
    if creds.consumer_key and creds.consumer_secret:
        form = {
            "grant_type": "password",
            "client_id": creds.consumer_key,
            "client_secret": creds.consumer_secret,
            "username": str(creds.username),
            "password": str(creds.password) + (creds.security_token or ""),
        }
        return lambda: token_request(http, creds.login_url, form, timeout=timeout)
    return lambda: soap_login(http, creds)


def _read_key(path: Path | None) -> bytes:
    try:
        return Path(str(path)).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"setting ORDERFLOW_SF_PRIVATE_KEY_FILE: cannot read {path}: {exc.strerror}"
        ) from None


def jwt_assertion(creds: Credentials, key: bytes, now: float) -> str:
    """The signed JWT of the bearer flow; its audience is the login host."""
    audience = creds.login_url.rstrip("/")
    if not audience.endswith(("login.salesforce.com", "test.salesforce.com")):
        # A My Domain login URL still expects the production or sandbox audience.
        audience = (
            "https://test.salesforce.com"
            if ".sandbox." in audience
            else "https://login.salesforce.com"
        )
    claims = {
        "iss": creds.consumer_key,
        "sub": creds.username,
        "aud": audience,
        "exp": int(now) + 180,
    }
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "setting ORDERFLOW_SF_PRIVATE_KEY_FILE: not a PEM RSA private key"
        ) from exc


def jwt_bearer(
    http: requests.Session, creds: Credentials, key: bytes, *, timeout: float
) -> Session:
    """OAuth 2.0 JWT bearer flow."""
    form = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(creds, key, time.time())}
    return token_request(http, creds.login_url, form, timeout=timeout)


def client_credentials(
    http: requests.Session,
    login_url: str,
    client_id: str,
    client_secret: str,
    *,
    timeout: float,
) -> Session:
    """OAuth 2.0 client credentials flow."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    return token_request(http, login_url, form, timeout=timeout)


def token_request(
    http: requests.Session, login_url: str, form: dict[str, str], *, timeout: float
) -> Session:
    """POST ``form`` to ``{login_url}/services/oauth2/token``."""
    url = f"{login_url.rstrip('/')}/services/oauth2/token"
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
    if not isinstance(body, dict):
        body = {}
    if not response.ok or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.reason
        raise FatalError(f"Salesforce login refused by {url} ({form['grant_type']}): {reason}")
    log.info("logged in to Salesforce at %s (%s)", body.get("instance_url"), form["grant_type"])
    return Session(
        access_token=body["access_token"],
        instance_url=body["instance_url"],
        identity=str(body.get("id") or ""),
    )


def soap_domain(login_url: str) -> str:
    """simple-salesforce's ``domain`` for a login URL: login, test or a My Domain prefix."""
    host = urlsplit(login_url).hostname or ""
    if not host.endswith(".salesforce.com"):
        raise ConfigError(
            "setting ORDERFLOW_SF_LOGIN_URL: the SOAP password login needs a *.salesforce.com "
            "host; give ORDERFLOW_SF_CLIENT_ID and _SECRET to use the OAuth password grant"
        )
    return host.removesuffix(".salesforce.com")


def soap_login(http: requests.Session, creds: Credentials) -> Session:
    """simple-salesforce's SOAP login (username, password, security token)."""
    try:
        session_id, instance = SalesforceLogin(
            username=creds.username,
            password=creds.password,
            security_token=creds.security_token or "",
            domain=soap_domain(creds.login_url),
            session=http,
            sf_version=creds.api_version,
        )
    except SalesforceAuthenticationFailed as exc:
        raise FatalError(f"Salesforce login refused (SOAP): {exc.code}: {exc.message}") from exc
    except requests.exceptions.SSLError as exc:
        raise FatalError(f"Salesforce login: {creds.login_url}: {TLS_HINT}") from exc
    except requests.RequestException as exc:
        raise RetriableError(f"Salesforce login: cannot reach {creds.login_url}") from exc
    log.info("logged in to Salesforce at %s (SOAP)", instance)
    return Session(access_token=session_id, instance_url=f"https://{instance}")
