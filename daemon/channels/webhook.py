"""The notification webhook: a Slack-compatible URL, sent to from a thread of its own.

Optional (``ORDERFLOW_NOTIFY_WEBHOOK_URL``); what is told, and when, is
:mod:`daemon.cycle.notifications`.
A webhook never holds up the loop:
- **Queued.** The sweep puts each message in a bounded queue (:data:`MAX_QUEUED`) and goes
  on; a background thread sends them, each with a short timeout (:data:`TIMEOUT`). A full
  queue takes nothing: the plan is not marked told, and the next sweep offers it again.
- **Retried with back-off.** A message that fails is tried again after
  :data:`RETRY_FIRST`, doubling up to :data:`RETRY_MAX`, by the thread, not by the sweep.
- **Dropped after a day** (:data:`GIVE_UP_AFTER` since it was queued), with a log line.
- **Not waited for.** The thread is a daemon thread: SIGTERM does not wait for a slow
  webhook; what is still queued then is lost (the plans say told).

Time is the injected clock's, so tests drive back-off and the day without sleeping
(:meth:`Webhook.deliver` sends what is due, on the caller's thread). The URL embeds a
token: it is a ``SecretStr``, never logged, and errors name only the HTTP status or the
kind of failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from daemon import logs

log = logging.getLogger(__name__)

#: Seconds one message may take (connect and answer): a dead webhook costs little.
TIMEOUT = 5.0
MAX_QUEUED = 1000
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=1)
#: How often the thread looks for messages come due while nothing new is queued.
IDLE_WAIT = 1.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Message:
    text: str
    queued_at: datetime
    due_at: datetime
    attempts: int = 0


class Webhook:
    """Posts ``{"text": ...}`` to a Slack-compatible incoming webhook, from a queue."""

    def __init__(
        self,
        url: SecretStr,
        session: requests.Session | None = None,
        timeout: float = TIMEOUT,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._url = url
        # The token is in the path, which HTTP libraries log at DEBUG: mask both.
        text = url.get_secret_value()
        logs.add_secrets([text, urlsplit(text).path])
        self._http = session or requests.Session()
        self._timeout = timeout
        self.clock = clock
        self._max = max_queued
        self._queue: list[Message] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one delivery at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def post(self, text: str) -> bool:
        """Queue one message; False when the queue is full (nothing queued, nothing waits)."""
        now = self.clock()
        with self._lock:
            if len(self._queue) >= self._max:
                log.warning("notification queue full (%d): message put off", self._max)
                return False
            self._queue.append(Message(text, queued_at=now, due_at=now))
        self._wake.set()
        return True

    def deliver(self) -> int:
        """Send every message due at the clock's time, in order; the number sent."""
        with self._sending:
            now = self.clock()
            with self._lock:
                due = [m for m in self._queue if m.due_at <= now]
            sent = 0
            for message in due:
                if self._stop.is_set():
                    break
                ok = self.send(message.text)
                with self._lock:
                    if ok:
                        self._queue.remove(message)
                        sent += 1
                    else:
                        self._failed(message, self.clock())
            return sent

    def _failed(self, message: Message, now: datetime) -> None:
        message.attempts += 1
        if now - message.queued_at >= GIVE_UP_AFTER:
            self._queue.remove(message)
            log.warning(
                "notification dropped after %d attempts over a day: %r",
                message.attempts,
                message.text[:120],
            )
            return
        wait = min(RETRY_FIRST * 2 ** (message.attempts - 1), RETRY_MAX)
        message.due_at = now + wait

    def send(self, text: str) -> bool:
        """Post one message now; False (logged without the URL) when it did not go through."""
        try:
            answer = self._http.post(
                self._url.get_secret_value(), json={"text": text}, timeout=self._timeout
            )
        except requests.RequestException as exc:
            log.warning("notification webhook unreachable: %s", type(exc).__name__)
            return False
        if answer.status_code >= 300:
            log.warning("notification webhook refused the message: HTTP %d", answer.status_code)
            return False
        return True

    def start(self) -> None:
        """Send from a background thread from now on (the loop starts it)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop sending; returns at once, whatever a slow webhook is doing."""
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before delivering: a message queued meanwhile wakes it
            self.deliver()
            self._wake.wait(IDLE_WAIT)
