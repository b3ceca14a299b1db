"""Settings: read once from the environment and ``.env``, validated, passed down.

Every variable is prefixed ``ORDERFLOW_`` and documented in ``.env.example``. Secrets are
``SecretStr``: they print as ``**********`` and reach only the code that sends them.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from daemon import logs
from orchestration.errors import ConfigError
from remap.config import FieldRef, Outbound, RemapConfig
from remap.ids import Prefixes
from salesforce import poller
from salesforce.fields import StatusFields

log = logging.getLogger(__name__)

PREFIX = "ORDERFLOW_"
DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    # Salesforce
    sf_instance_url: AnyHttpUrl | None = None
    sf_session_id: SecretStr | None = None
    sf_login_url: AnyHttpUrl = AnyHttpUrl("https://login.salesforce.com")
    sf_client_id: str | None = None
    sf_client_secret: SecretStr | None = None
    sf_ca_bundle: Path | None = None
    sf_api_version: str = Field(default="62.0", pattern=r"^\d{2}\.0$")
    sf_timeout: float = Field(default=30.0, gt=0)
    sf_order_statuses: list[str] = ["Activated"]
    sf_cancelled_statuses: list[str] = ["Cancelled", "Canceled"]
    sf_poll_overlap: float = Field(default=600.0, ge=0)
    sf_poll_settle: float = Field(default=2.0, ge=0)
    sf_auth: Literal["auto", "jwt", "client_credentials", "password", "session"] = "auto"
    sf_username: str | None = None
    sf_password: SecretStr | None = None
    sf_security_token: SecretStr | None = None
    sf_private_key_file: Path | None = None
    sf_order_fields: list[str] = list(poller.ORDER_FIELDS)
    sf_order_item_fields: list[str] = list(poller.LINE_FIELDS)
    sf_product_fields: list[str] = list(poller.PRODUCT_FIELDS)
    sf_invoice_fields: list[str] = list(poller.INVOICE_FIELDS)
    sf_invoice_line_fields: list[str] = list(poller.INVOICE_LINE_FIELDS)
    # Invoice and InvoiceLine (Revenue Cloud Billing): auto reads them when describe lists
    # Invoice for the integration user.
    sf_invoices: Literal["auto", "true", "false"] = "auto"
    sf_api_reserve: float = Field(default=0.10, ge=0, lt=1)
    sf_poll_max_interval: float = Field(default=60.0, gt=0)
    sf_reserve_poll_interval: float = Field(default=900.0, gt=0)
    # Spent daily allowance (REQUEST_LIMIT_EXCEEDED TotalRequests): seconds between probes
    sf_limit_probe_interval: float = Field(default=300.0, gt=0)
    # Change Data Capture over the Pub/Sub API (daemon/cycle/events.py): auto (when the org answers
    # and the topics exist), cdc (required) or off; the endpoint; the safety poll's period
    sf_events: Literal["auto", "cdc", "off"] = "auto"
    sf_pubsub_endpoint: str = Field(
        default="api.pubsub.salesforce.com:7443", pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$"
    )
    sf_safety_poll_interval: float = Field(default=600.0, gt=0)

    # Store
    database_url: str = "sqlite:///orderflow.db"
    # Several instances (PostgreSQL): heartbeat period, and silence after which one is dead
    heartbeat_interval: float = Field(default=2.0, gt=0)
    instance_dead_after: float = Field(default=15.0, gt=0)

    # Downstream systems
    erp_url: AnyHttpUrl | None = None
    erp_token: SecretStr | None = None
    billing_url: AnyHttpUrl | None = None
    billing_token: SecretStr | None = None
    provisioning_url: AnyHttpUrl | None = None
    provisioning_token: SecretStr | None = None
    downstream_timeout: float = Field(default=15.0, gt=0)
    downstream_ca_bundle: Path | None = None
    dispatch_concurrency: int = Field(default=8, ge=1, le=256)
    # A dispatch resent after restarts this many times without an answer falls out
    max_resends: int = Field(default=5, ge=0)

    # The daemon
    poll_interval: float = Field(default=5.0, gt=0)
    rules_file: Path = DEFAULT_RULES
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: Literal["auto", "json", "text"] = "auto"
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8787, ge=0, le=65535)
    operator_token: SecretStr | None = None  # the canvas's actions; unset: read-only
    # The listener's edges (daemon/web/gate.py): body size, Host names, who may read the canvas
    http_max_body: int = Field(default=1_048_576, gt=0)
    http_allowed_hosts: list[str] = []  # empty: the bind address and localhost
    canvas_public: bool = False  # beyond loopback, the canvas and /metrics need the token
    # Long runs: days a settled plan's history is kept (daemon/service/retention.py)
    retention_days: int = Field(default=90, ge=1)

    # Jeopardy: the SLA sweep's cadence, the webhook told of orders At Risk, Late or in
    # Fallout (a secret: it embeds a token), and the names of the fields written back
    jeopardy_interval: float = Field(default=30.0, gt=0)
    notify_webhook_url: SecretStr | None = None
    sf_writeback_fields: dict[str, str] = {}

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")  # the value itself is never shown
        return value

    @field_validator("sf_writeback_fields")
    @classmethod
    def _writeback_fields(cls, value: dict[str, str]) -> dict[str, str]:
        StatusFields.renamed(value)  # raises ValueError naming the unknown field
        return value

    def status_fields(self) -> StatusFields:
        """The Salesforce fields writeback sets, renamed as configured."""
        return StatusFields.renamed(self.sf_writeback_fields)

    # Remap (legacy CPQ ids; see remap/ and `orderflow remap`)
    remap_prefixes: dict[str, str] = {}
    remap_discovery_fields: list[str] = []
    remap_reference_fields: list[str] = []
    remap_outbound: dict[str, Outbound] = {}

    @field_validator("remap_prefixes")
    @classmethod
    def _remap_prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        Prefixes(value)  # raises ValueError naming the bad prefix
        return value

    @field_validator("remap_discovery_fields", "remap_reference_fields")
    @classmethod
    def _remap_fields(cls, value: list[str]) -> list[str]:
        return [str(FieldRef.parse(text)) for text in value]

    def remap_config(self) -> RemapConfig:
        """The remap settings as one validated object."""
        try:
            return RemapConfig.build(
                self.remap_prefixes,
                self.remap_discovery_fields,
                self.remap_reference_fields,
                self.remap_outbound,
            )
        except ValueError as exc:
            raise ConfigError(f"setting ORDERFLOW_REMAP_REFERENCE_FIELDS: {exc}") from None

    @field_validator("sf_ca_bundle", "downstream_ca_bundle", "rules_file", "sf_private_key_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    # Go-live (daemon/store/cutover.py, daemon/cycle/adoption.py): the cut-over (orders activated
    # before it are adopted, never sent), the Order field that dates an order, and whether
    # adopted orders' status is written back onto Salesforce
    cutover_at: datetime | None = None
    cutover_field: Literal["ActivatedDate", "EffectiveDate"] = "ActivatedDate"
    cutover_writeback: bool = False
    # live, or shadow: a parallel run that sends nothing and writes nothing (daemon/cycle/shadow.py)
    mode: Literal["live", "shadow"] = "live"

    @field_validator("cutover_at", mode="before")
    @classmethod
    def _cutover_at(cls, value: Any) -> Any:
        from daemon.store.cutover import parse

        return value if value is None or isinstance(value, datetime) else parse(str(value))

    def system_urls(self) -> dict[str, tuple[str, SecretStr | None]]:
        """The configured downstream systems: name → (base URL, token)."""
        found = {
            "erp": (self.erp_url, self.erp_token),
            "billing": (self.billing_url, self.billing_token),
            "provisioning": (self.provisioning_url, self.provisioning_token),
        }
        return {name: (str(url), token) for name, (url, token) in found.items() if url}


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; a bad one raises ConfigError naming the variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = PREFIX + str(err["loc"][0]).upper() if err["loc"] else "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"setting {name}: {message}") from None
    except SettingsError as exc:
        raise ConfigError(_not_json(exc, PREFIX)) from None
    logs.add_secrets(logs.secrets_of(settings))
    for name, (url, _token) in settings.system_urls().items():
        refuse_credentials(f"{PREFIX}{name.upper()}_", url)
    _log_sources(settings)
    return settings


def refuse_credentials(prefix: str, url: str) -> None:
    """A system URL carrying ``user:password@`` is refused: the password would travel into
    messages, the store and Salesforce; it has settings of its own (never shown)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ConfigError(
            f"setting {prefix}URL: put credentials in {prefix}USERNAME/PASSWORD, not in the URL"
        )


def _not_json(exc: SettingsError, prefix: str) -> str:
    """A list or mapping setting that is not JSON (pydantic-settings parses those first)."""
    found = re.search(r'field "(\w+)"', str(exc))
    name = prefix + found.group(1).upper() if found else prefix.rstrip("_")
    return f'setting {name}: not valid JSON (write a list as ["a", "b"], a mapping as {{"k": "v"}})'


def _log_sources(settings: Settings) -> None:
    # Say where each setting came from, never its value.
    from_env = sorted(k for k in os.environ if k.startswith(PREFIX))
    log.debug("settings from the environment: %s", ", ".join(from_env) or "none")
    if Path(".env").is_file():
        log.debug("settings file .env read")


class SystemSettings(BaseSettings):
    """One downstream system, read from ``ORDERFLOW_{NAME}_*`` (see :func:`system_settings`).

    ``ORDERFLOW_{NAME}_URL`` and ``_TOKEN`` are the same variables as in :class:`Settings`.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    url: AnyHttpUrl | None = None
    auth: Literal["none", "bearer", "basic", "api_key", "oauth"] | None = None
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    api_key_header: str = "X-API-Key"
    oauth_token_url: AnyHttpUrl | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_scope: str | None = None
    paths: dict[str, str] = {}
    timeout: float | None = Field(default=None, gt=0)
    ca_bundle: Path | None = None
    tls_verify: bool = True
    status_poll_interval: float = Field(default=30.0, ge=0)
    callback_secret: SecretStr | None = None
    offline_after: int = Field(default=5, ge=0)
    probe_interval: float = Field(default=30.0, gt=0)

    @field_validator("ca_bundle")
    @classmethod
    def _bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    def auth_mode(self) -> str:
        """The auth to use: as set, else bearer when a token is given, else none."""
        return self.auth or ("bearer" if self.token else "none")


#: Settings a system's auth mode cannot do without.
_AUTH_NEEDS = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "api_key": ("api_key",),
    "oauth": ("oauth_token_url", "oauth_client_id", "oauth_client_secret"),
}


def system_settings(name: str) -> SystemSettings:
    """Read and check one system's settings; ConfigError names the variable at fault."""
    prefix = f"{PREFIX}{name.upper()}_"
    try:
        found = SystemSettings(_env_prefix=prefix)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = prefix + str(err["loc"][0]).upper() if err["loc"] else prefix.rstrip("_")
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"setting {field}: {message}") from None
    except SettingsError as exc:
        raise ConfigError(_not_json(exc, prefix)) from None
    logs.add_secrets(logs.secrets_of(found))
    if found.url is not None:
        refuse_credentials(prefix, str(found.url))
    for needed in _AUTH_NEEDS.get(found.auth_mode(), ()):
        if getattr(found, needed) is None:
            mode = found.auth_mode()
            raise ConfigError(f"setting {prefix}{needed.upper()}: needed with {mode} auth")
    return found
