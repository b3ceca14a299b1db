"""What the gateway needs from the HTTP layer that simple-salesforce does not give it.

simple-salesforce drops the response headers from its exceptions and sets no timeout, so
the gateway instruments the ``requests.Session`` it talks through: a response hook reads
``Retry-After`` and ``Sforce-Limit-Info`` from every answer (errors included), and an
adapter puts a timeout on any request that was sent without one (the SOAP login, say).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import requests
from requests.adapters import HTTPAdapter

from salesforce.errors import parse_retry_after

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class ApiUsage(NamedTuple):
    """Calls used in the org's rolling 24 hours, and the allowance."""

    used: int
    limit: int

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


def parse_limit_info(value: str | None) -> ApiUsage | None:
    """``Sforce-Limit-Info: api-usage=USED/MAX`` as :class:`ApiUsage`."""
    match = _USAGE.search(value or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class Watch:
    """The last answer's ``Retry-After`` and the latest API usage Salesforce reported."""

    retry_after: float | None = None
    usage: ApiUsage | None = None
    responses: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        with self._lock:
            self.responses += 1
            self.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if usage is not None:
                self.usage = usage


class TimeoutAdapter(HTTPAdapter):
    """An adapter that gives every request a timeout when its caller gave none."""

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def instrument(session: requests.Session, timeout: float, *, pool: int = 16) -> Watch:
    """Hook ``session`` (idempotent: a session already watched keeps its watch)."""
    for hook in session.hooks.setdefault("response", []):
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, Watch):
            return owner
    watch = Watch()
    session.hooks["response"].append(watch.hook)
    adapter = TimeoutAdapter(timeout, pool_connections=pool, pool_maxsize=pool)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return watch
