"""The systemd notify protocol (``sd_notify``), spoken directly: one datagram per message.

systemd gives a ``Type=notify`` service the path of a datagram socket in ``NOTIFY_SOCKET``
(a file path, or ``@name`` for the Linux abstract namespace) and the watchdog period in
``WATCHDOG_USEC``. A message is newline-separated ``KEY=VALUE`` lines: ``READY=1``,
``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``. Without ``NOTIFY_SOCKET`` (not under
systemd, or in a test) every call is a no-op, so callers never need to ask.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to systemd; silent when not started by it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_period = _watchdog_period(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str = "") -> None:
        """The service is up: systemd ends ``systemctl start`` and starts dependents."""
        self.send(READY="1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> None:
        """A one-line description shown by ``systemctl status``."""
        self.send(STATUS=text)

    def watchdog(self) -> None:
        """Still alive: resets the ``WatchdogSec`` timer."""
        self.send(WATCHDOG="1")

    def stopping(self, status: str = "") -> None:
        """Shutting down on purpose (not a crash)."""
        self.send(STOPPING="1", **({"STATUS": status} if status else {}))

    def send(self, **fields: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False when nothing was sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            # A socket per message: they are seconds apart, and nothing stays open to leak.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            # systemd going away must not take the daemon with it; say so once.
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False
        return True


def _address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        # An abstract socket: its name starts with a NUL byte instead of the "@".
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET %r is neither a path nor @abstract; not notifying", value)
    return None


def _watchdog_period(env: Mapping[str, str]) -> float | None:
    """Seconds within which systemd expects ``WATCHDOG=1``, or None when no watchdog is on."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # the watchdog is meant for another process (e.g. our parent)
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000


def _one_line(value: str) -> str:
    return " ".join(value.split())
