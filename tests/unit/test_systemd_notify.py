"""The systemd notify protocol against real datagram sockets."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from daemon.service.systemd_notify import Notifier


@pytest.fixture
def path_socket():
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    path = Path("/tmp") / f"of-notify-{uuid.uuid4().hex[:8]}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()
    path.unlink(missing_ok=True)


def test_messages_arrive_as_one_datagram_each(path_socket):
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.ready("first cycle")
    notifier.status("cycle 2:\nwaiting")
    notifier.watchdog()
    notifier.stopping()
    got = [sock.recv(4096).decode() for _ in range(4)]
    assert got == [
        "READY=1\nSTATUS=first cycle",
        "STATUS=cycle 2: waiting",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_abstract_namespace_socket():
    name = f"orderflow-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send(READY="1")
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send(READY="1") is False


def test_a_vanished_socket_does_not_break_the_daemon(tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.send(WATCHDOG="1") is False
    assert notifier.send(WATCHDOG="1") is False


@pytest.mark.parametrize(
    ("environ", "period"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 2.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),
    ],
)
def test_watchdog_period(environ, period):
    assert Notifier(environ).watchdog_period == period
