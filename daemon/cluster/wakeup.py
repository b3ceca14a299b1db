"""Wake-up: a committed change to a task wakes every instance's loop (PostgreSQL NOTIFY).

Sending: :func:`notify_on_commit` hooks a sessionmaker so a transaction that moved a task
(a TaskEvent was added: Ready to claim, or finished so the leader can advance its plan)
sends ``NOTIFY orderflow_work`` as part of its commit; PostgreSQL delivers it only if the
transaction commits, and folds identical ones in a transaction into one.

Receiving: :class:`Wakeup` LISTENs on a connection of its own in a thread and sets its
event on each notification; the loop waits on that event (with the poll interval as its
timeout, the fallback when a notification is missed, e.g. while reconnecting). A stop
event sets it too, so SIGTERM still ends a wait at once. On SQLite nothing is sent or
listened to: the loop polls, as a single instance did before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from daemon.store.models import TaskEvent

log = logging.getLogger(__name__)

CHANNEL = "orderflow_work"
_FLAG = "orderflow_notify"


def notify_on_commit(sessions: sessionmaker[Session]) -> None:
    """Make transactions of ``sessions`` that change a task's state NOTIFY the others."""
    event.listen(sessions, "after_flush", _after_flush)
    event.listen(sessions, "before_commit", _before_commit)


def moved(session: Session) -> None:
    """Say that ``session`` moved a task with a Core statement (no TaskEvent object seen):
    its commit notifies the others as an ORM move's does."""
    session.info[_FLAG] = True


def _moved(session: Session) -> bool:
    return any(isinstance(obj, TaskEvent) for obj in session.new)


def _after_flush(session: Session, _context: Any) -> None:
    if _moved(session):
        session.info[_FLAG] = True


def _before_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False) or _moved(session):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Wakeup:
    """An event set by notifications on ``CHANNEL`` (and by ``stop``), for the loop to wait on."""

    def __init__(self, url: str | None, retry_after: float = 2.0) -> None:
        self.event = threading.Event()
        self._url = url
        self._retry_after = retry_after
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()

    def start(self, stop: threading.Event) -> None:
        bridge = threading.Thread(target=self._bridge, args=(stop,), name="wakeup-stop")
        self._threads.append(bridge)
        if self._url is not None:
            self._threads.append(threading.Thread(target=self._listen, name="wakeup-listen"))
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def close(self) -> None:
        self._closing.set()
        self.event.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait(self, timeout: float) -> bool:
        """Wait for a wake-up or ``timeout``; True when woken (the event is cleared)."""
        woken = self.event.wait(timeout)
        if woken:
            self.event.clear()
        return woken

    def _bridge(self, stop: threading.Event) -> None:
        while not self._closing.is_set():
            if stop.wait(0.5):
                self.event.set()
                return

    def _listen(self) -> None:
        assert self._url is not None
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self.event.set()  # (re)connected: look for what came meanwhile
                    while not self._closing.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self.event.set()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("LISTEN %s interrupted, polling meanwhile: %s", CHANNEL, exc)
                self._closing.wait(self._retry_after)
