"""Logging set-up: human lines on a terminal, JSON lines under systemd, secrets never shown.

- Format: ``text`` (one line for people), ``json`` (one object a line for the journal and
  log shippers) or ``auto`` (JSON when systemd started the process, i.e. ``JOURNAL_STREAM``
  or ``INVOCATION_ID`` is set; text otherwise). Setting ``ORDERFLOW_LOG_FORMAT``.
- Fields: whatever a log call passes as ``extra=`` (``order_id``, ``order_number``,
  ``step_id``, ``task_id``, ``system``...) becomes a key of the JSON object, or a
  ``[key=value ...]`` suffix of the text line.
- Redaction: every secret registered with :func:`add_secrets` (``load_settings`` registers
  each ``SecretStr`` setting and any password in a ``*_url`` setting; the Salesforce login
  registers the access token it gets) is replaced by ``**********`` in every line, its
  traceback included, and so is the password of any URL written ``scheme://user:password@``.
  :func:`redact` is the one masking function: the log formatters use it, and so does every
  message before it is stored (daemon.store.models), written back to Salesforce
  (daemon.cycle.writeback) or printed (the CLI, ``doctor``).

JSON keys, stable: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, ``exc`` (a
traceback, when there is one), then the ``extra=`` fields.

- Priority: when stderr is the journal's own stream (``JOURNAL_STREAM`` names its device
  and inode), every line starts with the syslog priority, ``<3>`` for an error, ``<4>`` a
  warning, ``<6>`` information, ``<7>`` debug: journald takes it off and files the line
  under that ``PRIORITY``, so ``journalctl -p err`` finds the errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

Format = Literal["auto", "json", "text"]
MASK = "**********"
#: Shorter values are not redacted: masking every "a" would make logs unreadable, and a
#: secret that short is no secret. load_settings refuses none; this only limits masking.
MIN_SECRET_LENGTH = 4

#: A URL's user information: its password part is masked whoever registered it.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+@")

_secrets: set[str] = set()
_lock = threading.Lock()
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def add_secrets(values: Iterable[str | None]) -> None:
    """Never show these values in a log line or an error message, from now on."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """``text`` with every registered secret masked (longest first, so none leaks a part),
    and the password of every ``scheme://user:password@`` URL in it."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text) if "@" in text else text


def secrets_of(settings: BaseModel) -> list[str]:
    """Every ``SecretStr`` value of ``settings``, and the password of every ``*_url``."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif name.endswith("_url") and value is not None:
            try:
                password = urlsplit(str(value)).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


def choose_format(fmt: Format, environ: Mapping[str, str] | None = None) -> Format:
    """``json`` or ``text`` for ``fmt``; ``auto`` is JSON when systemd runs the process."""
    if fmt != "auto":
        return fmt
    env = os.environ if environ is None else environ
    return "json" if env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID") else "text"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [key=value ...]``, secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = fields_of(record)
        if extra:
            suffix = " ".join(f"{k}={v}" for k, v in extra.items())
            head, sep, rest = line.partition("\n")
            line = f"{head} [{suffix}]{sep}{rest}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module's docstring for the keys), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        for key, value in fields_of(record).items():
            entry.setdefault(key, _plain(value))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return redact(str(value))


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    for floor, priority in ((50, 2), (40, 3), (30, 4), (20, 6)):
        if levelno >= floor:
            return priority
    return 7


def writes_to_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal's stream systemd gave the process (its device and
    inode are ``JOURNAL_STREAM``'s): a redirected stderr is not, and gets no prefix."""
    env = os.environ if environ is None else environ
    try:
        stat = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False  # no file behind it (a StringIO)
    return env.get("JOURNAL_STREAM", "") == f"{stat.st_dev}:{stat.st_ino}"


class JournalFormatter(logging.Formatter):
    """Another formatter's lines, each with its ``<N>`` syslog priority in front."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def configure(level: str, *, fmt: Format = "auto", stream: TextIO | None = None) -> Format:
    """Log at ``level`` to stderr (or ``stream``) in ``fmt``; returns the format chosen."""
    chosen = choose_format(fmt)
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    formatter: logging.Formatter = JsonFormatter() if chosen == "json" else TextFormatter()
    handler.setFormatter(JournalFormatter(formatter) if writes_to_journal(out) else formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Third-party chatter: noise at INFO, wanted when someone asks for DEBUG.
    quiet = logging.DEBUG if level == "DEBUG" else max(logging.WARNING, logging.getLevelName(level))
    for noisy in ("urllib3", "alembic", "simple_salesforce", "uvicorn", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(quiet)
    return chosen
