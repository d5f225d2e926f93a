from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from tests.serve_helpers import datagram_listener
from vdsm_net import sdnotify


def test_notify_to_a_path_socket(tmp_path: Path) -> None:
    with datagram_listener(tmp_path / "notify") as sock:
        assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert sock.recv(4096) == b"READY=1"


def test_notify_to_an_abstract_socket() -> None:
    name = f"vdsm-net-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        assert sdnotify.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("value", ["", "vsock:2:1234"])
def test_notify_without_a_usable_socket_is_a_no_op(value: str) -> None:
    assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": value}) is False
    assert sdnotify.notify("READY=1", {}) is False


def test_notify_to_a_missing_socket_reports_failure(tmp_path: Path) -> None:
    assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval(env) == expected


async def test_watchdog_pings_at_half_the_interval(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000"}
    interval = sdnotify.watchdog_interval(env)
    assert interval == 0.05
    loop = asyncio.get_running_loop()
    messages: list[bytes] = []

    async def drain(sock: socket.socket) -> None:
        while True:
            messages.append(await loop.sock_recv(sock, 4096))

    with datagram_listener(tmp_path / "notify") as sock:
        reader = asyncio.create_task(drain(sock))
        pinger = asyncio.create_task(sdnotify.watchdog(interval, env))
        await asyncio.sleep(1.0)
        pinger.cancel()
        reader.cancel()
        await asyncio.gather(pinger, reader, return_exceptions=True)
    assert set(messages) == {b"WATCHDOG=1"}
    # ~20 expected in 1 s; the bounds only exclude "never" and "in a tight loop".
    assert 5 <= len(messages) <= 40, len(messages)


def test_notify_never_blocks_on_a_receiver_that_does_not_read(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify")}
    with datagram_listener(tmp_path / "notify"):
        results = [sdnotify.notify("WATCHDOG=1", env) for _ in range(200)]
    assert results[0] is True
    assert results[-1] is False  # queue full: dropped, not blocked
