"""Settings: read once from the environment and ``.env``, validated, passed down.

Every variable is prefixed ``ORDERFLOW_`` and documented in ``.env.example``. Secrets are
``SecretStr``: they print as ``**********`` and reach only the code that sends them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestration.errors import ConfigError

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
    sf_poll_overlap: float = Field(default=600.0, ge=0)
    sf_poll_settle: float = Field(default=2.0, ge=0)

    # Store
    database_url: str = "sqlite:///orderflow.db"

    # Downstream systems
    erp_url: AnyHttpUrl | None = None
    erp_token: SecretStr | None = None
    billing_url: AnyHttpUrl | None = None
    billing_token: SecretStr | None = None
    provisioning_url: AnyHttpUrl | None = None
    provisioning_token: SecretStr | None = None
    downstream_timeout: float = Field(default=15.0, gt=0)
    downstream_ca_bundle: Path | None = None

    # The daemon
    poll_interval: float = Field(default=5.0, gt=0)
    rules_file: Path = DEFAULT_RULES
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("sf_ca_bundle", "downstream_ca_bundle", "rules_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

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
    _log_sources(settings)
    return settings


def _log_sources(settings: Settings) -> None:
    # Say where each setting came from, never its value.
    from_env = sorted(k for k in os.environ if k.startswith(PREFIX))
    log.debug("settings from the environment: %s", ", ".join(from_env) or "none")
    if Path(".env").is_file():
        log.debug("settings file .env read")
